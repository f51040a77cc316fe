"""UDHR in Unicode reader: `index.xml` + `xml/udhr_<key>.xml` (or both in one folder).

Each file is parsed with an XML parser (ElementTree, namespace `http://www.unhchr.ch/udhr`).
Sentence ids name the place of a text in the declaration, so an incomplete translation is
partial (ids missing), never shifted:

    title                  the document title
    preamble.title         the preamble's title;  preamble.1 ... its paragraphs
    art1.title             article 1's title;     art1.p1 ... paragraphs directly in the article
    art25.l2.p1            article 25, list item 2, paragraph 1

Positions are translations only where the layout agrees: within a section (the preamble, an
article) a translation's paragraph and list-item units are kept only when its layout (the
sequence of paragraphs and list items) equals the section's reference layout, the one most
translations share (`REFERENCE_LAYOUT`); otherwise that section's units are missing for that
translation, never shifted. Titles are keyed by structure alone and always kept. What was left
out is in `meta[lang]["layout_dropped"]` and `skipped`, and logged. `documents` are articles.

Translator notes (`<note>`) are not part of the parallel text. Language id from the root's
`iso639-3` + `iso15924` attributes; several files of one code all get `-<key>` variants
(`por_Latn-por_BR`). `und` files are left out with a note unless `include_und=True`.
Only files at `stages` (index.xml; default 4 and 5 = complete, checked texts) are read.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Iterable

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import Skips, check_ids_unique, language_error_as_corpus_error, log
from babelmap.engine.errors import CorpusError, LanguageError
from babelmap.engine.languages import detect_script, language_name, make_id, normalize_code

NS = "{http://www.unhchr.ch/udhr}"
LICENCE = "OHCHR translations via UDHR in Unicode; no open licence stated"
DEFAULT_STAGES = (4, 5)
# The layout most of the 464 translations of UDHR in Unicode (commit 91daa23) share, per section:
# `p` a paragraph, `l1` a list item of one paragraph. It is the declaration's own structure for
# every article; for the preamble (7 recitals and a proclamation that translations split into
# 8, 9, 10 or 11 paragraphs) it is the most common split, 9 (127 of 456 translations). Using a fixed
# reference makes a translation's units the same whichever other files are read with it.
_L = "l1"
REFERENCE_LAYOUT: dict[str, str] = {
    "preamble": " ".join(["p"] * 9),
    **{f"art{n}": "p" for n in (1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 18, 19, 22, 24, 28, 30)},
    "art2": "p p",
    **{f"art{n}": f"{_L} {_L}" for n in (11, 13, 14, 15, 17, 20, 25, 27)},
    **{f"art{n}": f"{_L} {_L} {_L}" for n in (16, 21, 26, 29)},
    "art23": f"{_L} {_L} {_L} {_L}",
}
NORMALIZATION = "strip; runs of whitespace (XML layout) collapsed to one space"


def _text(el: ET.Element) -> str | None:
    t = " ".join("".join(el.itertext()).split())
    return t or None


def _line_of_nth(data: bytes, tag: bytes, n: int) -> int | None:
    """Line number of the n-th (0-based) occurrence of `<tag` in the raw file (for error messages)."""
    pos = -1
    for _ in range(n + 1):
        pos = data.find(b"<" + tag, pos + 1)
        if pos < 0:
            return None
    return data.count(b"\n", 0, pos) + 1


def parse_udhr_file(path: Path, language: str | None = None) -> tuple[dict[str, str], dict[str, str | None],
                                                                     dict[str, tuple], list[str], dict[str, str]]:
    """One UDHR XML file -> (root attributes, {sentence id: text or None}, {sentence id: sort key},
    notes about repairs, {section: layout}). A section is `preamble` or `art<N>`; its layout is the
    sequence of its positional units (`p` a paragraph, `l<k>` a list item of k paragraphs).
    Raises CorpusError (file, line, language) on malformed XML or ambiguous numbering."""
    data = path.read_bytes()
    language = language or _language_hint(data, path)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise CorpusError(f"malformed XML: {e}", file=str(path), line=line, language=language,
                          hint="the file is truncated or broken; restore it, or pass --skip-bad") from None
    if root.tag != NS + "udhr":
        raise CorpusError(f"root element is {root.tag}, not udhr (namespace {NS[1:-1]})", file=str(path), line=1,
                          language=language)
    language = root.get("iso639-3") or language
    texts: dict[str, str | None] = {}
    keys: dict[str, tuple] = {}
    notes: list[str] = []
    layouts: dict[str, str] = {}

    def put(sid: str, key: tuple, el: ET.Element) -> None:
        if sid in texts:
            raise CorpusError(f"sentence id {sid} occurs twice", file=str(path), language=language,
                              hint="fix the file's structure, or pass --skip-bad")
        texts[sid], keys[sid] = _text(el), key

    title = root.find(NS + "title")
    if title is not None:
        put("title", (0,), title)
    pre = root.find(NS + "preamble")
    if pre is not None:
        t = pre.find(NS + "title")
        if t is not None:
            put("preamble.title", (1, 0, 0), t)
        paras = pre.findall(NS + "para")
        for k, para in enumerate(paras, 1):
            put(f"preamble.{k}", (1, 1, k), para)
        layouts["preamble"] = " ".join("p" for _ in paras)
    articles = root.findall(NS + "article")
    numbers = _article_numbers(articles, path, data, notes, language)
    for num, art in zip(numbers, articles):
        n_title = n_para = n_item = 0
        layout: list[str] = []
        for child in art:
            tag = child.tag[len(NS):] if child.tag.startswith(NS) else child.tag
            if tag == "title":
                n_title += 1
                put(f"art{num}.title" + ("" if n_title == 1 else str(n_title)), (2, num, 0, n_title, 0), child)
            elif tag == "para":
                n_para += 1
                layout.append("p")
                put(f"art{num}.p{n_para}", (2, num, 1, n_para, 0), child)
            elif tag == "orderedlist":
                for item in child.findall(NS + "listitem"):
                    n_item += 1
                    paras = item.findall(NS + "para")
                    layout.append(f"l{len(paras)}")
                    if not paras:
                        put(f"art{num}.l{n_item}", (2, num, 2, n_item, 0), item)
                    for j, para in enumerate(paras, 1):
                        put(f"art{num}.l{n_item}.p{j}", (2, num, 2, n_item, j), para)
        layouts[f"art{num}"] = " ".join(layout)
    return dict(root.attrib), texts, keys, notes, layouts


def _language_hint(data: bytes, path: Path) -> str:
    """The `iso639-3` attribute as written in the raw file (readable even when the XML is broken),
    else the file key: so every error names a language."""
    m = re.search(rb'iso639-3="([^"]+)"', data[:4000])
    if m:
        return m.group(1).decode("ascii", "replace")
    name = path.name
    return name[len("udhr_"):-len(".xml")] if name.startswith("udhr_") and name.endswith(".xml") else path.stem


def section_of(sid: str) -> str | None:
    """The layout section of a positional unit (`preamble.3` -> `preamble`, `art25.l2.p1` -> `art25`);
    None for titles, which are keyed by structure alone and never depend on the layout."""
    head, _, rest = sid.partition(".")
    if not rest or rest.startswith("title"):
        return None
    return head


def majority_layouts(layouts: Iterable[dict[str, str]]) -> dict[str, str | None]:
    """Per section, the layout most translations share; None where the top two are tied (then no
    translation's positions can be trusted in that section)."""
    counts: dict[str, Counter] = {}
    for lay in layouts:
        for sec, sig in lay.items():
            counts.setdefault(sec, Counter())[sig] += 1
    out: dict[str, str | None] = {}
    for sec, c in counts.items():
        top = c.most_common(2)
        out[sec] = None if len(top) > 1 and top[0][1] == top[1][1] else top[0][0]
    return out


def _describe(sig: str) -> str:
    return f"{len(sig.split())} units ({sig or 'none'})"


def _article_numbers(articles: list[ET.Element], path: Path, data: bytes, notes: list[str],
                     language: str | None = None) -> list[int]:
    """Article numbers from `number=`; a duplicate or out-of-order number is repaired from the
    position only when its neighbours leave no doubt (e.g. 28, 2, 30 -> 29), else an error."""
    raw = []
    for i, art in enumerate(articles):
        val = art.get("number")
        raw.append(int(val) if val is not None and val.isdigit() else None)
    out = []
    for i, n in enumerate(raw):
        prev = out[-1] if out else 0
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if n is not None and n > prev:
            out.append(n)
            continue
        guess = prev + 1
        if nxt is None or nxt == guess + 1:
            notes.append(f"article {i + 1} numbered {n!r}: read as {guess}")
            out.append(guess)
            continue
        raise CorpusError(f"article number {n!r} after article {prev} cannot be placed",
                          file=str(path), line=_line_of_nth(data, b"article", i), language=language,
                          hint="fix the number= attribute, or pass --skip-bad")
    return out


def _read_index(root: Path) -> dict[str, dict] | None:
    idx = root / "index.xml"
    if not idx.exists():
        return None
    try:
        tree = ET.parse(idx)
    except ET.ParseError as e:
        raise CorpusError(f"malformed XML: {e}", file=str(idx), line=e.position[0]) from None
    out = {}
    for el in tree.getroot().iter():
        if el.tag.split("}")[-1] == "udhr" and el.get("f"):
            out[el.get("f")] = dict(el.attrib)
    return out


def read_udhr(path: str | Path, *, skip_bad: bool = False, stages: Iterable[int] | None = DEFAULT_STAGES,
              include_und: bool = False, name: str = "udhr", layout: str = "reference") -> ParallelCorpus:
    """Read UDHR in Unicode XML files into a ParallelCorpus (see module doc). `stages=None` reads
    every file regardless of its stage in index.xml. `layout="reference"` compares each section
    with `REFERENCE_LAYOUT` (the majority of the whole collection); `"corpus"` with the majority
    of the files read."""
    root = Path(path)
    if root.is_file():      # one file: its index.xml is beside it or one folder up
        files = {root.name[len("udhr_"):-len(".xml")]: root} if root.name.startswith("udhr_") else {}
        root = root.parent.parent if (root.parent.parent / "index.xml").exists() else root.parent
    else:
        folder = root / "xml" if (root / "xml").is_dir() else root
        files = {p.name[len("udhr_"):-len(".xml")]: p for p in sorted(folder.glob("udhr_*.xml"))}
    if not files:
        raise CorpusError("no udhr_<key>.xml files here", file=str(root),
                          hint="point --corpus at the folder with index.xml and xml/")
    skips = Skips(skip_bad)
    index = _read_index(root)
    wanted = set(stages) if stages is not None else None
    if index is not None and wanted is not None:
        for key in sorted(files):
            entry = index.get(key)
            stage = int(entry["stage"]) if entry and entry.get("stage", "").isdigit() else None
            if stage not in wanted:
                skips.note(f"udhr_{key}.xml", f"stage {stage} not in {sorted(wanted)}", file=str(files[key]))
                del files[key]
    parsed = []
    sort_keys: dict[str, tuple] = {}
    all_layouts: list[dict[str, str]] = []
    for key, f in sorted(files.items()):
        try:
            attrs, texts, keys, notes, layouts = parse_udhr_file(f, (index or {}).get(key, {}).get("iso639-3"))
        except CorpusError as e:
            skips.handle(e)
            continue
        all_layouts.append(layouts)
        code = attrs.get("iso639-3") or (index or {}).get(key, {}).get("iso639-3") or ""
        if code == "und" and not include_und:
            skips.note(f.name, "language undetermined (iso639-3 'und'); pass include_und=True to keep it",
                       file=str(f), language="und")
            continue
        script = attrs.get("iso15924") or detect_script([t for t in texts.values() if t])
        if not any(t is not None for t in texts.values()):
            skips.handle(CorpusError("no text in this file", file=str(f), language=code))
            continue
        parsed.append((key, f, code, script, attrs, texts, notes, layouts))
        sort_keys.update(keys)
    per_code: dict[str, int] = {}
    for _, _, code, *_ in parsed:
        per_code[code] = per_code.get(code, 0) + 1
    rows, metas, by_id = {}, {}, {}
    layout_of: dict[str, dict[str, str]] = {}
    for key, f, code, script, attrs, texts, notes, layouts in parsed:
        variant = key if per_code[code] > 1 else None
        try:
            if code == "und":
                lang = make_id("und", script or "Zyyy", variant or key)
            else:
                lang = normalize_code(code, script=script)
                lang = make_id(lang.split("_")[0], lang.split("_")[1], variant)
        except LanguageError as e:
            skips.handle(language_error_as_corpus_error(e, str(f), code))
            continue
        by_id.setdefault(lang, []).append(str(f))
        rows[lang] = texts
        layout_of[lang] = layouts
        entry = (index or {}).get(key, {})
        metas[lang] = {"name": attrs.get("n") or _name(lang), "script": lang.split("-")[0].split("_")[1],
                       "file": str(f), "licence": LICENCE, "variant": variant, "key": key,
                       "stage": int(entry["stage"]) if entry.get("stage", "").isdigit() else None,
                       "bcp47": entry.get("bcp47") or attrs.get("{http://www.w3.org/XML/1998/namespace}lang"),
                       "dir": attrs.get("dir"), "repairs": notes}
    for lang in check_ids_unique(by_id, skips):
        rows.pop(lang, None)
    if not rows:
        raise CorpusError("empty corpus: no UDHR file left to read", file=str(root))
    if layout == "reference":
        majority = {**majority_layouts(all_layouts), **REFERENCE_LAYOUT}
    elif layout == "corpus":
        majority = majority_layouts(all_layouts)
    else:
        raise CorpusError(f"unknown UDHR layout rule {layout!r}", hint="use 'reference' or 'corpus'")
    drop_unlike_majority(rows, layout_of, majority, metas, skips)
    sids = sorted({s for r in rows.values() for s in r}, key=lambda s: sort_keys[s])
    langs = sorted(rows)
    texts = [[rows[l].get(s) for s in sids] for l in langs]
    return ParallelCorpus(name, langs, sids, texts, {l: metas[l] for l in langs}, skips.records,
                          documents=[document_of(s) for s in sids], normalization=NORMALIZATION,
                          documents_source="UDHR article (the title and the preamble each their own)")


def document_of(sid: str) -> str:
    """The document of a UDHR unit: its article (`art25`), `preamble`, or `title`."""
    return sid.split(".", 1)[0]


def drop_unlike_majority(rows: dict[str, dict[str, str | None]], layout_of: dict[str, dict[str, str]],
                         majority: dict[str, str | None], metas: dict[str, dict], skips: Skips) -> None:
    """In each section whose layout differs from the majority's, a translation's positional units
    are removed (missing, never shifted); titles stay. Recorded per language in `meta["layout_dropped"]`
    and in `skipped`, logged."""
    n_langs = n_secs = 0
    for lang in sorted(rows):
        dropped = {}
        for sec, sig in layout_of[lang].items():
            ref = majority.get(sec)
            if sig == ref:
                continue
            why = (f"{_describe(sig)}; most translations: {_describe(ref)}" if ref is not None else
                   f"{_describe(sig)}; no layout is shared by a majority of the translations read")
            dropped[sec] = why
            for sid in [s for s in rows[lang] if section_of(s) == sec]:
                del rows[lang][sid]
        metas[lang]["layout_dropped"] = dropped
        if dropped:
            n_langs, n_secs = n_langs + 1, n_secs + len(dropped)
            skips.note(f"{Path(metas[lang]['file']).name}: {', '.join(dropped)}",
                       "laid out unlike most translations: those sections' paragraphs and list items are "
                       "left out for this language (titles kept); see meta['layout_dropped']",
                       file=metas[lang]["file"], language=lang)
    if n_langs:
        log.warning("UDHR: %d of %d translations lay out %d sections unlike the majority; those units are "
                    "left out for them (recorded in the corpus's skipped list)", n_langs, len(rows), n_secs)


def _name(lang: str) -> str | None:
    try:
        return language_name(lang)
    except LanguageError:
        return None
