"""UDHR in Unicode reader: real data (skipped when absent) and malformed copies in tmp_path."""
from __future__ import annotations

import re
import shutil
import xml.dom.minidom
from pathlib import Path

import pytest

from conftest import shared

from babelmap.engine.corpora import read_corpus
from babelmap.engine.errors import CorpusError


@pytest.fixture(scope="module")
def udhr_dir() -> Path:
    return shared("udhr")


@pytest.fixture(scope="module")
def udhr(udhr_dir):
    return read_corpus(udhr_dir, "udhr")


def _dom_texts(path: Path) -> dict[str, str]:
    """Independent reading with minidom: article title and first paragraph/list-item paragraph."""
    doc = xml.dom.minidom.parse(str(path))

    def text(node) -> str:
        out = []
        for ch in node.childNodes:
            out.append(ch.data if ch.nodeType == ch.TEXT_NODE else text(ch))
        return "".join(out)

    got = {}
    for art in doc.getElementsByTagName("article"):
        n = art.getAttribute("number")
        kids = [k for k in art.childNodes if k.nodeType == k.ELEMENT_NODE]
        got[f"art{n}.title"] = " ".join(text(kids[0]).split())
        paras = [k for k in kids if k.tagName == "para"]
        if paras:
            got[f"art{n}.p1"] = " ".join(text(paras[0]).split())
        items = art.getElementsByTagName("listitem")
        for i, item in enumerate(items, 1):
            got[f"art{n}.l{i}.p1"] = " ".join(text(item.getElementsByTagName("para")[0]).split())
    return got


def test_udhr_real_counts(udhr, udhr_dir: Path) -> None:
    c = udhr
    # data README: 460 files at stage 4 or 5, 6 of all 464 are `und` (all at stage 4/5 here)
    assert len(c.languages) == 454
    assert sum("undetermined" in r["reason"] for r in c.skipped) == 6
    assert sum("stage" in r["reason"] for r in c.skipped) == 4
    assert len({l.split("_")[0] for l in c.languages}) == 402
    assert c.sentence_ids[:3] == ["title", "preamble.title", "preamble.1"]
    assert "art25.l2.p1" in c.sentence_ids and c.sentence_ids[-1].startswith("art30.")
    assert [l for l in c.languages if l.startswith("por_")] == ["por_Latn-por_BR", "por_Latn-por_PT"]
    assert len([l for l in c.languages if l.startswith("oci_")]) == 7
    assert c.meta["eng_Latn"]["stage"] == 5 and c.meta["eng_Latn"]["variant"] is None
    every = read_corpus(udhr_dir, "udhr", stages=None, include_und=True)
    assert len(every.languages) == 464


def test_udhr_texts_match_independent_parse(udhr, udhr_dir: Path) -> None:
    for lang, key in (("eng_Latn", "eng"), ("rus_Cyrl", "rus"), ("arb_Arab", "arb"),
                      ("deu_Latn-deu_1996", "deu_1996"), ("amh_Ethi", "amh")):
        row = dict(zip(udhr.sentence_ids, udhr.text(lang)))
        for sid, expected in _dom_texts(udhr_dir / "xml" / f"udhr_{key}.xml").items():
            assert row[sid] == (expected or None), (lang, sid)
    eng = dict(zip(udhr.sentence_ids, udhr.text("eng_Latn")))
    assert eng["art1.p1"].startswith("All human beings are born free and equal in dignity and rights.")
    assert eng["art25.l2.p1"].startswith("Motherhood and childhood are entitled to special care")


def test_udhr_incomplete_is_partial_not_shifted(udhr) -> None:
    # amh has no preamble: its preamble ids are missing, its articles stay in place
    amh = dict(zip(udhr.sentence_ids, udhr.text(next(l for l in udhr.languages if l.startswith("amh_")))))
    assert amh["preamble.1"] is None and amh["art1.title"] is not None
    # shk numbers its article 29 as "2": repaired from its neighbours, recorded, not a duplicate
    assert udhr.meta["shk_Latn"]["repairs"] == ["article 29 numbered 2: read as 29"]


def _copy(udhr_dir: Path, tmp_path: Path, keys=("eng", "deu_1996", "rus")) -> Path:
    root = tmp_path / "udhr"
    (root / "xml").mkdir(parents=True)
    shutil.copy(udhr_dir / "index.xml", root / "index.xml")
    for k in keys:
        shutil.copy(udhr_dir / "xml" / f"udhr_{k}.xml", root / "xml" / f"udhr_{k}.xml")
    return root


def test_udhr_truncated_xml(udhr_dir: Path, tmp_path: Path) -> None:
    root = _copy(udhr_dir, tmp_path)
    f = root / "xml" / "udhr_rus.xml"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "udhr")
    assert err.value.file == str(f) and err.value.line is not None and err.value.line > 10
    c = read_corpus(root, "udhr", skip_bad=True)
    assert c.languages == ["deu_Latn", "eng_Latn"]
    bad = [r for r in c.skipped if r["file"] == str(f)]
    assert len(bad) == 1 and bad[0]["language"] == "rus" and bad[0]["line"] > 10


def test_udhr_dropped_articles_and_bad_numbers(udhr_dir: Path, tmp_path: Path) -> None:
    root = _copy(udhr_dir, tmp_path)
    f = root / "xml" / "udhr_deu_1996.xml"
    full = read_corpus(root, "udhr")
    text = f.read_text(encoding="utf-8")
    # remove the preamble and article 2 entirely
    text = re.sub(r"<preamble>.*?</preamble>", "", text, flags=re.S)
    text = re.sub(r"<article number=.2.>.*?</article>", "", text, count=1, flags=re.S)
    f.write_text(text, encoding="utf-8")
    part = read_corpus(root, "udhr")
    a, b = dict(zip(full.sentence_ids, full.text("deu_Latn"))), dict(zip(part.sentence_ids, part.text("deu_Latn")))
    assert b["preamble.1"] is None and b["art2.title"] is None
    assert b["art3.title"] == a["art3.title"] and b["art30.p1"] == a["art30.p1"]
    # three articles all numbered 1: no way to place them -> error with a line
    text = re.sub(r'<article number=.(3|4).>', "<article number='1'>", text)
    f.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        read_corpus(root, "udhr")
    assert err.value.file == str(f) and err.value.line is not None


def test_udhr_single_file(udhr_dir: Path, udhr) -> None:
    c = read_corpus(udhr_dir / "xml" / "udhr_eng.xml", "udhr")
    assert c.languages == ["eng_Latn"] and c.meta["eng_Latn"]["stage"] == 5
    assert c.text("eng_Latn") == [t for t, s in zip(udhr.text("eng_Latn"), udhr.sentence_ids) if s in c.sentence_ids]


def test_udhr_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "u").mkdir()
    with pytest.raises(CorpusError, match="no udhr_"):
        read_corpus(tmp_path / "u", "udhr")
