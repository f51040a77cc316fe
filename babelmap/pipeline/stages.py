"""The stages of `babelmap run`, each a `Stage`: a name, an input fingerprint (a hash of what
it depends on: the corpus content, the model, the earlier stages' fingerprints, its own
settings), the files it writes, a `compute` that writes them and returns its typed result,
and a `load` that reads that result back from the files alone.

`StageLog` keeps `<out>/run-state.json`: per finished stage its fingerprint and outputs. A stage
whose outputs all exist under an unchanged fingerprint is reused (loaded), so an interrupted or
repeated run redoes only what changed. No stage rewrites another stage's files.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import numpy as np

from babelmap.engine.diskwrite import write_text_safely

log = logging.getLogger("babelmap.pipeline")
T = TypeVar("T")
STATE = "run-state.json"


@dataclass
class Stage(Generic[T]):
    """One step of the pipeline: `compute()` writes `outputs` (paths relative to the results
    folder; it may add the ones it only knows while running) and returns the result; `load()`
    reads the same result back from those files."""

    name: str
    fingerprint: str
    outputs: list[str]
    compute: Callable[[], T]
    load: Callable[[], T]


class StageLog:
    """Bookkeeping of finished stages in `<out>/run-state.json`, and the `[i/n]` progress lines."""

    def __init__(self, out: Path, total: int, force: bool = False, progress: bool = True):
        self.out, self.path, self.total = out, out / STATE, total
        self.force, self.progress = force, progress
        self.n = 0
        self.timings: dict[str, float | None] = {}
        try:
            self.state = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            self.state = {}

    def finished(self, stage: Stage) -> bool:
        s = self.state.get(stage.name)
        return (not self.force and s is not None and s.get("fingerprint") == stage.fingerprint
                and all((self.out / o).exists() for o in s.get("outputs", [])))

    def run(self, stage: Stage[T]) -> T:
        """The stage's result: loaded when finished with this fingerprint, else computed."""
        self.n += 1
        head = f"[{self.n}/{self.total}] {stage.name}"
        if self.finished(stage):
            self.say(f"{head}: reused (inputs unchanged)")
            self.timings[stage.name] = None
            return stage.load()
        self.say(f"{head} ...")
        self.state.pop(stage.name, None)             # not finished until recorded again
        t0 = time.perf_counter()
        value = stage.compute()
        dt = time.perf_counter() - t0
        self.timings[stage.name] = dt
        self.state[stage.name] = {"fingerprint": stage.fingerprint, "outputs": stage.outputs,
                                  "seconds": round(dt, 2),
                                  "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self._save()
        self.say(f"{head}: done in {dt:.1f} s")
        return value

    def skip(self, name: str, why: str) -> None:
        self.n += 1
        self.say(f"[{self.n}/{self.total}] {name}: skipped ({why})")

    def _save(self) -> None:
        write_text_safely(self.path, json.dumps(self.state, indent=1), "run state")

    def say(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr, flush=True)
        log.info(msg)


# -- helpers the stages share -------------------------------------------------------------------
def model_key(model: str | None) -> dict:
    """What identifies the model for the fingerprint: the name, or a checkpoint's content hash."""
    from babelmap.engine.models.loading import DEFAULT_NAMES, fingerprint_dir, resolve_model_dir
    if model in DEFAULT_NAMES:
        return {"model": "default"}
    p = Path(model)
    if p.is_dir():
        return {"model": str(p.resolve()), "content": fingerprint_dir(p)}
    folder, commit = resolve_model_dir(str(model))  # a hub id: follow its resolved commit
    return {"model": str(model), "revision": commit, "content": fingerprint_dir(folder, commit=commit)}


def safe_name(name: str) -> str:
    """A file-name-safe measure name (a path gives its stem)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem) or "measure"


def language_names(languages: list[str], corpus=None) -> dict[str, str]:
    """A display name per id: the corpus's own, else the code library's."""
    from babelmap.engine.languages import language_name
    out = {}
    for lang in languages:
        nm = (corpus.meta.get(lang) or {}).get("name") if corpus is not None else None
        if not nm:
            try:
                nm = language_name(lang)
            except Exception:
                nm = None
        if nm:
            out[lang] = nm
    return out


def families_from_genetic(genetic, names: dict[str, str]) -> dict[str, str | None]:
    """Top-level families from URIEL genetic similarity: languages with a genetic similarity
    > 0 share a family (URIEL's genetic distance is 1 exactly across families), so families are
    the connected components of that graph; named after their two largest-named members.
    Languages without genetic data get None."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    v = np.nan_to_num(np.asarray(genetic.values, dtype=float), nan=0.0)
    has = np.isfinite(np.asarray(genetic.values, dtype=float)).sum(axis=1) > 1
    adj = (v > 1e-9) & has[:, None] & has[None, :]
    np.fill_diagonal(adj, False)
    _, lab = connected_components(csr_matrix(adj), directed=False)
    out: dict[str, str | None] = {}
    groups: dict[int, list[str]] = {}
    for i, lang in enumerate(genetic.languages):
        if has[i]:
            groups.setdefault(int(lab[i]), []).append(lang)
    for members in groups.values():
        nm = sorted({names.get(x) or x for x in members})
        label = ("URIEL family: " + ", ".join(nm[:2]) + (f" +{len(nm) - 2}" if len(nm) > 2 else "")
                 if len(members) > 1 else f"isolate here: {nm[0]}")
        for x in members:
            out[x] = label
    for x in genetic.languages:
        out.setdefault(x, None)
    return out


def save_measure(m, folder: Path, name: str) -> None:
    """A measure as the reference square TSV plus its `missing` ids and notes (JSON)."""
    m.to_tsv(folder / f"{name}.tsv")
    (folder / f"{name}.missing.json").write_text(json.dumps(
        {"missing": list(m.missing), "notes": {k: str(v) for k, v in (m.notes or {}).items()}}, indent=1))


def load_measure(folder: Path, name: str):
    """The measure `save_measure` wrote, with its `missing` ids and notes."""
    from babelmap.kernels.matrix import LanguageMatrix
    m = LanguageMatrix.from_tsv(folder / f"{name}.tsv", name=name)
    side = folder / f"{name}.missing.json"
    if side.exists():
        extra = json.loads(side.read_text())
        m.missing, m.notes = list(extra.get("missing", [])), dict(extra.get("notes", {}))
    return m


def overall_best_layer(corrs: dict, layers: list[int]) -> tuple[int, str]:
    """The layer with the highest mean (over measures) of the mean Pearson correlation; the
    last layer when no measure gives a defined correlation."""
    rows = [c.mean_pearson for c in corrs.values() if np.isfinite(c.mean_pearson).any()]
    if not rows:
        return layers[-1], "last layer: no measure gave a defined correlation"
    avg = np.nanmean(np.vstack(rows), axis=0)
    k = int(np.nanargmax(avg))
    used = [n for n, c in corrs.items() if np.isfinite(c.mean_pearson).any()]
    return int(corrs[used[0]].layers[k]), f"highest mean Pearson r averaged over {', '.join(used)}"


def write_layer_choice(path: Path, layer: int, reason: str) -> None:
    """Record a chosen default layer and why (`{"best_layer", "reason"}` JSON, crash-safe)."""
    write_text_safely(path, json.dumps({"best_layer": int(layer), "reason": reason}), "default layer")


def read_layer_choice(path: Path) -> tuple[int, str]:
    """(layer, why) recorded by `write_layer_choice`."""
    d = json.loads(Path(path).read_text())
    return int(d["best_layer"]), d["reason"]


def correlate_measures(result, measures: dict, cdir: Path, layer_file: Path, *, min_partners: int = 5,
                       bootstrap: int = 0, progress: bool = False) -> dict:
    """The correlation protocol of `babelmap run`, for cosine-mean and each alignment measure
    alike: `result` (a SimilarityResult) against every measure (analysis.correlation, at least
    200 bootstrap resamples, sentence uncertainty too when the result has it), written into
    `cdir` (correlations.h5 and the TSVs), and the layer with the highest mean Pearson r over
    the measures recorded in `layer_file`. Returns {measure: Correlation}."""
    from tqdm.auto import tqdm

    from babelmap.analysis import correlation as cor
    cdir.mkdir(parents=True, exist_ok=True)
    boot = max(200, bootstrap)
    uncertainty = "both" if result.stderr is not None else "languages"
    corrs = {n: cor.correlate(result, measures[n], min_partners=min_partners, bootstrap=boot, uncertainty=uncertainty)
             for n in tqdm(list(measures), desc="correlation", unit="measure", disable=not progress)}
    write_correlation_tables(cdir, corrs)
    cor.save_correlations(corrs, cdir / "correlations.h5")
    write_layer_choice(layer_file, *overall_best_layer(corrs, list(result.layers)))
    return corrs


def write_correlation_tables(cdir: Path, corrs: dict) -> None:
    """The correlation stage's TSVs for readers outside Python."""
    import pandas as pd
    from babelmap.analysis.correlation import by_layer_table, summary_table
    summary_table(corrs).to_csv(cdir / "summary.tsv", sep="\t", index=False)
    by_layer_table(corrs, "pearson").to_csv(cdir / "by_layer_pearson.tsv", sep="\t")
    by_layer_table(corrs, "spearman").to_csv(cdir / "by_layer_spearman.tsv", sep="\t")
    tabs = [c.to_pandas() for c in corrs.values()]
    if tabs:
        for key, fname in (("by_layer", "by_layer_long"), ("by_language", "per_language"),
                           ("language_max", "language_max"), ("dropped", "dropped")):
            pd.concat([t[key] for t in tabs]).to_csv(cdir / f"{fname}.tsv", sep="\t", index=False)


def run_transfer(table_path: str, model_matrix, measures: dict, tdir: Path):
    """Source selection with the model's similarity (at the default layer), each measure and
    English, on a long-format transfer table (`evaluate_selection`); returns the Selection."""
    from babelmap.analysis.transfer import read_transfer_table
    return evaluate_selection(read_transfer_table(table_path), model_matrix, measures, tdir, english="en",
                              label=table_path)


def evaluate_selection(table, reference, others: dict, tdir: Path, english: str = "en", label: str = ""):
    """Source selection on a TransferTable by `reference` (a LanguageMatrix: the model's
    similarity), each of `others` (name -> LanguageMatrix) and English (when `english` is one of
    the table's sources); writes selection.json, summary.tsv, per_target.tsv, compare.tsv (paired
    bootstrap, reference minus each other method) and excluded.json into `tdir`."""
    import pandas as pd
    from babelmap.analysis.transfer import ENGLISH, select_sources
    methods: dict[str, Any] = {reference.name: reference}
    methods.update(others)
    if english in table.sources:
        methods["english"] = ENGLISH
    # every method must cover a target/source for it to count: drop methods that would leave
    # fewer than 5 targets (the last named first), so one sparse measure does not shrink the
    # common set to nothing
    keep = dict(methods)
    while True:
        try:
            sel = select_sources(table, keep, english=english)
        except ValueError:
            sel = None
        if sel is not None and len(sel.targets) >= 5:
            break
        extra = [k for k in keep if k not in (reference.name, "english")]
        if not extra:
            break
        del keep[extra[-1]]
    if sel is None:
        from babelmap.engine.errors import BabelmapError
        raise BabelmapError(f"{label or table.path}: too few of its languages are in this run to evaluate "
                            "source selection")
    for k in methods:
        if k not in keep:
            sel.excluded[f"method {k}"] = "left out: covers too few of the table's languages"
    tdir.mkdir(parents=True, exist_ok=True)
    sel.save(tdir / "selection.json")
    sel.summary().to_csv(tdir / "summary.tsv", sep="\t", index=False)
    sel.per_target().to_csv(tdir / "per_target.tsv", sep="\t", index=False)
    rows = [{"method_a": reference.name, "method_b": other, **sel.compare(reference.name, other)}
            for other in sel.methods if other != reference.name]
    pd.DataFrame(rows, columns=["method_a", "method_b", "diff", "low", "high", "p", "n", "n_boot"]).to_csv(
        tdir / "compare.tsv", sep="\t", index=False)
    (tdir / "excluded.json").write_text(json.dumps(sel.excluded, indent=1))
    return sel
