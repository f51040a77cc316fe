"""Plain folder reader and the bad-input rules every line-based reader shares (built in tmp_path)."""
from __future__ import annotations

from pathlib import Path

import pytest

from babelmap.engine.corpora import FORMATS, read_corpus
from babelmap.engine.errors import CorpusError


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)
    return folder


GOOD = {
    "de.txt": "Hallo Welt\nGuten Morgen\n\nAuf Wiedersehen\n",
    "ru.txt": "Привет мир\nДоброе утро\nДобрый вечер\nДо свидания\n",
    "sr_Latn.txt": "Zdravo svete\nDobro jutro\nDobro veče\nDoviđenja\n",
    "zh-Hant.txt": "你好世界\n早安\n晚安\n再見\n",
    "hin.txt": "नमस्ते दुनिया\nसुप्रभात\nशुभ संध्या\nअलविदा\n",
}


def test_plain_reads_and_normalises(tmp_path: Path) -> None:
    c = read_corpus(_write(tmp_path / "c", GOOD), "plain")
    assert c.languages == ["deu_Latn", "hin_Deva", "rus_Cyrl", "srp_Latn", "zho_Hant"]
    assert c.sentence_ids == ["1", "2", "3", "4"]
    assert c.text("deu_Latn") == ["Hallo Welt", "Guten Morgen", None, "Auf Wiedersehen"]
    assert c.text("rus_Cyrl")[3] == "До свидания"
    assert c.mask.sum() == 19
    assert c.meta["rus_Cyrl"]["name"] == "Russian" and c.meta["rus_Cyrl"]["script"] == "Cyrl"
    assert c.skipped == []
    assert {"flores", "ebible", "udhr", "pbc", "plain", "cldr"} <= set(FORMATS)


def test_plain_detects_script_when_name_has_none(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["sr.txt"] = "Здраво свете\nДобро јутро\nДобро вече\nДовиђења\n"   # Serbian in Cyrillic
    files["uz.txt"] = "Salom dunyo\nXayrli tong\nXayrli kech\nXayr\n"         # Uzbek in Latin
    c = read_corpus(_write(tmp_path / "c", files), "plain")
    assert "srp_Cyrl" in c.languages and "srp_Latn" in c.languages and "uzb_Latn" in c.languages


def test_line_count_mismatch_names_file_and_language(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["ru.txt"] = "Привет мир\nДоброе утро\nДо свидания\n"   # one line short
    folder = _write(tmp_path / "c", files)
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "plain")
    e = err.value
    assert e.file.endswith("ru.txt") and e.language == "rus_Cyrl" and "3 lines" in str(e) and "4" in str(e)
    c = read_corpus(folder, "plain", skip_bad=True)
    assert "rus_Cyrl" not in c.languages and len(c.languages) == 4
    assert c.skipped[0]["language"] == "rus_Cyrl" and c.skipped[0]["file"].endswith("ru.txt")
    assert c.text("deu_Latn")[3] == "Auf Wiedersehen"      # others keep their alignment


def test_undecodable_bytes_name_file_and_line(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["de.txt"] = "Hallo Welt\nGuten Morgen\n".encode() + "Grüße\n".encode("latin-1") + b"Tschau\n"
    folder = _write(tmp_path / "c", files)
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "plain")
    assert err.value.line == 3 and err.value.file.endswith("de.txt") and "UTF-8" in str(err.value)
    c = read_corpus(folder, "plain", skip_bad=True)
    assert "deu_Latn" not in c.languages and c.skipped[0]["line"] == 3


def test_unknown_code(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["xx.txt"] = "a\nb\nc\nd\n"
    folder = _write(tmp_path / "c", files)
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "plain")
    assert err.value.file.endswith("xx.txt") and err.value.language == "xx"
    assert len(read_corpus(folder, "plain", skip_bad=True).languages) == 5


def test_two_files_one_id(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["deu.txt"] = "a\nb\nc\nd\n"      # de.txt and deu.txt are both deu_Latn
    folder = _write(tmp_path / "c", files)
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "plain")
    assert err.value.language == "deu_Latn" and "de.txt" in str(err.value) and "deu.txt" in str(err.value)
    c = read_corpus(folder, "plain", skip_bad=True)
    assert "deu_Latn" not in c.languages     # neither file is trusted


def test_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="empty corpus"):
        read_corpus(_write(tmp_path / "empty", {}), "plain")
    with pytest.raises(CorpusError, match="no text"):
        read_corpus(_write(tmp_path / "blank", {"de.txt": "\n\n"}), "plain")
    with pytest.raises(CorpusError, match="empty corpus"):
        read_corpus(_write(tmp_path / "blank2", {"de.txt": "\n\n"}), "plain", skip_bad=True)


