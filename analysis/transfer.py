"""Source-language selection for cross-lingual transfer, evaluated on published transfer results.

For each target language, a *method* ranks the candidate source languages of a pool by a
similarity (a LanguageMatrix: mPLM-Sim at a layer, any linguistic measure) or always picks
English ("english"). A transfer table (e.g. de Vries et al. 2022, `udpos-ft-10000.csv`: POS
accuracy of XLM-R fine-tuned on each of 65 source languages, tested on 105 targets) says how
good each choice actually was. Per method we report, over targets:

- `chosen`: mean accuracy of the top-ranked source;
- `gap`: mean (oracle source's accuracy - chosen accuracy), the oracle being the best source
  in the pool for that target;
- `top@k`: fraction of targets whose oracle source is among the method's first k;
- `ndcg` / `ndcg@k`: NDCG of the method's ranking, relevance = the source's accuracy min-max
  scaled within the target's candidates (best source 1, worst 0; raw accuracies would give
  every ranking an NDCG near 1);
and `paired_bootstrap` compares two methods' per-target chosen accuracies (resampling targets).

A target is never its own source (zero-shot transfer): the pool for target t excludes t.
All methods are evaluated on the same targets and pool (those every method covers), so their
numbers are comparable and the bootstrap is paired; what was left out is reported.
Ties in similarity are broken by the pool order (deterministic). "english" ranks English
first and the rest in pool order, so only its top-1 numbers are meaningful.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix

log = logging.getLogger(__name__)

ENGLISH = "english"

from babelmap.engine.languages import STANDARD_MEMBER  # noqa: E402  (macrolanguage -> standard member)


@dataclass
class TransferTable:
    """scores[i, j] = accuracy of training on `sources[i]` and testing on `targets[j]`
    (codes as in the file); `ids` maps each code to our id (None where it cannot be mapped,
    the reason in `unmapped`)."""

    sources: list[str]
    targets: list[str]
    scores: np.ndarray
    ids: dict[str, str | None] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    path: str = ""

    def score(self, source: str, target: str) -> float:
        return float(self.scores[self.sources.index(source), self.targets.index(target)])


def _map_code(code: str) -> tuple[str | None, str | None]:
    """A UD / ISO code -> (our id, None) or (None, reason)."""
    from babelmap.engine.languages import treebank_id
    try:
        return treebank_id(code), None
    except Exception as e:  # LanguageError, or anything a code library raises on odd input
        return None, str(e)


COLUMN_SETS = (("source", "target", "score"), ("lang_train", "lang_pred", "score"))


def read_transfer_table(path: str | os.PathLike, source_col: str | None = None, target_col: str | None = None,
                        score_col: str = "score") -> TransferTable:
    """Read a long-format transfer table (one row per source, target, score): CSV or TSV with a
    header, columns `source,target,score` or xpos' `lang_train,lang_pred,score` (or name them),
    e.g. xpos `udpos-ft-10000.csv`. Duplicate pairs are an error; missing pairs are NaN; codes
    that map to no language id are listed in `unmapped` (and logged)."""
    path = Path(path)
    if not path.exists():
        raise BabelmapError(f"transfer table {path} not found")
    rows: dict[tuple[str, str], float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        head = fh.readline()
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter="\t" if head.count("\t") > head.count(",") else ",")
        fields = reader.fieldnames or []
        if source_col is None or target_col is None:
            found = next((c for c in COLUMN_SETS if all(x in fields for x in c[:2])), None)
            if found is None:
                raise BabelmapError(f"{path}: need columns source,target,score (or lang_train,lang_pred,score); "
                                    f"found {fields}")
            source_col, target_col = source_col or found[0], target_col or found[1]
        for col in (source_col, target_col, score_col):
            if col not in fields:
                raise BabelmapError(f"{path}: no column {col!r} (columns: {fields})")
        for n, r in enumerate(reader, start=2):
            key = (r[source_col].strip(), r[target_col].strip())
            if key in rows:
                raise BabelmapError(f"{path}:{n}: duplicate pair {key}")
            try:
                rows[key] = float(r[score_col])
            except ValueError:
                raise BabelmapError(f"{path}:{n}: score {r[score_col]!r} is not a number") from None
    sources = sorted({s for s, _ in rows})
    targets = sorted({t for _, t in rows})
    scores = np.full((len(sources), len(targets)), np.nan)
    si = {s: i for i, s in enumerate(sources)}
    ti = {t: j for j, t in enumerate(targets)}
    for (s, t), v in rows.items():
        scores[si[s], ti[t]] = v
    ids, unmapped = {}, {}
    for code in sorted(set(sources) | set(targets)):
        ids[code], why = _map_code(code)
        if why:
            unmapped[code] = why
    if unmapped:
        log.warning("%s: %d codes cannot be mapped to language ids: %s", path, len(unmapped),
                    ", ".join(sorted(unmapped)))
    return TransferTable(sources, targets, scores, ids, unmapped, str(path))


def _matrix_lookup(table: TransferTable, matrix: LanguageMatrix) -> tuple[dict[str, str], dict[str, str]]:
    """`engine.languages.match_ids` of the table's codes among the matrix's languages."""
    from babelmap.engine.languages import match_ids
    return match_ids(table.ids, matrix.languages, matrix.name or "the matrix")


@dataclass
class Selection:
    """Per-method, per-target outcomes on a common set of targets and pool."""

    methods: list[str]
    targets: list[str]
    pool: list[str]
    chosen: dict[str, list[str]]          # method -> chosen source per target
    chosen_score: dict[str, np.ndarray]   # method -> [T]
    oracle: list[str]
    oracle_score: np.ndarray
    ranks: dict[str, np.ndarray]          # method -> [T] 1-based rank of the oracle source
    ndcg: dict[str, np.ndarray]
    ndcg_k: dict[str, np.ndarray]
    k: int
    excluded: dict[str, str]

    def summary(self, ks: Sequence[int] = (1, 3, 5)):
        """One row per method: chosen, gap, top@k, ndcg, ndcg@k, targets, pool size."""
        import pandas as pd
        rows = []
        for m in self.methods:
            row = {"method": m, "chosen": float(np.mean(self.chosen_score[m])),
                   "oracle": float(np.mean(self.oracle_score)),
                   "gap": float(np.mean(self.oracle_score - self.chosen_score[m]))}
            for k in ks:
                row[f"top@{k}"] = float(np.mean(self.ranks[m] <= k))
            row["ndcg"] = float(np.mean(self.ndcg[m]))
            row[f"ndcg@{self.k}"] = float(np.mean(self.ndcg_k[m]))
            row["targets"] = len(self.targets)
            row["pool"] = len(self.pool)
            rows.append(row)
        return pd.DataFrame(rows)

    def per_target(self):
        import pandas as pd
        rows = []
        for j, t in enumerate(self.targets):
            for m in self.methods:
                rows.append({"target": t, "method": m, "chosen": self.chosen[m][j],
                             "score": float(self.chosen_score[m][j]), "oracle": self.oracle[j],
                             "oracle_score": float(self.oracle_score[j]),
                             "oracle_rank": int(self.ranks[m][j]), "ndcg": float(self.ndcg[m][j])})
        return pd.DataFrame(rows)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the selection (every method's choices and scores per target) as JSON through a
        temporary name; `Selection.load` gives it back."""
        import json
        path = Path(path)
        data = {"format": "babelmap.selection", "methods": self.methods, "targets": self.targets,
                "pool": self.pool, "chosen": self.chosen, "oracle": self.oracle, "k": self.k,
                "excluded": self.excluded, "oracle_score": self.oracle_score.tolist(),
                **{key: {m: np.asarray(v).tolist() for m, v in getattr(self, key).items()}
                   for key in ("chosen_score", "ranks", "ndcg", "ndcg_k")}}
        from babelmap.engine.diskwrite import write_text_safely
        return write_text_safely(path, json.dumps(data, indent=1), "source selection")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Selection":
        """Read a selection written by `save`."""
        import json
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        arr = lambda key, dt=np.float64: {m: np.asarray(v, dtype=dt) for m, v in d[key].items()}  # noqa: E731
        return cls(d["methods"], d["targets"], d["pool"], d["chosen"], arr("chosen_score"), d["oracle"],
                   np.asarray(d["oracle_score"], dtype=np.float64), arr("ranks", np.int64), arr("ndcg"),
                   arr("ndcg_k"), int(d["k"]), d["excluded"])

    def compare(self, a: str, b: str, n_boot: int = 10000, seed: int = 0) -> dict:
        """Paired bootstrap over targets of mean chosen accuracy, method a minus method b."""
        return paired_bootstrap(self.chosen_score[a], self.chosen_score[b], n_boot, seed)


