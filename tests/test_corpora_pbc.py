"""PBC text-format reader: the three real files (skipped when absent) and malformed files in tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared

from babelmap.engine.corpora import read_corpus
from babelmap.engine.errors import CorpusError


def _raw_verses(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line[:1].isdigit():
            vid, _, text = line.partition("\t")
            out[vid] = text
    return out


def test_pbc_real() -> None:
    folder = shared("pbc")
    c = read_corpus(folder, "pbc")
    assert c.languages == ["nyu_Latn", "pon_Latn-x-bible-new", "pon_Latn-x-bible-old"]
    nyu = _raw_verses(folder / "nyu-x-bible.txt")
    pon = _raw_verses(folder / "pon-x-bible-new.txt")
    assert len(nyu) == 1980 and len(pon) == 10415
    assert c.sentence_ids == sorted(set(nyu) | set(pon))
    row = dict(zip(c.sentence_ids, c.text("nyu_Latn")))
    assert all(row[v] == (t or None) for v, t in nyu.items())
    assert sum(t is not None for t in row.values()) == 1979
    # the one id with no text: missing, and the verse before it is flagged as merged
    assert c.meta["nyu_Latn"]["range"] == ["42017036"] and c.meta["nyu_Latn"]["merged"] == ["42017035"]
    assert row["42017035"] is not None and row["42017036"] is None
    assert row["40001001"] is None     # Matthew: absent from this translation = missing
    assert c.meta["nyu_Latn"]["licence"] == "Public domain" and c.meta["nyu_Latn"]["name"] == "Nyungwe"
    assert c.meta["pon_Latn-x-bible-old"]["headers"]["closest iso 639-3"] == "pon"
    d = read_corpus(folder, "pbc", drop_merged=True)
    assert dict(zip(d.sentence_ids, d.text("nyu_Latn")))["42017035"] is None
    sel = c.select(min_languages=3)
    assert len(sel.sentence_ids) == 1979
    # documents are chapters; a --max-sentences that leaves nyu empty drops it, recorded
    assert c.documents[c.sentence_ids.index("41014025")] == "MRK 14"
    first = c.select(first=60)                      # Psalms: nyu (a NT portion) has none of them
    assert "nyu_Latn" not in first.languages and first.skipped[-1]["language"] == "nyu_Latn"
    assert "nyu_Latn" in c.select(min_languages=3, first=60).languages


HEAD = "# language_name:   German\n# closest ISO 639-3:   deu\n# copyright_short: Public domain\n"


def _write(folder: Path, name: str, body: str, head: str = HEAD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(head + body, encoding="utf-8")
    return folder


def test_pbc_case_insensitive_header_and_absent_ids(tmp_path: Path) -> None:
    f = _write(tmp_path / "p", "deu-x-bible.txt", "41001001\tAnfang\n41001003\tStimme\n",
               head="# Language_Name:  German\n# CLOSEST iso 639-3:    ger   \n")
    _write(f, "rus-x-bible.txt", "41001001\tНачало\n41001002\tКак написано\n", head="# closest ISO 639-3: rus\n")
    c = read_corpus(f, "pbc")
    assert c.languages == ["deu_Latn", "rus_Cyrl"]
    assert c.sentence_ids == ["41001001", "41001002", "41001003"]
    assert c.text("deu_Latn") == ["Anfang", None, "Stimme"]
    assert c.meta["deu_Latn"]["name"] == "German"


def test_pbc_duplicate_unsorted_malformed(tmp_path: Path) -> None:
    good = "41001001\tНачало\n41001002\tКак написано\n"
    for i, (body, needle, line) in enumerate([
            ("41001001\tAnfang\n41001002\tWie\n41001002\tWieder\n", "twice", 6),
            ("41001002\tWie\n41001001\tAnfang\n", "not sorted", 5),
            ("41001001\tAnfang\nMRK 1:2\tWie\n", "BBCCCVVV", 5)]):
        folder = _write(tmp_path / str(i), "deu-x-bible.txt", body)
        _write(folder, "rus-x-bible.txt", good, head="")
        with pytest.raises(CorpusError, match=needle) as err:
            read_corpus(folder, "pbc")
        assert err.value.line == line and err.value.file.endswith("deu-x-bible.txt")
        assert err.value.language == "deu"              # the header's code, not the file stem
        c = read_corpus(folder, "pbc", skip_bad=True)
        assert c.languages == ["rus_Cyrl"] and c.skipped[0]["line"] == line


def test_pbc_bad_bytes_unknown_code_empty(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "deu-x-bible.txt").write_bytes(HEAD.encode() + b"41001001\tAnf\xe4ng\n")
    with pytest.raises(CorpusError) as err:
        read_corpus(folder, "pbc")
    assert err.value.line == 4
    folder = _write(tmp_path / "c", "qqq-x-bible.txt", "41001001\tx\n", head="")
    with pytest.raises(CorpusError, match="unknown language code"):
        read_corpus(folder, "pbc")
    folder = _write(tmp_path / "d", "deu-x-bible.txt", "41001001\t\n")
    with pytest.raises(CorpusError, match="no verse text"):
        read_corpus(folder, "pbc")
    (tmp_path / "e").mkdir()
    with pytest.raises(CorpusError, match="no PBC"):
        read_corpus(tmp_path / "e", "pbc")
