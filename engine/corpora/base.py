"""ParallelCorpus: what every corpus reader returns (DESIGN.md, "ParallelCorpus")."""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from babelmap.engine.errors import CorpusError


@dataclass
class ParallelCorpus:
    """A multi-parallel corpus: languages x a shared sentence axis, with a presence mask.

    `texts[i][j]` is the text of sentence `sentence_ids[j]` in `languages[i]`, or None.
    Languages are unique and sorted; `meta[lang]` holds name, script, source file, licence,
    variant, and any reader-specific flags (e.g. `merged`: sentence ids whose text also holds
    the following verse).
    """

    name: str
    languages: list[str]
    sentence_ids: list[str]
    texts: list[list[str | None]]
    meta: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # what --skip-bad dropped, and why

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

    # -- selection ------------------------------------------------------------------------
    def select(self, languages: Iterable[str] | None = None, pattern: str | Sequence[str] | None = None,
               first: int | None = None, min_languages: int | None = None,
               sentence_ids: Iterable[str] | None = None) -> "ParallelCorpus":
        """A new corpus restricted to languages (ids or globs), the first N sentences, given
        sentence ids, and/or sentences present in at least K of the kept languages."""
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
            cols = [pos[s] for s in sentence_ids]
        if first is not None:
            cols = cols[:first]
        if min_languages is not None:
            cols = [j for j in cols if sum(r[j] is not None for r in rows) >= min_languages]
        texts = [[r[j] for j in cols] for r in rows]
        return ParallelCorpus(self.name, keep, [self.sentence_ids[j] for j in cols], texts,
                              {l: self.meta.get(l, {}) for l in keep}, list(self.skipped))
