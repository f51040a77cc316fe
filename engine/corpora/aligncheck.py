"""Same-count shift detector: finds spans where a language's sentences sit one or two places off
against a pivot language, from sentence lengths alone (no model), in the manner of Gale & Church.

A line deleted in one place and another inserted elsewhere keeps a file's line count, so a reader
cannot see it. Lengths can: for a language pair the log length ratio of true translations,
log((len_x + 1) / (len_pivot + 1)), is close to Gaussian with a pair-specific mean and spread,
while the ratio to a *neighbouring* pivot sentence is not. Per language, a hidden Markov model
over the offset o in {-2..2} (x's sentence j is the pivot's sentence j + o) scores each position by
the Gaussian log-likelihood of its residual under each offset (capped, so one free translation
cannot dominate) and pays `switch_cost` to change offset. The Viterbi path's runs at o != 0 whose
likelihood gain over o = 0 is at least `min_score` are the suspects. Numbers are anchors lengths
miss: a sentence whose digits (any script) differ from those of the reference sentence pays a
fixed cost at that offset. Mean and spread are fitted
robustly (median, MAD) and refitted once on the path, so even a corpus shifted over more than half
its length is measured against the right model. A span flagged in most languages at once is the
pivot's own shift and is reported once, for the pivot.
"""
from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("babelmap.corpora")

OFFSETS = np.array([-2, -1, 0, 1, 2])
_DIGITS = re.compile(r"\d+")
_ZERO = 2                    # index of offset 0 in OFFSETS
CAP = 16.0                   # a residual counts at most 4 standard deviations
UNSEEN = 4.0                 # cost (as z^2) of an offset whose pivot sentence is missing
MIN_SIGMA = 0.02             # floor for the fitted spread (near-identical texts, e.g. two orthographies)


@dataclass
class Suspect:
    """A span of a language whose sentences look shifted against the pivot."""

    language: str
    file: str | None
    first_line: int | None
    last_line: int | None
    first_id: str
    last_id: str
    offset: int               # x's sentence j reads like the pivot's sentence j + offset
    score: float              # log-likelihood gain of the shifted reading over the aligned one
    n_sentences: int
    pivot: str

    @property
    def message(self) -> str:
        """One line naming file, lines, sentence ids and language."""
        where = f"file {self.file}, " if self.file else ""
        lines = (f"lines {self.first_line}-{self.last_line}, " if self.first_line is not None
                 and self.last_line is not None else "")
        if self.language == self.pivot:
            what = "looks shifted against most other languages"
        elif self.pivot == CONSENSUS:
            what = (f"fit the other languages' sentence lengths {abs(self.offset)} place"
                    f"{'s' if abs(self.offset) > 1 else ''} {'later' if self.offset > 0 else 'earlier'}")
        else:
            what = (f"reads like {self.pivot}'s sentences {abs(self.offset)} place"
                    f"{'s' if abs(self.offset) > 1 else ''} {'later' if self.offset > 0 else 'earlier'}")
        return (f"possible misalignment: {self.n_sentences} sentences {self.first_id} ... {self.last_id} "
                f"{what} (length-ratio score {self.score:.0f}; {where}{lines}language {self.language})")


CONSENSUS = "consensus"


