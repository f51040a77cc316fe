"""eBible reader (BibleNLP native layout): `metadata/vref.txt` + `corpus/<code>-<id>.txt`.

Line i of every corpus file is the verse on line i of vref.txt (sentence ids = vref lines,
`MAT 1:1`; documents = chapters, `MAT 1`). Each verse is stripped of surrounding whitespace. An empty line is a missing verse; a line exactly `<range>` is missing too: its text
sits in the previous verse's line, which is then *merged* (holds the following verse as well).
Merged verse ids are kept per language in `meta[lang]["merged"]` (from
`metadata/subset_merged_verses.tsv` when present, and from `<range>` lines that follow their
verse directly); `drop_merged=True` marks them missing for strictly parallel sentences.

Language = the file-name prefix (ISO 639-3); script = the Unicode script detected from the text,
refined by `translations.csv` / `ebible_status.csv` (Han simplified/traditional) and used from
there only when the text says nothing. A language with several translations gets the
translation id as variant on *every* one of them (`eng_Latn-engwebp`); a single one none.
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

from tqdm import tqdm

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import (NORMALIZATION, Skips, check_ids_unique, check_no_nul, clean_text,
                                            decode_utf8, language_error_as_corpus_error, read_lines)
from babelmap.engine.errors import CorpusError, LanguageError
from babelmap.engine.languages import detect_script, iso639_3, language_name, make_id, normalize_code, script_code

RANGE = "<range>"
_WS_START = re.compile(r"\n[^\S\n]")
_VREF_RE = re.compile(r"^([0-9A-Z]{3}) (\d+):(\d+)$")
_SAMPLE_VERSES, _SAMPLE_CHARS = 20, 2000  # text used for script detection: plenty, and cheap


def _unpacked(path: Path) -> Path:
    """A packed `ebible.tar.xz` is unpacked once into the cache (never beside the data).

    Same layout and stamp as the test fixture (`<cache>/data/ebible`, `.ebible.unpacked` holding
    the archive size), so both share one unpacked copy."""
    if path.is_dir():
        return path
    if not path.name.endswith((".tar.xz", ".tar.gz", ".tar")):
        raise CorpusError("not an eBible folder (metadata/vref.txt + corpus/) nor a packed one", file=str(path))
    import shutil
    from babelmap.engine.cache import cache_dir
    dest = cache_dir("data")
    out = dest / "ebible"
    stamp = dest / ".ebible.unpacked"
    size = str(path.stat().st_size)
    if stamp.exists() and stamp.read_text() == size and (out / "metadata" / "vref.txt").exists():
        return out
    tmp = dest / f".unpack-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["tar", "-xf", str(path), "-C", str(tmp)], check=True)
        inner = next((p for p in tmp.iterdir() if (p / "metadata" / "vref.txt").exists()), None)
        if inner is None:
            raise CorpusError("the archive holds no <folder>/metadata/vref.txt", file=str(path))
        if out.exists():
            shutil.rmtree(out)
        inner.rename(out)
        stamp.write_text(size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _read_tsv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _metadata(root: Path) -> dict[str, dict]:
    """translationId (with `-` -> `_`, as in file names) -> merged metadata row."""
    meta: dict[str, dict] = {}
    for name in ("ebible_status.csv", "translations.csv"):      # translations.csv wins where both
        for row in _read_csv(root / "metadata" / name):
            tid = row.get("translationId", "").strip()
            if tid:
                meta.setdefault(tid.replace("-", "_"), {}).update({k: v for k, v in row.items() if v})
    for row in _read_tsv(root / "metadata" / "licences.tsv"):
        tid = row.get("ID", "").strip().replace("-", "_")
        if tid in meta and row.get("Licence Type"):
            meta[tid].setdefault("licence_Licence_Type", row["Licence Type"])
            meta[tid].setdefault("licence_Licence_Version", row.get("Licence Version", ""))
    return meta


def _merged_from_tsv(root: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in _read_tsv(root / "metadata" / "subset_merged_verses.tsv"):
        out.setdefault(row["file"], set()).add(row["vref"])
    return out


def _adjacent(prev: tuple | None, cur: tuple | None) -> bool:
    """Is verse `prev` the one right before `cur` (same book and chapter, verse - 1)?"""
    return prev is not None and cur is not None and prev[0] == cur[0] and prev[1] == cur[1] \
        and prev[2] == cur[2] - 1


def _blank_or_range(lines: list[str], text: str) -> list[int]:
    """Indices of empty, whitespace-only and `<range>` lines, found with C-level scans (few per file)."""
    out = []
    for marker in ("", RANGE):
        start = 0
        while True:
            try:
                i = lines.index(marker, start)
            except ValueError:
                break
            out.append(i)
            start = i + 1
    # whitespace-only lines: rare; look at every line only if some line starts with whitespace
    if _WS_START.search(text) or text[:1].isspace():
        out += [i for i, ln in enumerate(lines) if ln and ln.isspace()]
    return sorted(out)


def _choose_script(detected: str | None, from_meta: str | None) -> str | None:
    if detected is None:
        return from_meta
    if detected == "Hani" and from_meta in ("Hans", "Hant"):
        return from_meta
    return detected


def read_ebible(path: str | Path, *, skip_bad: bool = False, drop_merged: bool = False,
                name: str = "ebible", progress: bool = False) -> ParallelCorpus:
    """Read an eBible folder (or its packed .tar.xz) into a ParallelCorpus (see module doc)."""
    root = _unpacked(Path(path))
    vref_path = root / "metadata" / "vref.txt"
    corpus_dir = root / "corpus"
    if not vref_path.exists() or not corpus_dir.is_dir():
        raise CorpusError("no metadata/vref.txt and corpus/ here", file=str(root),
                          hint="point --corpus at the eBible folder (BibleNLP layout)")
    vref = read_lines(vref_path)
    if len(set(vref)) != len(vref):
        seen: set[str] = set()
        for i, v in enumerate(vref):
            if v in seen:
                raise CorpusError(f"duplicate verse id {v!r}", file=str(vref_path), line=i + 1)
            seen.add(v)
    parsed = []
    for v in vref:
        m = _VREF_RE.match(v)
        parsed.append((m.group(1), int(m.group(2)), int(m.group(3))) if m else None)
    skips = Skips(skip_bad)
    meta_rows = _metadata(root)
    merged_tsv = _merged_from_tsv(root)
    files = sorted(corpus_dir.glob("*.txt"))
    entries = []   # (iso3, script, tid, file, row, meta)
    for f in tqdm(files, desc="eBible", unit="file", disable=not progress):
        stem = f.stem
        if "-" not in stem:
            skips.handle(CorpusError("file name is not <languageCode>-<translationId>.txt", file=str(f)))
            continue
        code, tid = stem.split("-", 1)
        try:
            text = decode_utf8(f.read_bytes(), f, language=code)
            check_no_nul(text, f, language=code)
        except CorpusError as e:
            skips.handle(e)
            continue
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if "\r" in text:
            lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
        if len(lines) != len(vref):
            skips.handle(CorpusError(f"{len(lines)} lines, but metadata/vref.txt has {len(vref)}: verses "
                                     "would be misaligned", file=str(f), line=min(len(lines), len(vref)) + 1,
                                     language=code, hint="every corpus file must have one line per vref line; "
                                                         "fix it or pass --skip-bad"))
            continue
        row: list[str | None] = [clean_text(t) for t in lines]
        range_idx = []
        for i in _blank_or_range(lines, text):
            if lines[i] == RANGE:
                range_idx.append(i)
            row[i] = None
        ranges = [vref[i] for i in range_idx]
        merged = set(merged_tsv.get(f.name, ()))
        for i in range_idx:
            # walk back over a run of <range> lines; the verse before the run holds their text,
            # as far as the subset shows it (the chain of verses must be unbroken)
            j = i
            while j > 0 and lines[j - 1] == RANGE and _adjacent(parsed[j - 1], parsed[j]):
                j -= 1
            if j > 0 and row[j - 1] is not None and _adjacent(parsed[j - 1], parsed[j]):
                merged.add(vref[j - 1])
        present = [t for t in row if t is not None]
        if not present:
            skips.handle(CorpusError("no verse text in this file", file=str(f), language=code,
                                     hint="remove the empty file or pass --skip-bad"))
            continue
        md = meta_rows.get(tid, {})
        detected = detect_script(["".join(present[:_SAMPLE_VERSES])[:_SAMPLE_CHARS]])
        from_meta = script_code(md.get("script"))
        script = _choose_script(detected, from_meta)
        try:
            base = normalize_code(code, script=script)
        except LanguageError as e:
            skips.handle(language_error_as_corpus_error(e, str(f), code))
            continue
        lic = " ".join(x for x in (md.get("licence_Licence_Type"), md.get("licence_Licence_Version")) if x)
        m = {"name": md.get("languageNameInEnglish") or _name(base), "script": base.split("_")[1],
             "file": str(f), "licence": lic or None, "variant": None, "translation_id": md.get("translationId", tid),
             "language_code": code, "metadata_language_code": md.get("languageCode"),
             "script_detected": detected, "script_metadata": md.get("script"),
             # metadata naming another script than the text's (grc "Latin", lif "Devanagari")
             "script_mismatch": bool(from_meta and detected and from_meta not in (script, "Hani")),
             "merged": [v for v in vref if v in merged] if merged else [], "range": ranges, "vref": str(vref_path),
             "empty": len(row) - len(present) - len(ranges)}
        if drop_merged and merged:
            row = [None if vref[i] in merged else t for i, t in enumerate(row)]
        entries.append((iso639_3(base), base.split("_")[1], tid, f, row, m))
    per_lang: dict[str, int] = {}
    for iso3, *_ in entries:
        per_lang[iso3] = per_lang.get(iso3, 0) + 1
    rows, metas, by_id = {}, {}, {}
    for iso3, script, tid, f, row, m in entries:
        variant = tid if per_lang[iso3] > 1 else None
        lang = make_id(iso3, script, variant)
        m["variant"] = variant
        by_id.setdefault(lang, []).append(str(f))
        rows[lang], metas[lang] = row, m
    for lang in check_ids_unique(by_id, skips):
        rows.pop(lang, None)
    if not rows:
        raise CorpusError("empty corpus: no readable translation", file=str(corpus_dir))
    langs = sorted(rows)
    docs = [f"{p[0]} {p[1]}" if p else None for p in parsed]
    return ParallelCorpus(name, langs, list(vref), [rows[l] for l in langs], {l: metas[l] for l in langs},
                          skips.records, documents=docs, normalization=NORMALIZATION,
                          documents_source="Bible chapter (BOOK C) of vref.txt")


def _name(lang: str) -> str | None:
    try:
        return language_name(lang)
    except LanguageError:
        return None
