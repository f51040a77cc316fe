"""FLORES-200 reader: real data (skipped when absent) and malformed copies built in tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.errors import CorpusError


def test_flores_dev_real(flores_dir: Path) -> None:
    c = read_corpus(flores_dir, "flores")
    files = sorted((flores_dir / "dev").glob("*.dev"))
    assert c.languages == sorted(f.stem for f in files) and len(c.languages) == 204
    assert len(c.sentence_ids) == 997 and c.sentence_ids[0] == "dev:1" and c.sentence_ids[-1] == "dev:997"
    assert c.mask.all()
    # independent reading of the same files: every line of a few languages, stripped as the
    # reference (mPLM-Sim) strips them
    for lang in ("eng_Latn", "zho_Hant", "cat_Latn", "shn_Mymr"):
        raw = (flores_dir / "dev" / f"{lang}.dev").read_bytes().decode("utf-8")
        assert c.text(lang) == [ln.strip() for ln in raw.split("\n")[:-1]]
    assert c.text("zho_Hant")[2].startswith("JAS 39C")           # was " JAS 39C" in the file
    assert c.normalization == "strip" and c.provenance()["split"] == "dev"
    eng_first = (flores_dir / "dev" / "eng_Latn.dev").read_text(encoding="utf-8").split("\n")[0]
    assert c.text("eng_Latn")[0] == eng_first and eng_first.startswith("On Monday, scientists")
    assert c.meta["eng_Latn"]["licence"] == "CC-BY-SA-4.0" and c.meta["zho_Hans"]["script"] == "Hans"
    sel = c.select(pattern=["deu_*", "eng_Latn"], first=10)
    assert sel.languages == ["deu_Latn", "eng_Latn"] and len(sel.sentence_ids) == 10
    assert sel.text("eng_Latn") == c.text("eng_Latn")[:10]


def _mini(tmp_path: Path, flores_dir: Path, langs=("eng_Latn", "deu_Latn", "rus_Cyrl"), n=20) -> Path:
    root = tmp_path / "flores"
    (root / "dev").mkdir(parents=True)
    for lang in langs:
        lines = (flores_dir / "dev" / f"{lang}.dev").read_text(encoding="utf-8").split("\n")[:n]
        (root / "dev" / f"{lang}.dev").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_flores_short_file(tmp_path: Path, flores_dir: Path) -> None:
    root = _mini(tmp_path, flores_dir)
    f = root / "dev" / "deu_Latn.dev"
    f.write_text("\n".join(f.read_text(encoding="utf-8").split("\n")[:19]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "flores")
    assert err.value.language == "deu_Latn" and "19 lines" in str(err.value) and err.value.file == str(f)
    c = read_corpus(root, "flores", skip_bad=True)
    assert c.languages == ["eng_Latn", "rus_Cyrl"] and len(c.sentence_ids) == 20
    assert c.skipped and c.skipped[0]["language"] == "deu_Latn"


def test_flores_bad_bytes_and_unknown_name(tmp_path: Path, flores_dir: Path) -> None:
    root = _mini(tmp_path, flores_dir)
    f = root / "dev" / "rus_Cyrl.dev"
    data = f.read_bytes().split(b"\n")
    data[6] = data[6][:5] + b"\xff" + data[6][5:]
    f.write_bytes(b"\n".join(data))
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "flores")
    assert err.value.line == 7 and err.value.language == "rus_Cyrl"
    f.unlink()
    (root / "dev" / "qqq_Latn.dev").write_text("x\n" * 20, encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "flores")
    assert err.value.file.endswith("qqq_Latn.dev")


def test_flores_missing_split_and_devtest(tmp_path: Path, flores_dir: Path) -> None:
    root = _mini(tmp_path, flores_dir)
    with pytest.raises(CorpusError, match="devtest"):
        read_corpus(root, "flores", split="devtest")
    (root / "devtest").mkdir()
    for lang in ("eng_Latn", "deu_Latn", "rus_Cyrl"):
        (root / "devtest" / f"{lang}.devtest").write_text(f"{lang} a\n{lang} b\n", encoding="utf-8")
    c = read_corpus(root, "flores", split="dev+devtest")
    assert len(c.sentence_ids) == 22 and c.sentence_ids[20] == "devtest:1"
    assert c.text("deu_Latn")[21] == "deu_Latn b"
    assert read_corpus(root / "devtest", "flores", split="devtest").sentence_ids == ["devtest:1", "devtest:2"]
    # the split read is recorded (not "dev"), and so is where documents come from when known
    assert c.split == "dev+devtest" and read_corpus(root, "flores", split="devtest").provenance()["split"] == "devtest"
    assert c.documents is None and "documents" not in c.provenance()     # no metadata_*.tsv here