def find_shifts(corpus, pivot: str | None = None, *, switch_cost: float = 6.0, min_score: float = 20.0,
                languages: list[str] | None = None, numbers: bool = True) -> list[Suspect]:
    """Suspect spans of every language (or `languages`) against `pivot`. Without a pivot and
    with 3 or more languages the reference is the consensus of all languages (per sentence, the
    median over languages of the centred log length: robust to a few shifted languages, and
    twice as sharp as one pivot); with 2, the other language. `numbers=False` uses lengths alone
    (faster, less sensitive to short shifts). Needs no model; see the module doc."""
    langs = list(languages) if languages is not None else list(corpus.languages)
    if len(corpus.languages) < 2 or not corpus.sentence_ids:
        return []
    if pivot is None and len(corpus.languages) < 3:
        pivot = default_pivot(corpus)
    if pivot is not None and pivot not in corpus.languages:
        from babelmap.engine.errors import CorpusError
        raise CorpusError(f"pivot language {pivot!r} is not in corpus {corpus.name}",
                          hint=f"choose one of its languages, e.g. {default_pivot(corpus)}")
    others = [l for l in langs if l != pivot]
    if not others:
        return []
    all_l = np.stack([_lengths(r) for r in corpus.texts])
    row_of = {l: i for i, l in enumerate(corpus.languages)}
    lp = all_l[row_of[pivot]] if pivot is not None else consensus_lengths(corpus, all_l)
    extra = None
    if numbers:
        nums = {l: [numbers_in(t) for t in corpus.text(l)] for l in corpus.languages}
        ref_digits = nums[pivot] if pivot is not None else consensus_numbers(corpus, nums)
        extra = np.stack([_number_costs(nums[l], ref_digits) for l in others])
    pivot = pivot or CONSENSUS
    lx = all_l[[row_of[l] for l in others]]
    paths, gains = _viterbi_all(lx, lp, switch_cost, extra)
    suspects = []
    for i, lang in enumerate(others):
        for a, b, off, gain in _runs(paths[i], gains[i]):
            if gain >= min_score:
                suspects.append(_suspect(corpus, lang, pivot, a, b, off, gain))
    if pivot == CONSENSUS:
        return suspects
    return _blame_pivot(corpus, suspects, pivot, len(others))


