"""UDHR aligned by structure: a section's paragraph and list-item units are kept only where the
translation's layout matches the reference (majority) layout, else missing, never shifted.
Fast tests on small hand-made XML; a slow one checks retrieval with the default model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.corpora.udhr import REFERENCE_LAYOUT, majority_layouts, parse_udhr_file, section_of

NS = "http://www.unhchr.ch/udhr"


def _xml(code: str, preamble: list[str], articles: dict[int, list]) -> str:
    """A UDHR file: articles map number -> list of "para text" or ["item text", ...] (a list)."""
    out = [f'<?xml version="1.0" encoding="UTF-8"?>',
           f'<udhr xmlns="{NS}" iso639-3="{code}" key="{code}" n="{code}" iso15924="Latn">',
           f"<title>Declaration {code}</title>", "<preamble><title>Preamble</title>"]
    out += [f"<para>{p}</para>" for p in preamble]
    out.append("</preamble>")
    for n, body in articles.items():
        out.append(f'<article number="{n}"><title>Article {n} {code}</title>')
        for part in body:
            if isinstance(part, list):
                out.append("<orderedlist>" + "".join(f"<listitem><para>{t}</para></listitem>" for t in part)
                           + "</orderedlist>")
            else:
                out.append(f"<para>{part}</para>")
        out.append("</article>")
    out.append("</udhr>")
    return "\n".join(out)


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "udhr"
    root.mkdir()
    for code, text in files.items():
        (root / f"udhr_{code}.xml").write_text(text, encoding="utf-8")
    return root


def _corpus_dir(tmp_path: Path) -> Path:
    pre9 = [f"recital {i}" for i in range(1, 10)]
    good = {1: ["one"], 2: ["two a", "two b"], 11: [["eleven 1", "eleven 2"]]}
    return _write(tmp_path, {
        "deu": _xml("deu", pre9, good),
        "fra": _xml("fra", pre9, good),
        # Italian: preamble split into 10, article 2 in one paragraph
        "ita": _xml("ita", pre9[:7] + ["L'ASSEMBLEA", "proclama", "la dichiarazione"],
                    {1: ["uno"], 2: ["due (a and b merged)"], 11: [["undici 1", "undici 2"]]}),
        # Spanish: article 11 as two plain paragraphs instead of a list
        "spa": _xml("spa", pre9, {1: ["uno"], 2: ["dos a", "dos b"], 11: ["once 1", "once 2"]}),
    })


def test_unlike_layouts_are_missing_not_shifted(tmp_path: Path) -> None:
    c = read_corpus(_corpus_dir(tmp_path), "udhr")
    row = {l: dict(zip(c.sentence_ids, c.text(l))) for l in c.languages}
    # matching sections keep their positions
    assert row["deu_Latn"]["art2.p2"] == "two b" and row["fra_Latn"]["preamble.9"] == "recital 9"
    assert row["spa_Latn"]["art2.p2"] == "dos b" and row["ita_Latn"]["art11.l2.p1"] == "undici 2"
    # Italian's preamble (10 paragraphs) and article 2 (1 paragraph): every unit missing, titles kept
    assert all(row["ita_Latn"][f"preamble.{k}"] is None for k in range(1, 10))
    assert row["ita_Latn"]["art2.p1"] is None and row["ita_Latn"]["art2.title"] == "Article 2 ita"
    assert row["ita_Latn"]["preamble.title"] == "Preamble" and row["ita_Latn"]["art1.p1"] == "uno"
    # nothing of Italian's is shifted into another id; its tenth paragraph has no id at all
    assert "preamble.10" not in c.sentence_ids
    assert not any(t and ("proclama" in t or "merged" in t) for t in c.text("ita_Latn"))
    # Spanish's article 11 (paragraphs, not list items): missing, and no art11.p* id exists
    assert row["spa_Latn"]["art11.l1.p1"] is None and not any(s.startswith("art11.p") for s in c.sentence_ids)
    # recorded per language, and in skipped with language and reason
    assert set(c.meta["ita_Latn"]["layout_dropped"]) == {"preamble", "art2"}
    assert "10 units" in c.meta["ita_Latn"]["layout_dropped"]["preamble"]
    assert c.meta["deu_Latn"]["layout_dropped"] == {}
    rec = [r for r in c.skipped if r["language"] == "spa_Latn"]
    assert len(rec) == 1 and "art11" in rec[0]["what"] and "unlike most translations" in rec[0]["reason"]
    # documents are articles
    assert c.documents[c.sentence_ids.index("art2.p1")] == "art2"
    assert c.documents[c.sentence_ids.index("preamble.3")] == "preamble"


def test_layout_from_the_files_read(tmp_path: Path) -> None:
    root = _corpus_dir(tmp_path)
    c = read_corpus(root, "udhr", layout="corpus")
    # majority of these four files: the same as the reference here
    assert c.text("ita_Latn")[c.sentence_ids.index("art2.p1")] is None
    # two files that disagree: no majority, so neither keeps that section's positions
    two = tmp_path / "two"
    two.mkdir()
    for k in ("deu", "ita"):
        (two / f"udhr_{k}.xml").write_bytes((root / f"udhr_{k}.xml").read_bytes())
    c2 = read_corpus(two, "udhr", layout="corpus")
    assert all(t is None for s, t in zip(c2.sentence_ids, c2.text("deu_Latn")) if section_of(s) == "art2")
    assert c2.text("deu_Latn")[c2.sentence_ids.index("art1.p1")] == "one"
    # with the reference layout a file's units do not depend on which others are read with it
    alone = read_corpus(root / "udhr_deu.xml", "udhr")
    assert dict(zip(alone.sentence_ids, alone.text("deu_Latn")))["art2.p2"] == "two b"


def test_section_of_and_majority() -> None:
    assert section_of("preamble.3") == "preamble" and section_of("art25.l2.p1") == "art25"
    assert section_of("art3.title") is None and section_of("title") is None and section_of("preamble.title") is None
    assert majority_layouts([{"a": "p"}, {"a": "p"}, {"a": "p p"}]) == {"a": "p"}
    assert majority_layouts([{"a": "p"}, {"a": "p p"}]) == {"a": None}


def test_reference_layout_is_the_majority_of_the_real_collection(tmp_path: Path) -> None:
    from conftest import shared
    xml = shared("udhr", "xml")
    layouts = [parse_udhr_file(p)[4] for p in sorted(xml.glob("udhr_*.xml"))]
    assert len(layouts) == 464
    assert majority_layouts(layouts) == REFERENCE_LAYOUT
    c = read_corpus(shared("udhr"), "udhr")
    row = dict(zip(c.sentence_ids, c.text("fra_Latn")))
    eng = dict(zip(c.sentence_ids, c.text("eng_Latn")))
    # the example: English splits the proclamation into 3 paragraphs (10 in all), French
    # into 2 (9): English's preamble units are missing, none is paired with French's 'Proclame'
    assert eng["preamble.9"] is None and row["preamble.9"].startswith("Proclame")
    assert set(c.meta["eng_Latn"]["layout_dropped"]) == {"preamble"}
    # a language whose layouts all match keeps every unit it has
    assert c.meta["fra_Latn"]["layout_dropped"] == {}


@pytest.mark.slow
def test_retrieval_with_the_default_model() -> None:
    """English-to-X top-1 retrieval at the last layer over non-title units (issue 16.3)."""
    from conftest import shared
    root = shared("udhr")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import torch
    from udhr_retrieval import retrieval

    from babelmap.engine.models import load_model
    torch.set_num_threads(int(os.environ.get("BABELMAP_THREADS", "2")))
    c = read_corpus(root, "udhr")
    lm = load_model(None)
    for tgt in ("fra_Latn", "deu_Latn-deu_1996", "spa_Latn", "rus_Cyrl", "ita_Latn", "por_Latn-por_BR",
                "nld_Latn", "pol_Latn"):
        r = retrieval(c, lm, "eng_Latn", tgt)
        assert r["units"] == 50 and r["top1"] >= 0.97, (tgt, r["top1"], r["misses"])
    # below 0.97 with this 4-bit small model, on units whose pairing was checked by hand (every
    # miss is a correctly paired article, e.g. Turkish art7 'Kanun önünde herkes eşittir' = 'All
    # are equal before the law'): model limits, not alignment; kept as floors so a regression shows
    for tgt, floor in (("tur_Latn", 0.80), ("por_Latn-por_PT", 0.90)):
        r = retrieval(c, lm, "eng_Latn", tgt)
        assert r["units"] == 50 and r["top1"] >= floor, (tgt, r["top1"], r["misses"])