def _dcg(gains: np.ndarray) -> float:
    return float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2))))


def ndcg(ranked_scores: np.ndarray, k: int | None = None) -> float:
    """NDCG of a ranking given the true scores in ranked order; relevance = scores min-max
    scaled to [0, 1] within the list (1 when all scores are equal)."""
    s = np.asarray(ranked_scores, dtype=np.float64)
    lo, hi = s.min(), s.max()
    if hi == lo:
        return 1.0
    rel = (s - lo) / (hi - lo)
    ideal = np.sort(rel)[::-1]
    if k is not None:
        rel, ideal = rel[:k], ideal[:k]
    return _dcg(rel) / _dcg(ideal)


def rank_sources(target: str, pool: Sequence[str], method: LanguageMatrix | str,
                 lookup: Mapping[str, str] | None = None, english: str = "en") -> list[str]:
    """The pool (without the target itself) ordered best-first by the method: similarity to
    the target descending (NaN last, ties in pool order), or English first for "english"."""
    cands = [s for s in pool if s != target and not (lookup and s in lookup and target in lookup
                                                      and lookup[s] == lookup[target])]
    if isinstance(method, str):
        if method != ENGLISH:
            raise ValueError(f"unknown method {method!r}: give a LanguageMatrix or {ENGLISH!r}")
        return ([english] if english in cands else []) + [s for s in cands if s != english]
    lookup = lookup or {c: c for c in set(cands) | {target}}
    t = lookup[target]
    sims = np.array([method.get(t, lookup[s]) for s in cands], dtype=np.float64)
    sims = np.where(np.isfinite(sims), sims, -np.inf)
    order = sorted(range(len(cands)), key=lambda i: (-sims[i], i))
    return [cands[i] for i in order]


