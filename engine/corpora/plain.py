"""Plain reader: a folder of line-aligned `<lang>.txt` files (line i of every file = sentence i).

The file name is a language code in any form `normalize_code` accepts (`deu_Latn`, `de`, `pt_BR`,
`sr_Latn`, `eng_Latn-kjv`); without a script in the name the script is detected from the text.
An empty line is a missing sentence. Sentence ids are line numbers (`1`, `2`, ...).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import (NORMALIZATION, Skips, check_ids_unique, clean_text,
                                            language_error_as_corpus_error, read_lines, refuse_common_word)
from babelmap.engine.errors import CorpusError, LanguageError
from babelmap.engine.languages import detect_script, language_name, normalize_code, script_of

_HAS_SCRIPT = re.compile(r"[-_][A-Za-z]{4}(?:[-_]|$)")


def id_from_stem(stem: str, lines: list[str] | None = None) -> str:
    """A file stem -> language id; the script is detected from `lines` when the stem has none."""
    if _HAS_SCRIPT.search(stem) or lines is None:
        return normalize_code(stem)
    script = detect_script(lines[:2000])
    return normalize_code(stem, script=script)


def first_blank_line(lines: list[str]) -> int | None:
    """1-based number of the first empty or whitespace-only line, or None."""
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            return i
    return None


def check_line_counts(counts: dict[str, int], files: dict[str, str], skips: Skips,
                      rows: dict[str, list[str]] | None = None) -> tuple[int, set[str]]:
    """All files must have the same number of lines: the most common count is taken as right and
    every other file is an error naming its count (or, skipping, is dropped). A file with too many
    lines that has a blank line is reported at its first blank line (the likely extra line)."""
    if not counts:
        return 0, set()
    common = Counter(counts.values()).most_common(2)
    expected = common[0][0]
    if len(common) > 1 and common[0][1] == common[1][1]:
        listing = ", ".join(f"{Path(files[l]).name} {n}" for l, n in sorted(counts.items()))
        blanks = {l: first_blank_line(rows[l]) for l in sorted(counts)} if rows is not None else {}
        longest = max(counts.values())
        suspect = next((l for l, b in blanks.items() if b and counts[l] == longest), None)
        where = (f"; {Path(files[suspect]).name} line {blanks[suspect]} is blank (an extra line there shifts every "
                 "later one)") if suspect else ""
        raise CorpusError(f"line counts disagree and no count is in the majority ({listing}): "
                          f"cannot tell which file is misaligned{where}",
                          file=files[suspect or sorted(counts)[0]], line=blanks.get(suspect) if suspect else None,
                          language=suspect, hint="make every file have one line per sentence")
    bad = set()
    for lang, n in sorted(counts.items()):
        if n != expected:
            bad.add(lang)
            blank = first_blank_line(rows[lang]) if rows is not None and n > expected else None
            where = f"; line {blank} is blank (an extra line there shifts every later one)" if blank else ""
            skips.handle(CorpusError(f"{n} lines, but its sibling files have {expected}: sentences would be "
                                     f"misaligned{where}", file=files[lang], line=blank or min(n, expected) + 1,
                                     language=lang,
                                     hint="fix the file so that line i is the translation of line i everywhere, "
                                          "or pass --skip-bad to leave it out"))
    return expected, bad


def read_plain(path: str | Path, *, skip_bad: bool = False, name: str | None = None,
               suffix: str = ".txt", langs=None) -> ParallelCorpus:
    """Read a folder of line-aligned `<lang>.txt` files (extension in any case: `.TXT`) into a
    ParallelCorpus. A file named by a common English word (`tmp.txt`, `new.txt`) is refused unless
    `langs` (the `--langs` list) names it."""
    folder = Path(path)
    if not folder.is_dir():
        raise CorpusError("not a folder of <lang>.txt files", file=str(folder))
    skips = Skips(skip_bad)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffix.lower())
                   and not p.name.startswith("."))
    by_id: dict[str, list[str]] = {}
    rows: dict[str, list[str]] = {}
    src: dict[str, str] = {}
    for f in files:
        stem = f.name[: -len(suffix)]
        refused = refuse_common_word(stem, f, langs)
        if refused is not None:
            if langs:      # a --langs list that does not name it: not wanted anyway; left out, noted
                skips.note(f.name, f"{stem!r} is a common English word and --langs does not name it",
                           file=str(f), language=stem)
            else:
                skips.handle(refused)
            continue
        try:
            lines = read_lines(f, language=stem)
        except CorpusError as e:
            skips.handle(e)
            continue
        try:
            lang = id_from_stem(stem, lines)
        except LanguageError as e:
            skips.handle(language_error_as_corpus_error(e, str(f), stem))
            continue
        by_id.setdefault(lang, []).append(str(f))
        rows[lang], src[lang] = lines, str(f)
    for lang in check_ids_unique(by_id, skips):
        rows.pop(lang, None)
    n, bad = check_line_counts({l: len(r) for l, r in rows.items()}, src, skips, rows)
    for lang in bad:
        rows.pop(lang)
    return build_corpus(name or f"plain:{folder.name}", rows, src, [str(i + 1) for i in range(n)], skips,
                        folder)


def build_corpus(name: str, rows: dict[str, list[str]], src: dict[str, str], sentence_ids: list[str],
                 skips: Skips, where: Path | str, extra_meta: dict[str, dict] | None = None) -> ParallelCorpus:
    """Line rows -> ParallelCorpus, each sentence stripped of surrounding whitespace (an empty or
    blank line = missing); an empty corpus or an empty file is an error."""
    texts, langs, meta = [], [], {}
    for lang in sorted(rows):
        row = [clean_text(t) for t in rows[lang]]
        if not any(t is not None for t in row):
            skips.handle(CorpusError("no text in this file", file=src[lang], language=lang,
                                     hint="remove the empty file or pass --skip-bad"))
            continue
        langs.append(lang)
        texts.append(row)
        m = {"name": _name(lang), "script": script_of(lang), "file": src[lang], "licence": None,
             "variant": lang.split("-", 1)[1] if "-" in lang else None}
        m.update((extra_meta or {}).get(lang, {}))
        meta[lang] = m
    if not langs or not sentence_ids:
        raise CorpusError("empty corpus: no language with any sentence", file=str(where),
                          hint="check the path and the format")
    return ParallelCorpus(name, langs, sentence_ids, texts, meta, skips.records, normalization=NORMALIZATION)


def _name(lang: str) -> str | None:
    try:
        return language_name(lang)
    except LanguageError:
        return None
