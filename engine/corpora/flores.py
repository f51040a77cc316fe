"""FLORES-200 reader: `dev/<lang>.dev` and/or `devtest/<lang>.devtest`, one sentence per line.

Language ids are the file names (already `<iso639-3>_<Script>`; other codes are normalised).
Sentence ids are `<split>:<line>` (`dev:1` ... `dev:997`); `split` records the split read, and
`documents` the article URL of each sentence (from `metadata_<split>.tsv` when present). Every file of a split must have the
same number of lines, else the reader stops naming the file, its line count and language.
"""
from __future__ import annotations

from pathlib import Path

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.corpora.common import (Skips, check_ids_unique, language_error_as_corpus_error, log,
                                            read_lines)
from babelmap.engine.corpora.plain import build_corpus, check_line_counts, id_from_stem
from babelmap.engine.errors import CorpusError, LanguageError

LICENCE = "CC-BY-SA-4.0"
SPLITS = ("dev", "devtest")


def _split_dir(root: Path, split: str) -> Path | None:
    if (root / split).is_dir():
        return root / split
    if root.name == split and any(root.glob(f"*.{split}")):
        return root
    return None


def read_flores(path: str | Path, *, split: str = "dev", skip_bad: bool = False,
                name: str | None = None) -> ParallelCorpus:
    """Read FLORES-200 `split` ("dev", "devtest", or "dev+devtest": both, dev first) from `path`
    (the release folder holding `dev/`, `devtest/`, or a split folder itself)."""
    root = Path(path)
    splits = split.split("+")
    for s in splits:
        if s not in SPLITS:
            raise CorpusError(f"unknown FLORES split {s!r}", hint="use dev, devtest or dev+devtest")
    skips = Skips(skip_bad)
    per_split: list[tuple[str, dict[str, list[str]], dict[str, str], int]] = []
    for s in splits:
        folder = _split_dir(root, s)
        if folder is None:
            raise CorpusError(f"no {s}/<lang>.{s} files here", file=str(root),
                              hint="point --corpus at the FLORES-200 folder that holds dev/ and/or devtest/")
        rows, src, by_id = {}, {}, {}
        for f in sorted(folder.glob(f"*.{s}")):
            try:
                lang = id_from_stem(f.stem)
            except LanguageError as e:
                skips.handle(language_error_as_corpus_error(e, str(f), f.stem))
                continue
            try:
                rows[lang] = read_lines(f, language=lang)
            except CorpusError as e:
                skips.handle(e)
                continue
            src[lang] = str(f)
            by_id.setdefault(lang, []).append(str(f))
        for lang in check_ids_unique(by_id, skips):
            rows.pop(lang, None)
        n, bad = check_line_counts({l: len(r) for l, r in rows.items()}, src, skips, rows)
        for lang in bad:
            rows.pop(lang)
        per_split.append((s, rows, src, n))
    if len(per_split) == 1:
        s, rows, src, n = per_split[0]
        sids = [f"{s}:{i + 1}" for i in range(n)]
    else:
        langs = set.intersection(*(set(r) for _, r, _, _ in per_split))
        for s, r, src_s, _ in per_split:
            for lang in sorted(set(r) - langs):
                skips.handle(CorpusError(f"present in {s} but not in every split asked for", file=src_s[lang],
                                         language=lang, hint="read one split, or pass --skip-bad"))
        rows = {l: [t for _, r, _, _ in per_split for t in r[l]] for l in langs}
        src = {l: ";".join(sp[l] for _, _, sp, _ in per_split) for l in langs}
        sids = [f"{s}:{i + 1}" for s, _, _, n in per_split for i in range(n)]
    extra = {l: {"licence": LICENCE, "split": split} for l in rows}
    corpus = build_corpus(name or f"flores200-{split}", rows, src, sids, skips, root, extra)
    corpus.split = split
    docs = [read_documents(root, s, n) for s, _, _, n in per_split]
    if all(d is not None for d in docs):
        corpus.documents = [u for d in docs for u in d]
        corpus.documents_source = " + ".join(f"metadata_{s}.tsv URL" for s in splits)
    return corpus


def read_documents(root: Path, split: str, n: int) -> list[str] | None:
    """The article URL of each of the `n` sentences of `split`, from `metadata_<split>.tsv` beside
    the split folders (rows in sentence order); None when the file is absent or does not fit."""
    import csv
    for folder in (root, root.parent):
        f = folder / f"metadata_{split}.tsv"
        if f.exists():
            break
    else:
        return None
    with open(f, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(rows) != n or not rows or "URL" not in rows[0]:
        log.warning("%s has %d rows for %d sentences (or no URL column): documents unknown", f, len(rows), n)
        return None
    return [r["URL"] for r in rows]