def select_sources(table: TransferTable, methods: Mapping[str, LanguageMatrix | str],
                   pool: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                   k: int = 3, english: str = "en") -> Selection:
    """Rank sources for every target with every method and score the choices (module doc).
    `pool`/`targets`: codes as in the table (default: all its sources / targets)."""
    pool = list(pool) if pool is not None else list(table.sources)
    targets = list(targets) if targets is not None else list(table.targets)
    excluded: dict[str, str] = {}
    for code in pool + targets:
        if code in table.unmapped:
            excluded[code] = f"cannot be mapped to a language id ({table.unmapped[code]})"
    lookups: dict[str, dict[str, str]] = {}
    for name, m in methods.items():
        if isinstance(m, LanguageMatrix):
            lookups[name], why = _matrix_lookup(table, m)
            for code in sorted(set(pool) | set(targets)):
                if code not in lookups[name] and code not in excluded:
                    excluded[code] = why.get(code) or f"not covered by {name}"
    for code in pool:
        if code not in table.sources:
            raise ValueError(f"pool language {code!r} is not a source in {table.path}")
    if ENGLISH in methods.values() and english not in pool:
        raise ValueError(f"method {ENGLISH!r} needs {english!r} in the pool")
    usable = lambda c: c not in excluded  # noqa: E731
    pool_u = [s for s in pool if usable(s)]
    # a row's NaN similarity (e.g. URIEL has no value) still ranks (last); a code with no row is excluded
    tgt_u = [t for t in targets if usable(t) and t in table.targets]
    if english in pool and not usable(english) and ENGLISH in methods.values():
        raise ValueError(f"English ({english!r}) is excluded: {excluded[english]}")
    if len(pool_u) < 2 or not tgt_u:
        raise ValueError(f"too little left to evaluate: pool {len(pool_u)}, targets {len(tgt_u)}; "
                         f"excluded: {excluded}")
    si = {s: i for i, s in enumerate(table.sources)}
    ti = {t: j for j, t in enumerate(table.targets)}
    T = len(tgt_u)
    oracle, oracle_score = [], np.zeros(T)
    chosen = {m: [] for m in methods}
    chosen_score = {m: np.zeros(T) for m in methods}
    ranks = {m: np.zeros(T, dtype=np.int64) for m in methods}
    nd = {m: np.zeros(T) for m in methods}
    ndk = {m: np.zeros(T) for m in methods}
    for j, t in enumerate(tgt_u):
        cands = [s for s in pool_u if not _same_language(table, s, t)]
        sc = {s: table.scores[si[s], ti[t]] for s in cands}
        best = max(cands, key=lambda s: (sc[s], -cands.index(s)))
        oracle.append(best)
        oracle_score[j] = sc[best]
        for name, m in methods.items():
            ranking = rank_sources(t, cands, m, lookups.get(name), english)
            chosen[name].append(ranking[0])
            chosen_score[name][j] = sc[ranking[0]]
            ranks[name][j] = ranking.index(best) + 1
            rs = np.array([sc[s] for s in ranking])
            nd[name][j] = ndcg(rs)
            ndk[name][j] = ndcg(rs, k)
    if excluded:
        log.info("source selection: excluded %d codes: %s", len(excluded), excluded)
    return Selection(list(methods), tgt_u, pool_u, chosen, chosen_score, oracle, oracle_score, ranks,
                     nd, ndk, k, excluded)


def _same_language(table: TransferTable, source: str, target: str) -> bool:
    """True when two codes of the table are one language (the same code or the same id)."""
    return source == target or (table.ids.get(source) is not None
                                and table.ids.get(source) == table.ids.get(target))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 10000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Paired bootstrap over items of mean(a) - mean(b): the difference, a percentile interval
    and a two-sided p-value (2 x the smaller tail fraction of replicates at or beyond 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired samples differ in length")
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    reps = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    p = 2 * min(np.mean(reps <= 0), np.mean(reps >= 0))
    return {"diff": float(d.mean()), "low": float(np.quantile(reps, alpha)),
            "high": float(np.quantile(reps, 1 - alpha)), "p": float(min(1.0, p)), "n": int(len(d)),
            "n_boot": int(n_boot)}
