"""ParallelCorpus: what every corpus reader returns (DESIGN.md, "ParallelCorpus")."""
from __future__ import annotations

import fnmatch
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from babelmap.engine.errors import CorpusError


@dataclass
class ParallelCorpus:
    """A multi-parallel corpus: languages x a shared sentence axis, with a presence mask.

    `texts[i][j]` is the text of sentence `sentence_ids[j]` in `languages[i]`, or None.
    Languages are unique and sorted; `meta[lang]` holds name, script, source file, licence,
    variant, and any reader-specific flags (e.g. `merged`: sentence ids whose text also holds
    the following verse). `documents[j]` is the document sentence j belongs to (FLORES article
    URL, Bible chapter, UDHR article) or None when unknown; `provenance()` says how the corpus was
    read and selected (split, text normalisation, selection, where the documents come from).
    """

    name: str
    languages: list[str]
    sentence_ids: list[str]
    texts: list[list[str | None]]
    meta: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # what --skip-bad dropped, and why
    documents: list[str | None] | None = None   # per sentence id: its document, or None
    normalization: str | None = None            # text normalisation the reader applied ("strip")
    split: str | None = None                    # the split actually read (FLORES "dev", "devtest")
    selection: str | None = None                # how sentences were selected ("first=100", ...)
    documents_source: str | None = None         # where `documents` come from ("metadata_dev.tsv URL")

    def __post_init__(self) -> None:
        if len(set(self.languages)) != len(self.languages):
            dup = sorted({x for x in self.languages if self.languages.count(x) > 1})
            raise CorpusError(f"duplicate language ids in corpus {self.name}: {dup}")
        if len(set(self.sentence_ids)) != len(self.sentence_ids):
            raise CorpusError(f"duplicate sentence ids in corpus {self.name}")
        if len(self.texts) != len(self.languages):
            raise CorpusError("texts must have one row per language")
        for lang, row in zip(self.languages, self.texts):
            if len(row) != len(self.sentence_ids):
                raise CorpusError(f"{len(row)} sentences but the corpus has {len(self.sentence_ids)}",
                                  language=lang)
        if self.documents is not None and len(self.documents) != len(self.sentence_ids):
            raise CorpusError(f"{len(self.documents)} document ids for {len(self.sentence_ids)} sentences "
                              f"in corpus {self.name}")
        order = sorted(range(len(self.languages)), key=lambda i: self.languages[i])
        if order != list(range(len(self.languages))):
            self.languages = [self.languages[i] for i in order]
            self.texts = [self.texts[i] for i in order]
        self._index = {lang: i for i, lang in enumerate(self.languages)}

    # -- access ---------------------------------------------------------------------------
    def text(self, lang: str) -> list[str | None]:
        """One entry per sentence id; None where missing."""
        return self.texts[self._index[lang]]

    @property
    def mask(self) -> np.ndarray:
        """bool [L, S]: sentence present in language."""
        return np.array([[t is not None for t in row] for row in self.texts], dtype=bool).reshape(
            len(self.languages), len(self.sentence_ids))

    def __len__(self) -> int:
        return len(self.languages)

    def provenance(self) -> dict[str, str]:
        """How this corpus was read and selected, for the store's attributes: `split`,
        `normalization`, `selection`, `documents` (their source); keys without a value are left out."""
        out = {"split": self.split, "normalization": self.normalization, "selection": self.selection,
               "documents": self.documents_source if self.documents is not None else None}
        return {k: v for k, v in out.items() if v}

    def fingerprint(self) -> str:
        """sha256 over the name-independent content: ids, sentence ids and texts."""
        h = hashlib.sha256()
        for sid in self.sentence_ids:
            h.update(sid.encode("utf-8") + b"\x1e")
        for lang, row in zip(self.languages, self.texts):
            h.update(b"\x1d" + lang.encode("utf-8"))
            for t in row:
                h.update(b"\x00" if t is None else b"\x01" + t.encode("utf-8"))
                h.update(b"\x1f")
        return h.hexdigest()

    # -- building from Python objects ---------------------------------------------------------
    @classmethod
    def from_dict(cls, columns: Mapping[str, Sequence[str | None]], name: str = "custom",
                  sentence_ids: Sequence[str] | None = None) -> "ParallelCorpus":
        """`{language: [sentences]}` -> a corpus. Keys are ids, codes or names ("German"); None or
        "" is a missing sentence; every list must have the same length. Texts are stripped."""
        from babelmap.engine.corpora.frames import corpus_from_columns
        return corpus_from_columns(columns, name=name, sentence_ids=sentence_ids, where="dict")

    @classmethod
    def from_pandas(cls, df: Any, name: str = "custom") -> "ParallelCorpus":
        """A pandas DataFrame with one column per language (rows = sentences; the index, when it is
        not the default 0..n-1 range, gives the sentence ids)."""
        from babelmap.engine.corpora.frames import corpus_from_pandas
        return corpus_from_pandas(df, name=name)

    @classmethod
    def from_dataset(cls, ds: Any, name: str = "custom", columns: Sequence[str] | None = None) -> "ParallelCorpus":
        """A Hugging Face `datasets.Dataset` (or anything with `column_names` and `ds[column]`)
        with one column per language; `columns` picks some of them."""
        from babelmap.engine.corpora.frames import corpus_from_dataset
        return corpus_from_dataset(ds, name=name, columns=columns)

    # -- selection ------------------------------------------------------------------------
    def select(self, languages: Iterable[str] | None = None, pattern: str | Sequence[str] | None = None,
               first: int | None = None, min_languages: int | None = None,
               sentence_ids: Iterable[str] | None = None, sample: int | None = None,
               seed: int | None = None, stratify: str | None = None) -> "ParallelCorpus":
        """A new corpus restricted to languages (ids or globs), given sentence ids, sentences present
        in at least K of the kept languages, and then the first N sentences or a random sample of N
        (`stratify="document"`: whole documents drawn at random until N sentences). A language left
        without any sentence is dropped with a warning and recorded in `skipped`."""
        from babelmap.engine.corpora.selection import choose_columns, drop_empty_languages
        keep = list(self.languages)
        wanted: list[str] = []
        if languages is not None:
            wanted += list(languages)
        if pattern is not None:
            wanted += [pattern] if isinstance(pattern, str) else list(pattern)
        if wanted:
            chosen = []
            for w in wanted:
                hits = [l for l in keep if fnmatch.fnmatchcase(l, w)]
                if not hits:
                    from babelmap.engine.languages import suggest
                    raise CorpusError(f"no language in corpus {self.name} matches {w!r}",
                                      hint=f"close ids: {', '.join(suggest(w, keep)) or 'none'}")
                chosen += [h for h in hits if h not in chosen]
            keep = sorted(chosen)
        rows = [self.texts[self._index[l]] for l in keep]
        cols = list(range(len(self.sentence_ids)))
        if sentence_ids is not None:
            pos = {s: j for j, s in enumerate(self.sentence_ids)}
            missing = [s for s in sentence_ids if s not in pos]
            if missing:
                raise CorpusError(f"sentence id {missing[0]!r} is not in corpus {self.name}")
            cols = [pos[s] for s in sentence_ids]
        cols, how = choose_columns(self, rows, cols, first=first, min_languages=min_languages, sample=sample,
                                   seed=seed, stratify=stratify)
        texts = [[r[j] for j in cols] for r in rows]
        skipped = list(self.skipped)
        keep, texts = drop_empty_languages(keep, texts, skipped, self.name)
        selection = "; ".join(x for x in (self.selection, how) if x) or None
        docs = [self.documents[j] for j in cols] if self.documents is not None else None
        return ParallelCorpus(self.name, keep, [self.sentence_ids[j] for j in cols], texts,
                              {l: self.meta.get(l, {}) for l in keep}, skipped, docs, self.normalization,
                              self.split, selection, self.documents_source)
