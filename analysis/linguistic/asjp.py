"""ASJP lexical similarity: 1 - LDND over the 40-item Swadesh lists, from an ASJP CLDF folder
(`languages.csv`, `forms.csv`; e.g. ASJP v21 from lexibank).

LDND (Wichmann et al. 2010), with words as sequences of ASJPcode *segments*:

* LDN(w, v) = Levenshtein(w, v) / max(len(w), len(v)) (in segments);
* a meaning's LDN between two languages is the minimum over their synonyms (at most the first
  two per meaning, as Wichmann's own program);
* LDN(A, B) = mean over the meanings both attest of the meaning's LDN;
* D(A, B) = mean over pairs of *different* meanings i != j (i attested in A, j in B) of LDN,
  the chance similarity of the two sound systems;
* LDND = LDN / D, and similarity = 1 - LDND (1 for a language with itself, about 0 for unrelated
  languages, slightly negative when two lists are less alike than chance).

Tokenisation of ASJPcode: `"` (glottalised) and `*` (nasalised) attach to the preceding
segment; `~` merges the two preceding segments into one, `$` the three preceding; spaces are
removed. Loanwords are kept (as in Wichmann's LDND program).

One doculect per language: among the doculects with the language's ISO 639-3 code, the one
attesting most of the 40 items; ties go to a living doculect over an extinct one, then to the
shortest ID (the plain `MANDARIN`, `ENGLISH` rather than `MANDARIN_2`, `KUNMING_MANDARIN`),
then alphabetically. Languages whose best doculect attests fewer than `min_items` (ASJP's usual
minimum: 28) are left out and reported. A code ASJP lacks falls back to the macrolanguage or its
main individual language (`tables.candidate_codes`). The parsed lists are cached in `cache_dir("asjp")`.
"""
from __future__ import annotations

import csv
import hashlib
import os
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.cache import cache_dir
from babelmap.engine.errors import BabelmapError
from babelmap.analysis.linguistic.tables import candidate_codes
from babelmap.kernels.matrix import LanguageMatrix

ITEMS_40 = (1, 2, 3, 11, 12, 18, 19, 21, 22, 23, 25, 28, 30, 31, 34, 39, 40, 41, 43, 44, 47, 48,
            51, 53, 54, 57, 58, 61, 66, 72, 74, 75, 77, 82, 85, 86, 92, 95, 96, 100)
MAX_SYNONYMS = 2
CACHE_VERSION = "asjp-v1"


def segments(form: str) -> list[str]:
    """Split an ASJPcode word into segments (see the module docstring)."""
    segs: list[str] = []
    for c in form:
        if c.isspace():
            continue
        if c in '"*':
            if segs:
                segs[-1] += c
            else:
                segs.append(c)
        elif c == "~" or c == "$":
            n = 2 if c == "~" else 3
            if len(segs) >= 2:
                k = min(n, len(segs))
                segs[-k:] = ["".join(segs[-k:]) + c]
            elif segs:
                segs[-1] += c
        else:
            segs.append(c)
    return segs


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Plain dynamic programme over segment sequences (used by tests and small inputs)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