def consensus_lengths(corpus, all_l: np.ndarray | None = None) -> np.ndarray:
    """Per sentence, the median over languages of log(length + 1) minus the language's median:
    the length profile all translations share (NaN where no language has the sentence)."""
    import warnings
    if all_l is None:
        all_l = np.stack([_lengths(r) for r in corpus.texts])
    centred = all_l - np.nanmedian(all_l, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-missing sentences stay NaN
        return np.nanmedian(centred, axis=0)


def default_pivot(corpus) -> str:
    """The language with the most sentences; among ties English, then the first id."""
    counts = corpus.mask.sum(axis=1)
    best = counts.max()
    tied = [l for l, c in zip(corpus.languages, counts) if c == best]
    return next((l for l in tied if l.startswith("eng_")), tied[0])


def warn_shifts(corpus, limit: int = 10, numbers: bool = False) -> list[Suspect]:
    """Run `find_shifts` (lengths alone by default: cheap enough for every read) and log each
    suspect (the first `limit`, then a count): for readers."""
    if len(corpus.languages) < 2:
        return []
    found = find_shifts(corpus, numbers=numbers)
    for s in found[:limit]:
        log.warning("%s", s.message)
    if len(found) > limit:
        log.warning("... and %d more possible misalignments (run `babelmap check --corpus` for all)",
                    len(found) - limit)
    return found


# -- the model -----------------------------------------------------------------------------------
def _lengths(row: list[str | None]) -> np.ndarray:
    """log(characters + 1) per sentence; NaN where missing."""
    n = np.array([-1 if t is None else len(t) for t in row], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n < 0, np.nan, np.log1p(np.maximum(n, 0)))


def _shifted(lp: np.ndarray, o: int) -> np.ndarray:
    """The pivot's length at j + o for every j (NaN beyond the ends)."""
    out = np.full_like(lp, np.nan)
    if o > 0:
        out[:-o] = lp[o:]
    elif o < 0:
        out[-o:] = lp[:o]
    else:
        out[:] = lp
    return out


def _costs(lx: np.ndarray, lp: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """[L, S, O] costs z^2 (capped); 0 where x is missing, UNSEEN where the pivot sentence is."""
    out = np.empty(lx.shape + (len(OFFSETS),))
    for k, o in enumerate(OFFSETS):
        r = lx - _shifted(lp, int(o))[None, :]
        z2 = np.minimum(((r - mu[:, None]) / sigma[:, None]) ** 2, CAP)
        z2 = np.where(np.isnan(r), UNSEEN, z2)
        out[:, :, k] = z2
    out[np.isnan(lx)] = 0.0
    return out


def _fit(lx: np.ndarray, lp: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Robust mean and spread of the log length ratio per language (at the given offsets per
    position, else offset 0)."""
    n_l = lx.shape[0]
    if offsets is None:
        r = lx - lp[None, :]
    else:
        stack = np.stack([_shifted(lp, int(o)) for o in OFFSETS])       # [O, S]
        idx = np.searchsorted(OFFSETS, offsets)                          # [L, S]
        r = lx - np.take_along_axis(stack.T[None].repeat(n_l, 0), idx[..., None], axis=2)[..., 0]
    mu = np.nanmedian(np.where(np.isnan(r), np.nan, r), axis=1)
    mad = np.nanmedian(np.abs(r - mu[:, None]), axis=1)
    sigma = np.maximum(1.4826 * mad, MIN_SIGMA)
    mu = np.where(np.isnan(mu), 0.0, mu)
    sigma = np.where(np.isnan(sigma), 1.0, sigma)
    return mu, sigma


def _viterbi(costs: np.ndarray, switch_cost: float) -> np.ndarray:
    """Best offset path [L, S] for costs [L, S, O] (half z^2 per position, `switch_cost` per change)."""
    n_l, n_s, n_o = costs.shape
    half = costs / 2.0
    back = np.empty((n_l, n_s, n_o), dtype=np.int8)
    score = half[:, 0, :] + switch_cost * (np.arange(n_o) != _ZERO)[None, :]   # start aligned
    trans = switch_cost * (1 - np.eye(n_o))                                      # [from, to]
    for j in range(1, n_s):
        cand = score[:, :, None] + trans[None, :, :]                              # [L, from, to]
        back[:, j, :] = cand.argmin(axis=1)
        score = cand.min(axis=1) + half[:, j, :]
    state = score.argmin(axis=1)
    path = np.empty((n_l, n_s), dtype=np.int8)
    for j in range(n_s - 1, -1, -1):
        path[:, j] = state
        state = back[np.arange(n_l), j, state]
    return path


def _viterbi_all(lx: np.ndarray, lp: np.ndarray, switch_cost: float,
                 extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit, decode, refit on the decoded offsets, decode again. Returns (offsets [L, S], gain
    [L, S]: how much better each position fits its path offset than offset 0, in log-likelihood).
    `extra` [L, S, O] is added to the length costs (the numbers' evidence)."""
    extra = 0.0 if extra is None else extra
    mu, sigma = _fit(lx, lp)
    path = _viterbi(_costs(lx, lp, mu, sigma) + extra, switch_cost)
    mu, sigma = _fit(lx, lp, OFFSETS[path])
    costs = _costs(lx, lp, mu, sigma) + extra
    path = _viterbi(costs, switch_cost)
    chosen = np.take_along_axis(costs, path[..., None].astype(np.int64), axis=2)[..., 0]
    gain = (costs[:, :, _ZERO] - chosen) / 2.0
    return OFFSETS[path], gain


def _runs(offsets: np.ndarray, gain: np.ndarray):
    """(start, end inclusive, offset, total gain) of each run of non-zero offset."""
    j, n = 0, len(offsets)
    while j < n:
        if offsets[j] == 0:
            j += 1
            continue
        k = j
        while k + 1 < n and offsets[k + 1] == offsets[j]:
            k += 1
        yield j, k, int(offsets[j]), float(gain[j:k + 1].sum())
        j = k + 1


# -- numbers: anchors that lengths miss -----------------------------------------------------------
NUMBER_MISMATCH = 8.0        # cost (as z^2) when both sentences hold numbers and they differ
NUMBER_MISSING = 3.0         # x holds numbers, the reference sentence none


def numbers_in(text: str | None) -> tuple[str, ...]:
    """The digit runs of a sentence in any script (Unicode decimal digits as ASCII), sorted:
    `"1.000 Menschen um 9:30"` -> `("000", "1", "30", "9")`."""
    if not text:
        return ()
    runs = _DIGITS.findall(text)          # `\d` is every Unicode decimal digit
    return tuple(sorted(r if r.isascii() else "".join(str(unicodedata.decimal(c)) for c in r) for r in runs))


def consensus_numbers(corpus, numbers: dict[str, list] | None = None) -> list[tuple[str, ...] | None]:
    """Per sentence, the numbers most languages write there (None when fewer than 3 languages, or
    under a fifth of those that have the sentence, agree: then numbers say nothing)."""
    numbers = numbers or {l: [numbers_in(t) for t in corpus.text(l)] for l in corpus.languages}
    out: list[tuple[str, ...] | None] = []
    for j in range(len(corpus.sentence_ids)):
        sigs = Counter()
        present = 0
        for lang, row in zip(corpus.languages, corpus.texts):
            if row[j] is not None:
                present += 1
                sigs[numbers[lang][j]] += 1
        top = sigs.most_common(1)
        out.append(top[0][0] if top and top[0][1] >= max(3, present / 5) else None)
    return out


def _number_costs(xs: list[tuple[str, ...]], ref: list[tuple[str, ...] | None]) -> np.ndarray:
    """[S, O] costs of the numbers of x's sentence j against the reference's sentence j + o."""
    n = len(xs)
    out = np.zeros((n, len(OFFSETS)))
    for j, x in enumerate(xs):
        if not x:
            continue
        for k, o in enumerate(OFFSETS):
            i = j + int(o)
            r = ref[i] if 0 <= i < n else None
            if r is None:
                continue
            if not r:
                out[j, k] = NUMBER_MISSING
            elif r != x:
                out[j, k] = NUMBER_MISMATCH
    return out


# -- reporting -----------------------------------------------------------------------------------
def _suspect(corpus, lang: str, pivot: str, a: int, b: int, off: int, gain: float) -> Suspect:
    present = [j for j in range(a, b + 1) if corpus.text(lang)[j] is not None] or [a, b]
    a, b = present[0], present[-1]
    sa, sb = corpus.sentence_ids[a], corpus.sentence_ids[b]
    meta = corpus.meta.get(lang, {})
    return Suspect(lang, meta.get("file"), source_line(corpus, lang, sa), source_line(corpus, lang, sb), sa, sb,
                   off, gain, len(present), pivot)


def _blame_pivot(corpus, suspects: list[Suspect], pivot: str, n_others: int) -> list[Suspect]:
    """Spans flagged in more than half of the other languages are the pivot's: one suspect for it."""
    if n_others < 3:
        return suspects
    pos = {s: j for j, s in enumerate(corpus.sentence_ids)}
    cover = np.zeros(len(corpus.sentence_ids), dtype=int)
    for s in suspects:
        cover[pos[s.first_id]:pos[s.last_id] + 1] += 1
    hot = cover > n_others / 2
    if not hot.any():
        return suspects
    out = [s for s in suspects if not hot[pos[s.first_id]:pos[s.last_id] + 1].any()]
    share = [s for s in suspects if hot[pos[s.first_id]:pos[s.last_id] + 1].any()]
    score = float(np.median([s.score for s in share]))
    for a, b, _, _ in _runs(hot.astype(int), hot.astype(float)):
        sa, sb = corpus.sentence_ids[a], corpus.sentence_ids[b]
        out.append(Suspect(pivot, corpus.meta.get(pivot, {}).get("file"), source_line(corpus, pivot, sa),
                           source_line(corpus, pivot, sb), sa, sb, 0, score, b - a + 1, pivot))
    return sorted(out, key=lambda s: (s.language, pos[s.first_id]))


_SPLIT_ID = re.compile(r"^(?:dev|devtest):(\d+)$")


def source_line(corpus, lang: str, sid: str) -> int | None:
    """The line of sentence `sid` in `lang`'s file, where the format tells: plain and FLORES ids are
    line numbers, eBible verses are lines of vref.txt, PBC verse ids are looked up in the file."""
    if sid.isdigit() and len(sid) != 8:
        return int(sid)
    m = _SPLIT_ID.match(sid)
    if m:
        return int(m.group(1))
    meta = corpus.meta.get(lang, {})
    if meta.get("vref"):
        return _vref_lines(meta["vref"]).get(sid)
    if meta.get("file") and sid.isdigit():
        return _pbc_lines(meta["file"]).get(sid)
    return None


@functools.lru_cache(maxsize=8)
def _vref_lines(path: str) -> dict[str, int]:
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    return {v.strip(): i for i, v in enumerate(lines, 1) if v.strip()}


@functools.lru_cache(maxsize=64)
def _pbc_lines(path: str) -> dict[str, int]:
    out = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            head = line[:8]
            if head.isdigit():
                out.setdefault(head, i)
    return out