def test_crlf_bom_and_unknown_format(tmp_path: Path) -> None:
    folder = _write(tmp_path / "c", {"de.txt": b"\xef\xbb\xbfHallo\r\nWelt\r\n", "fr.txt": "Bonjour\nmonde\n"})
    c = read_corpus(folder, "plain")
    assert c.text("deu_Latn") == ["Hallo", "Welt"]
    with pytest.raises(CorpusError, match="unknown corpus format"):
        read_corpus(folder, "tmx")
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "nope", "plain")


def test_line_count_tie_is_not_guessed(tmp_path: Path) -> None:
    folder = _write(tmp_path / "c", {"de.txt": "a\nb\n", "fr.txt": "a\n"})
    for skip in (False, True):
        with pytest.raises(CorpusError, match="no count is in the majority") as err:
            read_corpus(folder, "plain", skip_bad=skip)
        assert "de.txt 2" in str(err.value) and "fr.txt 1" in str(err.value)


# -- reader surprises (issue 16.5) ---------------------------------------------------------------
def test_upper_case_extension_is_read(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["deu_Latn.TXT"] = files.pop("de.txt")
    c = read_corpus(_write(tmp_path / "c", files), "plain")
    assert "deu_Latn" in c.languages and c.text("deu_Latn")[0] == "Hallo Welt"


def test_stray_common_word_files_are_refused_unless_named(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["tmp.txt"] = "a\nb\nc\nd\n"
    folder = _write(tmp_path / "c", files)
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "plain")
    assert err.value.file.endswith("tmp.txt") and "common English word" in str(err.value)
    assert "--langs" in str(err.value)
    c = read_corpus(folder, "plain", skip_bad=True)
    assert "tmp_Latn" not in c.languages and c.skipped[0]["file"].endswith("tmp.txt")
    c = read_corpus(folder, "plain", langs=["tmp_Latn", "deu_Latn"])
    assert "tmp_Latn" in c.languages
    (folder / "tmp.txt").unlink()
    (folder / "new.txt").write_text("a\nb\nc\nd\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="'new' is a common English word"):
        read_corpus(folder, "plain")
    # a --langs list that does not name it: left out, and the note says why
    c = read_corpus(folder, "plain", langs=["deu_*", "rus_Cyrl"])
    assert "new_Latn" not in c.languages and "common English word" in c.skipped[0]["reason"]


def test_nul_byte_names_file_line_and_language(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["ru.txt"] = "Привет мир\nДоброе утро\nДобрый\x00 вечер\nДо свидания\n"
    with pytest.raises(CorpusError) as err:
        read_corpus(_write(tmp_path / "c", files), "plain")
    e = err.value
    assert e.line == 3 and e.file.endswith("ru.txt") and e.language == "ru" and "NUL" in str(e)


def test_extra_blank_line_is_reported_where_it_is(tmp_path: Path) -> None:
    files = {f"{c}.txt": "".join(f"{c} sentence {i}\n" for i in range(1, 21)) for c in ("de", "fr", "ru")}
    lines = files["fr.txt"].split("\n")
    lines.insert(9, "")                                  # a blank line 10: 21 lines
    files["fr.txt"] = "\n".join(lines)
    with pytest.raises(CorpusError) as err:
        read_corpus(_write(tmp_path / "c", files), "plain")
    assert err.value.line == 10 and "21 lines" in str(err.value) and "line 10 is blank" in str(err.value)


def test_sentences_are_stripped_and_the_normalisation_recorded(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["de.txt"] = "  Hallo Welt \t\nGuten Morgen\u00a0\n \nAuf Wiedersehen\n"
    c = read_corpus(_write(tmp_path / "c", files), "plain")
    assert c.text("deu_Latn") == ["Hallo Welt", "Guten Morgen", None, "Auf Wiedersehen"]
    assert c.normalization == "strip" and c.provenance()["normalization"] == "strip"


def test_two_files_extra_blank_line_named_at_its_line(tmp_path: Path) -> None:
    """With no majority (2 files, 20 vs 21 lines) the error still names the blank line 10, not line 21."""
    d = tmp_path / "c"
    d.mkdir()
    lines = [f"sentence number {i}" for i in range(1, 21)]
    (d / "eng_Latn.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "deu_Latn.txt").write_text("\n".join(lines[:9] + [""] + lines[9:]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        read_corpus(d, "plain")
    assert e.value.line == 10 and e.value.language == "deu_Latn" and "line 10 is blank" in str(e.value)