class ASJP:
    """The folder's 40-item word lists per doculect (segmented) and the ISO -> doculects index."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        langs_csv, forms_csv = folder / "languages.csv", folder / "forms.csv"
        for p in (langs_csv, forms_csv):
            if not p.exists():
                raise BabelmapError(f"ASJP folder {folder}: {p.name} is missing (expected CLDF "
                                    "languages.csv and forms.csv)")
        self.folder = folder
        key = hashlib.sha256(repr([(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                                   for p in (langs_csv, forms_csv)]).encode() + CACHE_VERSION.encode())
        cached = cache_dir("asjp") / f"{key.hexdigest()[:32]}.pkl"
        if cached.exists():
            with open(cached, "rb") as fh:
                self.by_iso, self.extinct, self.words = pickle.load(fh)
            return
        self._parse(langs_csv, forms_csv)
        tmp = cached.with_name(cached.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump((self.by_iso, self.extinct, self.words), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cached)

    def _parse(self, langs_csv: Path, forms_csv: Path) -> None:
        self.by_iso: dict[str, list[str]] = {}
        self.extinct: dict[str, bool] = {}
        with open(langs_csv, encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    if row["ISO639P3code"]:
                        self.by_iso.setdefault(row["ISO639P3code"], []).append(row["ID"])
                    self.extinct[row["ID"]] = "true" in (row.get("recently_extinct", "").lower(),
                                                         row.get("long_extinct", "").lower())
                except KeyError as e:
                    raise BabelmapError(f"{langs_csv}:{n}: column {e} missing") from e
        items = set(ITEMS_40)
        self.words: dict[str, dict[int, list[tuple[str, ...]]]] = {}
        with open(forms_csv, encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    item = int(row["Parameter_ID"])
                    lang, form = row["Language_ID"], row["Form"]
                except (KeyError, ValueError) as e:
                    raise BabelmapError(f"{forms_csv}:{n}: bad row ({e})") from e
                if item not in items:
                    continue
                segs = tuple(segments(form))
                if not segs:
                    continue
                syn = self.words.setdefault(lang, {}).setdefault(item, [])
                if len(syn) < MAX_SYNONYMS:
                    syn.append(segs)

    def choose(self, iso: str) -> tuple[str | None, int]:
        """The doculect for an ISO code (most of the 40 items, then living, then shortest ID,
        then alphabetical) and its item count."""
        cands = self.by_iso.get(iso, [])
        if not cands:
            return None, 0
        best = min(cands, key=lambda d: (-len(self.words.get(d, {})), self.extinct.get(d, False), len(d), d))
        return best, len(self.words.get(best, {}))


@lru_cache(maxsize=4)
def load_asjp(folder: str | Path) -> ASJP:
    """Parse (once per process) an ASJP CLDF folder."""
    return ASJP(Path(folder).resolve())


def ldnd_matrix(lists: Sequence[dict[int, list[tuple[str, ...]]]], progress: bool = False) -> np.ndarray:
    """All-pairs LDND between word lists (meaning -> synonyms as segment tuples)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist
    from tqdm.auto import tqdm

    L = len(lists)
    M = len(ITEMS_40)
    col = {item: k for k, item in enumerate(ITEMS_40)}
    # segments -> one character each, so string Levenshtein = segment Levenshtein
    alphabet: dict[str, str] = {}
    words, group, lengths = [], [], []
    for li, lst in enumerate(lists):
        for item in sorted(lst):
            for w in lst[item]:
                words.append("".join(alphabet.setdefault(s, chr(len(alphabet))) for s in w))
                group.append(li * M + col[item])
                lengths.append(len(w))
    group = np.asarray(group)
    lengths = np.asarray(lengths, dtype=np.float64)
    lang_of = group // M
    starts = np.searchsorted(lang_of, np.arange(L + 1))
    out = np.full((L, L), np.nan)
    for a in tqdm(range(L), desc="LDND", disable=not progress, leave=False):
        ra = slice(starts[a], starts[a + 1])
        rb = slice(starts[a], len(words))               # languages b >= a
        if ra.start == ra.stop:
            continue
        d = cdist(words[ra], words[rb], scorer=Levenshtein.distance, dtype=np.float64, workers=-1)
        d /= np.maximum(lengths[ra][:, None], lengths[rb][None, :])
        # min over synonyms: rows grouped by a's meaning, columns by (b, meaning)
        ga, gb = group[ra] % M, group[rb]
        row_starts = np.flatnonzero(np.r_[True, ga[1:] != ga[:-1]])
        d = np.minimum.reduceat(d, row_starts, axis=0)
        col_starts = np.flatnonzero(np.r_[True, gb[1:] != gb[:-1]])
        d = np.minimum.reduceat(d, col_starts, axis=1)
        full = np.full((M, (L - a) * M), np.nan)
        full[np.ix_(ga[row_starts], gb[col_starts] - a * M)] = d
        full = full.reshape(M, L - a, M)
        diag = full[np.arange(M), :, np.arange(M)]      # [M, L-a]: same meaning
        ldn = np.nanmean(diag, axis=0)
        ok = ~np.isnan(full)
        tot = np.where(ok, full, 0.0).sum(axis=(0, 2)) - np.nansum(diag, axis=0)
        cnt = ok.sum(axis=(0, 2)) - (~np.isnan(diag)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            den = tot / cnt
            out[a, a:] = ldn / den
        out[a, a] = 0.0
    iu = np.triu_indices(L, 1)
    out[(iu[1], iu[0])] = out[iu]
    return out


def asjp_matrix(folder: str | Path, languages: Sequence[str], *, min_items: int = 28,
                progress: bool = True) -> LanguageMatrix:
    """ASJP similarity 1 - LDND over our language ids (see the module docstring)."""
    import warnings

    db = load_asjp(folder)
    languages = list(languages)
    if len(set(languages)) != len(languages):
        raise BabelmapError("duplicate language ids given to asjp_matrix")
    notes: dict = {}
    missing: list[str] = []
    chosen: dict[str, int] = {}
    doculects: list[str] = []
    per_lang: list[int] = []
    for lang in languages:
        codes = candidate_codes(lang)
        code = used = codes[0]
        doc, n = None, 0
        for c in codes:                     # first code whose best doculect is good enough
            d, k = db.choose(c)
            if d is not None and (doc is None or (n < min_items <= k)):
                doc, n, used = d, k, c
            if doc is not None and n >= min_items:
                break
        if doc is None:
            missing.append(lang)
            notes[lang] = f"{code} has no doculect in ASJP {db.folder}"
            per_lang.append(-1)
            continue
        if n < min_items:
            missing.append(lang)
            notes[lang] = f"best ASJP doculect for {used} ({doc}) attests {n} of the 40 items (< {min_items})"
            per_lang.append(-1)
            continue
        notes[lang] = f"doculect {doc} ({n}/40 items" + (f", via {used}" if used != code else "") + ")"
        if doc not in chosen:
            chosen[doc] = len(doculects)
            doculects.append(doc)
        per_lang.append(chosen[doc])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ldnd = ldnd_matrix([db.words[d] for d in doculects], progress=progress)
    L = len(languages)
    idx = np.array(per_lang)
    ok = idx >= 0
    values = np.full((L, L), np.nan)
    values[np.ix_(ok, ok)] = 1.0 - ldnd[np.ix_(idx[ok], idx[ok])]
    notes["measure"] = "ASJP 1 - LDND over the 40-item lists"
    return LanguageMatrix(languages, values, "asjp", missing, notes)
