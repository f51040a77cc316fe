"""Word alignments between two languages: the `Alignment` type and Pharaoh files.

An `Alignment` holds one-to-one word links per sentence pair as packed arrays: `offsets`
[S+1] into `src` and `tgt` (word indices *within* the sentence, in the word store's
segmentation). `read_pharaoh(path, ...)` reads a Pharaoh file (one line per sentence pair,
links `i-j`, 0-based); only one-to-one links are kept (a link whose source or target word takes
part in any other link is dropped, as in Cao et al. 2020); optionally links between identical
strings are dropped too. `Alignment.save` writes the same format (line s = sentence s; an
empty line = no links). The aligners that compute alignments live in `kernels.align`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.errors import CorpusError


@dataclass
class Alignment:
    """One-to-one word links per sentence pair, packed: links of sentence s are rows
    offsets[s]:offsets[s+1] of `src` / `tgt` (word indices within the sentence)."""

    offsets: np.ndarray
    src: np.ndarray
    tgt: np.ndarray
    src_lang: str = ""
    tgt_lang: str = ""
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, np.int64)
        self.src = np.asarray(self.src, np.int64)
        self.tgt = np.asarray(self.tgt, np.int64)

    @property
    def n_sentences(self) -> int:
        return len(self.offsets) - 1

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def sentence(self, s: int) -> list[tuple[int, int]]:
        a, b = self.offsets[s], self.offsets[s + 1]
        return list(zip(self.src[a:b].tolist(), self.tgt[a:b].tolist()))

    def sentence_index(self) -> np.ndarray:
        """[M] the sentence of each link."""
        return np.repeat(np.arange(self.n_sentences), np.diff(self.offsets))

    def global_indices(self, src_offsets: np.ndarray, tgt_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Links as row indices into the packed word arrays of the two languages."""
        s = self.sentence_index()
        return np.asarray(src_offsets)[s] + self.src, np.asarray(tgt_offsets)[s] + self.tgt

    def save(self, path: str | os.PathLike) -> Path:
        """Write a Pharaoh file (through a temporary name)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            for s in range(self.n_sentences):
                fh.write(" ".join(f"{i}-{j}" for i, j in self.sentence(s)) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_lists(cls, links: Sequence[Sequence[tuple[int, int]]], **kw) -> "Alignment":
        offsets = np.zeros(len(links) + 1, np.int64)
        offsets[1:] = np.cumsum([len(l) for l in links])
        src = np.array([i for l in links for i, _ in l], np.int64)
        tgt = np.array([j for l in links for _, j in l], np.int64)
        return cls(offsets, src, tgt, **kw)


def one_to_one(links: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Keep the links whose source and target word each occur in exactly one link."""
    from collections import Counter
    cs = Counter(i for i, _ in links)
    ct = Counter(j for _, j in links)
    return sorted({(i, j) for i, j in links if cs[i] == 1 and ct[j] == 1})


def read_pharaoh(path: str | os.PathLike, src_words: Sequence[Sequence[str]] | None = None,
                 tgt_words: Sequence[Sequence[str]] | None = None, *, keep_one_to_one: bool = True,
                 drop_identical: bool = False, src_lang: str = "", tgt_lang: str = "") -> Alignment:
    """Read a Pharaoh `i-j` file; one line per sentence pair.

    With `src_words`/`tgt_words` (the words of each sentence, e.g. from a word store) the
    line count and every index are checked, and `drop_identical` can compare strings.
    Errors name the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"cannot read alignment file: {e}", file=str(path)) from e
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if src_words is not None and len(lines) != len(src_words):
        raise CorpusError(f"{len(lines)} alignment lines but {len(src_words)} sentences",
                          file=str(path), hint="one line per sentence of the word store, empty where none")
    out = []
    for n, line in enumerate(lines):
        links = []
        for item in line.split():
            a, sep, b = item.partition("-")
            if not sep or not a.isdigit() or not b.isdigit():
                raise CorpusError(f"bad link {item!r} (expected i-j)", file=str(path), line=n + 1)
            i, j = int(a), int(b)
            if src_words is not None and (i >= len(src_words[n]) or j >= len(tgt_words[n])):
                raise CorpusError(f"link {item} outside the sentence ({len(src_words[n])} source, "
                                  f"{len(tgt_words[n])} target words)", file=str(path), line=n + 1)
            links.append((i, j))
        links = one_to_one(links) if keep_one_to_one else sorted(set(links))
        if drop_identical:
            if src_words is None:
                raise ValueError("drop_identical needs the sentences' words")
            links = [(i, j) for i, j in links if src_words[n][i] != tgt_words[n][j]]
        out.append(links)
    return Alignment.from_lists(out, src_lang=src_lang, tgt_lang=tgt_lang,
                                attrs={"source": str(path), "one_to_one": keep_one_to_one,
                                       "drop_identical": drop_identical})


def drop_identical_links(al: Alignment, src_words: Sequence[Sequence[str]],
                         tgt_words: Sequence[Sequence[str]]) -> Alignment:
    """A new alignment without links between identical strings (numbers, names, punctuation)."""
    links = [[(i, j) for i, j in al.sentence(s) if src_words[s][i] != tgt_words[s][j]]
             for s in range(al.n_sentences)]
    return Alignment.from_lists(links, src_lang=al.src_lang, tgt_lang=al.tgt_lang,
                                attrs={**al.attrs, "drop_identical": True})


def read_pharaoh_for_corpus(path: str | os.PathLike, corpus, src: str, tgt: str,
                            segmentation: str = "unicode", **options) -> Alignment:
    """A Pharaoh file over the sentences of `corpus` (one line per sentence id), checked
    against the words of `src` and `tgt` in the word store's `segmentation`; options pass to
    `read_pharaoh` (keep_one_to_one, drop_identical)."""
    from babelmap.engine.words import segment_words
    words = {lang: [segment_words(t, segmentation) if t is not None else [] for t in corpus.text(lang)]
             for lang in (src, tgt)}
    return read_pharaoh(path, words[src], words[tgt], src_lang=src, tgt_lang=tgt, **options)
