"""LEX: the lexical baseline of mPLM-Sim, computed from the parallel corpus itself.

lex(a, b) = - mean over the sentences s present in both a and b of
            Levenshtein(text_a(s).strip(), text_b(s).strip())
(character-level: Unicode code points, unit costs). Higher = more similar; the diagonal is 0.

Why it is fast: per sentence, `rapidfuzz.process.cdist` computes the distances of all language
pairs at once in C++ (bit-parallel Levenshtein, only the upper triangle since the scorer is
symmetric, multithreaded over `workers`), and we accumulate integer sums and counts per pair.
Missing sentences are handled per pair (a pair's mean is over the sentences both have).

Results are cached in the user cache (`cache_dir("lex")`) keyed by the corpus fingerprint and
the romanisation flag, so a second call on the same corpus is instant. Optional romanisation
with `uroman` (an optional dependency, `pip install uroman`) is cached per language text.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.cache import cache_dir
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix

log = logging.getLogger(__name__)

CACHE_VERSION = "lex-v1"


# -- accumulation ----------------------------------------------------------------------------
def lex_sums(texts: Sequence[Sequence[str | None]], *, workers: int | None = None,
             progress: bool = True, desc: str = "LEX") -> tuple[np.ndarray, np.ndarray]:
    """Pairwise sums of Levenshtein distances and counts of shared sentences.

    `texts[i][j]` is sentence j of language i (already stripped / romanised), or None.
    Returns `(sums int64 [L, L], counts int64 [L, L])`; the diagonal counts are the number of
    sentences each language has (its sums are 0).
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist
    from tqdm.auto import tqdm

    n = len(texts)
    n_sent = len(texts[0]) if n else 0
    sums = np.zeros((n, n), dtype=np.int64)
    counts = np.zeros((n, n), dtype=np.int64)
    w = -1 if workers is None else int(workers)
    for j in tqdm(range(n_sent), desc=desc, unit="sent", disable=not progress, leave=False):
        present = [i for i in range(n) if texts[i][j] is not None]
        if not present:
            continue
        col = [texts[i][j] for i in present]
        if len(present) == n:
            if n > 1:
                # `col` passed twice as the same object: rapidfuzz computes one triangle only.
                sums += cdist(col, col, scorer=Levenshtein.distance, dtype=np.int32, workers=w)
            counts += 1
        else:
            idx = np.asarray(present)
            if len(present) > 1:
                d = cdist(col, col, scorer=Levenshtein.distance, dtype=np.int32, workers=w)
                sums[np.ix_(idx, idx)] += d
            counts[np.ix_(idx, idx)] += 1
    return sums, counts


def matrix_from_sums(languages: Sequence[str], sums: np.ndarray, counts: np.ndarray,
                     name: str = "lex") -> LanguageMatrix:
    """-sums/counts as a LanguageMatrix; NaN where a pair shares no sentence. A language with
    no sentence at all is listed in `missing` with its reason in `notes[lang]`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = -(sums / counts)
    values[counts == 0] = np.nan
    diag = np.diag(counts) > 0
    values[np.diag_indices_from(values)] = np.where(diag, 0.0, np.nan)
    missing = [l for l, ok in zip(languages, diag) if not ok]
    notes: dict = {l: "no sentence with text in the corpus" for l in missing}
    off = counts[~np.eye(len(languages), dtype=bool)]
    notes["measure"] = "minus mean character Levenshtein distance over shared sentences (stripped)"
    notes["shared_sentences_min"] = int(off.min()) if off.size else 0
    notes["shared_sentences_max"] = int(off.max()) if off.size else 0
    notes["pairs_without_shared_sentence"] = int((off == 0).sum() // 2)
    return LanguageMatrix(list(languages), values, name, missing, notes)


# -- romanisation ----------------------------------------------------------------------------
_UROMAN = None


def _uroman():
    global _UROMAN
    if _UROMAN is None:
        try:
            import uroman
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise BabelmapError("romanisation needs the optional package `uroman`: pip install uroman") from e
        _UROMAN = uroman.Uroman()
    return _UROMAN


def romanize_texts(lang: str, texts: Sequence[str | None], *, cache: bool = True) -> list[str | None]:
    """Romanise one language's sentences with uroman (language code hint = its ISO 639-3),
    cached in `cache_dir("uroman")` by a hash of the language and the texts."""
    from babelmap.engine.languages import iso639_3

    h = hashlib.sha256(f"{CACHE_VERSION}\x1e{lang}".encode())
    for t in texts:
        h.update(b"\x00" if t is None else b"\x01" + t.encode("utf-8"))
    path = cache_dir("uroman") / f"{h.hexdigest()[:40]}.json"
    if cache and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    ur = _uroman()
    code = iso639_3(lang)
    out = [None if t is None else ur.romanize_string(t, lcode=code).strip() for t in texts]
    if cache:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    return out


# -- the measure -----------------------------------------------------------------------------
def _cache_path(corpus: ParallelCorpus, romanize_: bool) -> Path:
    tag = "uroman" if romanize_ else "raw"
    return cache_dir("lex") / f"{CACHE_VERSION}-{corpus.fingerprint()[:40]}-{tag}.npz"


def lex_matrix(corpus: ParallelCorpus, *, romanize: bool = False, workers: int | None = None,
               progress: bool = True, cache: bool = True) -> LanguageMatrix:
    """LEX over all language pairs of `corpus`: minus the mean character Levenshtein distance
    between the two languages' versions of each shared sentence (stripped of surrounding
    white space). `romanize=True` romanises every text with uroman first. `workers` = threads
    for rapidfuzz (None = all cores). Cached by corpus fingerprint unless `cache=False`."""
    from tqdm.auto import tqdm

    languages = list(corpus.languages)
    if not languages:
        raise BabelmapError(f"corpus {corpus.name} has no language")
    path = _cache_path(corpus, romanize) if cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            if list(z["languages"]) == languages:
                log.info("LEX from cache %s", path)
                m = matrix_from_sums(languages, z["sums"], z["counts"], name="lex")
                m.notes["romanized"] = bool(romanize)
                return m
    texts: list[list[str | None]] = []
    for lang in languages:
        row = [None if t is None else t.strip() for t in corpus.text(lang)]
        texts.append(row)
    if romanize:
        texts = [romanize_texts(lang, row, cache=cache)
                 for lang, row in tqdm(list(zip(languages, texts)), desc="uroman", unit="lang",
                                       disable=not progress, leave=False)]
    sums, counts = lex_sums(texts, workers=workers, progress=progress)
    if path is not None:
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, languages=np.array(languages), sums=sums, counts=counts)
        os.replace(tmp, path)
    m = matrix_from_sums(languages, sums, counts, name="lex")
    m.notes["romanized"] = bool(romanize)
    return m
