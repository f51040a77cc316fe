"""eBible reader: the real 876 x 670 subset (skipped when absent) and small malformed copies."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.errors import CorpusError


@pytest.fixture(scope="module")
def ebible(ebible_dir):
    return read_corpus(ebible_dir, "ebible")


def test_ebible_shape_and_quirk_counts(ebible, ebible_dir: Path) -> None:
    c = ebible
    assert len(c.languages) == 876 and len(c.sentence_ids) == 670
    vref = (ebible_dir / "metadata" / "vref.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert c.sentence_ids == vref and vref[0].count(" ") == 1
    # data README: 1,059 empty lines and 830 `<range>` lines out of 586,920, all missing
    assert sum(m["empty"] for m in c.meta.values()) == 1059
    assert sum(len(m["range"]) for m in c.meta.values()) == 830
    assert int((~c.mask).sum()) == 1059 + 830
    # independently: count the raw lines
    n_range = n_empty = 0
    for f in (ebible_dir / "corpus").glob("*.txt"):
        for ln in f.read_text(encoding="utf-8").split("\n")[:-1]:
            n_range += ln == "<range>"
            n_empty += ln == ""
    assert (n_range, n_empty) == (830, 1059)


def test_ebible_merged_flags_match_metadata(ebible, ebible_dir: Path, ) -> None:
    with open(ebible_dir / "metadata" / "subset_merged_verses.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 747
    expected: dict[str, set] = {}
    for r in rows:
        expected.setdefault(r["file"], set()).add(r["vref"])
    got = {Path(m["file"]).name: set(m["merged"]) for m in ebible.meta.values() if m["merged"]}
    assert got == expected
    assert len(got) == 214


def test_ebible_drop_merged(ebible_dir: Path, ebible) -> None:
    c = read_corpus(ebible_dir, "ebible", drop_merged=True)
    assert int((~c.mask).sum()) == 1059 + 830 + 747
    lang = next(l for l, m in ebible.meta.items() if m["merged"])
    verse = ebible.meta[lang]["merged"][0]
    j = ebible.sentence_ids.index(verse)
    assert ebible.text(lang)[j] is not None and c.text(lang)[j] is None


def test_ebible_variants_scripts_and_text(ebible, ebible_dir: Path) -> None:
    c = ebible
    eng = [l for l in c.languages if l.startswith("eng_")]
    assert len(eng) == 24 and all(l.startswith("eng_Latn-") for l in eng)
    assert "eng_Latn-engwebp" in eng and "eng_Latn" not in c.languages
    assert "aai_Latn" in c.languages           # one translation: no variant
    # data README: 758 language codes, 49 of them with more than one translation
    from babelmap.engine.languages import iso639_3
    assert len({iso639_3(l) for l in c.languages}) == 758
    assert len({iso639_3(l) for l in c.languages if "-" in l}) == 49
    assert all(("-" in l) == (sum(iso639_3(k) == iso639_3(l) for k in c.languages) > 1) for l in c.languages)
    san = {l.split("-")[1]: l.split("-")[0] for l in c.languages if l.startswith("san_")}
    assert len(san) == 22
    assert san["sandev"] == "san_Deva" and san["santam"] == "san_Taml" and san["santib"] == "san_Tibt"
    assert san["sanias"] == "san_Latn" and san["santha"] == "san_Thai" and san["sanbur"] == "san_Mymr"
    assert "cmn_Hant-cmn_cu89t" in c.languages and "cmn_Hans-cmn_cu89s" in c.languages
    assert [l for l in c.languages if l.startswith("grc_")] and all(
        l.startswith("grc_Grek-") for l in c.languages if l.startswith("grc_"))  # metadata says Latin
    assert c.meta["zap_Latn"]["metadata_language_code"] == "zpi"
    raw = (ebible_dir / "corpus" / "eng-engwebp.txt").read_text(encoding="utf-8").split("\n")
    assert c.text("eng_Latn-engwebp")[:5] == raw[:5]
    assert c.meta["eng_Latn-engwebp"]["licence"] == "Public Domain"
    sel = c.select(pattern="eng_*", first=10, min_languages=2)
    assert len(sel.languages) == 24 and sel.sentence_ids == c.sentence_ids[:10]
    assert sel.mask.sum(axis=0).min() >= 2


# -- small malformed copies ---------------------------------------------------------------------
VREF = ["MRK 1:1", "MRK 1:2", "MRK 1:3", "MRK 1:5", "LUK 2:1"]


def _mini(tmp_path: Path, files: dict[str, list[str] | bytes]) -> Path:
    root = tmp_path / "eb"
    (root / "metadata").mkdir(parents=True)
    (root / "corpus").mkdir()
    (root / "metadata" / "vref.txt").write_text("\n".join(VREF) + "\n", encoding="utf-8")
    for name, lines in files.items():
        data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode("utf-8")
        (root / "corpus" / name).write_bytes(data)
    return root


DEU = ["Anfang", "Wie geschrieben", "Stimme", "Und es ging", "Es begab sich"]
RUS = ["Начало", "Как написано", "Глас", "И выходили", "В те дни"]


def test_range_lines_mark_previous_verse_merged(tmp_path: Path) -> None:
    eng = ["Beginning and as it is written", "<range>", "<range>", " \t", "It happened"]
    c = read_corpus(_mini(tmp_path, {"eng-a.txt": eng, "deu-deu.txt": DEU, "eng-b.txt": DEU}), "ebible")
    assert c.languages == ["deu_Latn", "eng_Latn-a", "eng_Latn-b"]
    assert c.text("eng_Latn-a") == ["Beginning and as it is written", None, None, None, "It happened"]
    m = c.meta["eng_Latn-a"]
    assert m["merged"] == ["MRK 1:1"] and m["range"] == ["MRK 1:2", "MRK 1:3"] and m["empty"] == 1
    d = read_corpus(tmp_path / "eb", "ebible", drop_merged=True)
    assert d.text("eng_Latn-a")[0] is None and d.text("deu_Latn")[0] == "Anfang"


def test_range_after_a_gap_is_not_guessed(tmp_path: Path) -> None:
    # MRK 1:5 follows MRK 1:3 in this subset: its <range> text is in MRK 1:4, not in our MRK 1:3
    eng = ["a", "b", "c", "<range>", "e"]
    c = read_corpus(_mini(tmp_path, {"eng-a.txt": eng, "deu-deu.txt": DEU}), "ebible")
    assert c.meta["eng_Latn"]["merged"] == [] and c.text("eng_Latn")[3] is None


def test_ebible_bad_line_count_bytes_code_and_duplicates(tmp_path: Path) -> None:
    root = _mini(tmp_path, {"deu-deu.txt": DEU, "rus-rus.txt": RUS[:4]})
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "ebible")
    assert err.value.file.endswith("rus-rus.txt") and "4 lines" in str(err.value) and err.value.language == "rus"
    c = read_corpus(root, "ebible", skip_bad=True)
    assert c.languages == ["deu_Latn"] and c.skipped[0]["file"].endswith("rus-rus.txt")

    bad = ("\n".join(RUS[:2]) + "\n").encode() + b"\xd0\n" + ("\n".join(RUS[3:]) + "\n").encode()
    root = _mini(tmp_path / "2", {"deu-deu.txt": DEU, "rus-rus.txt": bad})
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "ebible")
    assert err.value.line == 3 and err.value.file.endswith("rus-rus.txt")

    root = _mini(tmp_path / "3", {"deu-deu.txt": DEU, "qqq-x.txt": DEU})
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "ebible")
    assert err.value.file.endswith("qqq-x.txt")
    assert read_corpus(root, "ebible", skip_bad=True).languages == ["deu_Latn"]

    root = _mini(tmp_path / "4", {"deu-x.txt": DEU, "ger-x.txt": DEU, "rus-rus.txt": RUS})
    with pytest.raises(CorpusError) as err:          # two files -> deu_Latn-x
        read_corpus(root, "ebible")
    assert err.value.language == "deu_Latn-x"

    root = _mini(tmp_path / "5", {"deu-deu.txt": [""] * 5})
    with pytest.raises(CorpusError, match="no verse text"):
        read_corpus(root, "ebible")
    with pytest.raises(CorpusError, match="empty corpus"):
        read_corpus(root, "ebible", skip_bad=True)


def test_ebible_packed_archive_reuses_the_unpacked_cache(ebible_dir: Path, ebible) -> None:
    from conftest import shared
    c = read_corpus(shared("ebible.tar.xz"), "ebible")
    assert c.languages == ebible.languages and c.fingerprint() == ebible.fingerprint()


def test_ebible_scripts_agree_with_unicode_character_names(ebible) -> None:
    """Independent check of every translation's script: the majority first word of the Unicode
    character names (`DEVANAGARI LETTER KA` -> Devanagari) over verses 300-400, not the verses
    the reader sampled, and not the Script property the reader uses."""
    import unicodedata
    from collections import Counter

    from fontTools.unicodedata import script_code

    cjk = {"Hani", "Hans", "Hant", "Jpan"}
    wrong = {}
    for lang in ebible.languages:
        chars = Counter("".join(t for t in ebible.text(lang)[300:400] if t))
        words: Counter = Counter()
        for ch, n in chars.items():
            if ch.isalpha():
                words[unicodedata.name(ch, "?").split(" ")[0]] += n
        top = words.most_common(1)[0][0]
        expected = {"CJK": "Hani", "HIRAGANA": "Jpan", "KATAKANA": "Jpan", "HANGUL": "Hang",
                    "TAMIL": "Taml", "OL": "Olck"}.get(top) or script_code(top.title(), default=top)
        got = ebible.meta[lang]["script"]
        if not (got == expected or (expected in cjk and got in cjk)):
            wrong[lang] = (got, top)
    assert wrong == {}
    assert ebible.meta["lif_Limb-lifNT"]["script_mismatch"]          # metadata: Devanagari
    assert not ebible.meta["eng_Latn-engwebp"]["script_mismatch"]
