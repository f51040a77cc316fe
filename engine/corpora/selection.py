"""Which sentences a selection keeps: min-languages, then the first N or a random sample of N
(sentences, or whole documents drawn at random), and the languages a selection leaves empty.

Kept apart from `ParallelCorpus` so the rules (order of the filters, what a sample means, what is
recorded) live in one place; `ParallelCorpus.select` calls these.
"""
from __future__ import annotations

import logging

import numpy as np

from babelmap.engine.errors import CorpusError

log = logging.getLogger("babelmap.corpora")

STRATIFY = (None, "document")


def _positive(value: int | None, option: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise CorpusError(f"{option} must be a whole number of at least 1, got {value!r}",
                          hint=f"give {option} N with N >= 1, or leave it out for all sentences")


def choose_columns(corpus, rows: list[list[str | None]], cols: list[int], *, first: int | None = None,
                   min_languages: int | None = None, sample: int | None = None, seed: int | None = None,
                   stratify: str | None = None) -> tuple[list[int], str | None]:
    """Sentence positions kept (in corpus order) and a description of the selection for the record.

    Order: `min_languages` first (so `first`/`sample` count sentences that will be kept), then
    `first` or `sample`. `stratify="document"` draws whole documents at random (the corpus's
    `documents`) until at least `sample` sentences are taken."""
    _positive(first, "--max-sentences (first)")
    _positive(min_languages, "--min-languages")
    _positive(sample, "--sample")
    if first is not None and sample is not None:
        raise CorpusError("--max-sentences and --sample both given: choose one")
    if stratify not in STRATIFY:
        raise CorpusError(f"unknown stratification {stratify!r}", hint="use 'document' or leave it out")
    if stratify is not None and sample is None:
        raise CorpusError("stratify='document' needs a sample size (--sample N)")
    if seed is not None and sample is None:
        raise CorpusError("--seed without --sample: the seed only chooses a random sample")
    parts: list[str] = []
    if min_languages is not None:
        cols = [j for j in cols if sum(r[j] is not None for r in rows) >= min_languages]
        parts.append(f"min_languages={min_languages}")
    if first is not None:
        cols = cols[:first]
        parts.append(f"first={first}")
    if sample is not None:
        rng = np.random.default_rng(seed)
        if stratify == "document":
            cols, n_docs = _sample_documents(corpus, cols, sample, rng)
            parts.append(f"sample={sample} seed={seed} stratify=document ({len(cols)} sentences in "
                         f"{n_docs} documents)")
        else:
            if sample < len(cols):
                picked = rng.choice(len(cols), size=sample, replace=False)
                cols = [cols[i] for i in sorted(picked)]
            parts.append(f"sample={sample} seed={seed}")
    return cols, " ".join(parts) or None


def _sample_documents(corpus, cols: list[int], n: int, rng: np.random.Generator) -> tuple[list[int], int]:
    docs = corpus.documents
    if docs is None:
        raise CorpusError(f"corpus {corpus.name} has no document ids: cannot sample whole documents",
                          hint="sample sentences (no stratify), or use a corpus whose reader knows documents")
    by_doc: dict[str, list[int]] = {}
    for j in cols:
        key = docs[j] if docs[j] is not None else f"\0{j}"   # an unknown document is its own
        by_doc.setdefault(key, []).append(j)
    order = list(by_doc)
    taken: list[int] = []
    n_docs = 0
    for i in rng.permutation(len(order)):
        if len(taken) >= n:
            break
        taken += by_doc[order[i]]
        n_docs += 1
    return sorted(taken), n_docs


def drop_empty_languages(languages: list[str], texts: list[list[str | None]], skipped: list[dict],
                         name: str) -> tuple[list[str], list[list[str | None]]]:
    """Languages with no sentence left after a selection are dropped, logged and recorded."""
    if not texts or not texts[0]:      # no sentence selected at all: nothing to say per language
        return languages, texts
    keep_l, keep_t = [], []
    for lang, row in zip(languages, texts):
        if any(t is not None for t in row):
            keep_l.append(lang)
            keep_t.append(row)
            continue
        log.warning("language %s has no sentence left after the selection: dropped", lang)
        skipped.append({"file": None, "line": None, "language": lang, "what": lang,
                        "reason": "no sentence left after the selection (dropped)"})
    if languages and not keep_l:
        raise CorpusError(f"no language of corpus {name} has any sentence left after the selection",
                          hint="select fewer languages or more sentences (--min-languages, --max-sentences)")
    return keep_l, keep_t
