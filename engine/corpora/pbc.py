"""Parallel Bible Corpus (PBC) text format reader: a folder of `<code>-x-bible[-...].txt` (or one file).

Format: `# key: value` header lines (keys case-insensitive, values stripped), then one line per
verse `BBCCCVVV<TAB>text`, sorted by id without duplicates. Sentence ids are the PBC verse ids,
kept as written; the axis is the sorted union over all files. A verse absent from a file is
missing; an id with no text is missing too, and its text sits in the previous verse, which is
flagged in `meta[lang]["merged"]` (`drop_merged=True` marks those missing as well).
Language from the `closest ISO 639-3` header (else the file-name prefix), script detected from
the text; several files of one language all get the rest of the file name as variant
(`pon_Latn-x-bible-new`).
"""
from __future__ import annotations

import re
from pathlib import Path

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import (NORMALIZATION, Skips, check_ids_unique, clean_text,
                                            language_error_as_corpus_error, read_lines)
from babelmap.engine.errors import CorpusError, LanguageError
from babelmap.engine.languages import detect_script, iso639_3, language_name, make_id, normalize_code

_HEADER = re.compile(r"^#\s*([^:]+?)\s*:\s*(.*?)\s*$")
_VERSE = re.compile(r"^(\d{8})(?:\t(.*))?$")


def parse_pbc_file(path: Path) -> tuple[dict[str, str], list[tuple[str, str | None]], list[str], list[str]]:
    """One PBC file -> (headers with lower-cased keys, [(verse id, text or None)], merged ids, empty ids).
    Raises CorpusError naming file and line on a malformed line, a duplicate or an unsorted id."""
    lang = path.stem.split("-", 1)[0]
    lines = read_lines(path, language=lang)
    headers: dict[str, str] = {}
    verses: list[tuple[str, str | None]] = []
    merged, empty = [], []
    prev_id, last_text_id = None, None
    seen_line: dict[str, int] = {}
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = _HEADER.match(line)
            if m:
                headers[m.group(1).lower()] = m.group(2)
                lang = headers.get("closest iso 639-3") or lang
            continue
        m = _VERSE.match(line)
        if not m:
            raise CorpusError(f"not a `BBCCCVVV<TAB>text` line: {line[:40]!r}", file=str(path), line=no,
                              language=lang, hint="fix the line, or pass --skip-bad")
        vid, text = m.group(1), clean_text(m.group(2))
        if vid in seen_line:
            raise CorpusError(f"verse id {vid} occurs twice (first on line {seen_line[vid]})", file=str(path),
                              line=no, language=lang, hint="remove the duplicate, or pass --skip-bad")
        if prev_id is not None and vid < prev_id:
            raise CorpusError(f"verse id {vid} comes after {prev_id}: the file is not sorted", file=str(path),
                              line=no, language=lang, hint="sort the verse lines by id, or pass --skip-bad")
        seen_line[vid] = no
        prev_id = vid
        if text is None:
            verses.append((vid, None))
            empty.append(vid)
            if last_text_id is not None and last_text_id not in merged:
                merged.append(last_text_id)
        else:
            verses.append((vid, text))
            last_text_id = vid
    return headers, verses, merged, empty


def read_pbc(path: str | Path, *, skip_bad: bool = False, drop_merged: bool = False,
             name: str = "pbc") -> ParallelCorpus:
    """Read PBC text files (a folder of them, or one file) into a ParallelCorpus (see module doc)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".txt")
    if not files:
        raise CorpusError("no PBC .txt files here", file=str(p))
    skips = Skips(skip_bad)
    parsed = []
    for f in files:
        try:
            headers, verses, merged, empty = parse_pbc_file(f)
        except CorpusError as e:
            skips.handle(e)
            continue
        texts = [t for _, t in verses if t is not None]
        if not texts:
            skips.handle(CorpusError("no verse text in this file", file=str(f),
                                     language=headers.get("closest iso 639-3") or f.stem.split("-", 1)[0]))
            continue
        code = headers.get("closest iso 639-3") or f.stem.split("-", 1)[0]
        try:
            base = normalize_code(code, script=detect_script(texts[:200]))
        except LanguageError as e:
            skips.handle(language_error_as_corpus_error(e, str(f), code))
            continue
        parsed.append((f, base, headers, verses, merged, empty))
    per_lang: dict[str, int] = {}
    for _, base, *_ in parsed:
        per_lang[iso639_3(base)] = per_lang.get(iso639_3(base), 0) + 1
    rows, metas, by_id = {}, {}, {}
    for f, base, headers, verses, merged, empty in parsed:
        iso3, script = base.split("_")
        stem_rest = f.stem.split("-", 1)[1] if "-" in f.stem else f.stem
        variant = stem_rest if per_lang[iso3] > 1 else None
        lang = make_id(iso3, script, variant)
        by_id.setdefault(lang, []).append(str(f))
        drop = set(merged) if drop_merged else set()
        rows[lang] = {vid: (None if vid in drop else t) for vid, t in verses}
        metas[lang] = {"name": headers.get("language_name") or _name(lang), "script": script, "file": str(f),
                       "licence": headers.get("copyright_short") or None, "variant": variant,
                       "merged": merged, "range": empty, "headers": headers}
    for lang in check_ids_unique(by_id, skips):
        rows.pop(lang, None)
    if not rows:
        raise CorpusError("empty corpus: no readable PBC file", file=str(p))
    sids = sorted({v for r in rows.values() for v in r})
    langs = sorted(rows)
    return ParallelCorpus(name, langs, sids, [[rows[l].get(s) for s in sids] for l in langs],
                          {l: metas[l] for l in langs}, skips.records, documents=[chapter_of(v) for v in sids],
                          normalization=NORMALIZATION, documents_source="Bible chapter (BOOK C) of the PBC verse id")


# PBC book numbers 1-66 (BB of BBCCCVVV) -> USFM book codes, as eBible's vref.txt writes them.
BOOKS = ("GEN EXO LEV NUM DEU JOS JDG RUT 1SA 2SA 1KI 2KI 1CH 2CH EZR NEH EST JOB PSA PRO ECC SNG ISA JER "
         "LAM EZK DAN HOS JOL AMO OBA JON MIC NAM HAB ZEP HAG ZEC MAL MAT MRK LUK JHN ACT ROM 1CO 2CO GAL "
         "EPH PHP COL 1TH 2TH 1TI 2TI TIT PHM HEB JAS 1PE 2PE 1JN 2JN 3JN JUD REV").split()


def chapter_of(verse_id: str) -> str:
    """`41014025` -> `MRK 14` (books beyond 66 keep their number: `67 3`)."""
    book, chapter = int(verse_id[:2]), int(verse_id[2:5])
    return f"{BOOKS[book - 1] if 1 <= book <= len(BOOKS) else book} {chapter}"


def _name(lang: str) -> str | None:
    try:
        return language_name(lang)
    except LanguageError:
        return None
