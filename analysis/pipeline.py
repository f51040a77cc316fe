"""The main job (`babelmap run`): corpus -> store -> similarity -> measures -> correlation ->
clusters -> figures -> report, in one results folder.

Each stage has an input fingerprint (a hash of what it depends on: the corpus content, the
model, the previous stages' fingerprints, its own settings). `<out>/run-state.json` records,
per finished stage, its fingerprint and outputs; a second run skips a stage whose outputs are
all present and whose fingerprint is unchanged, so an interrupted or repeated run reuses what
is finished (extraction itself also resumes from its finished parts).

Layout of the results folder:

    store.h5                 all layers' pooled sentence embeddings (engine.extract)
    similarity.h5            SimilarityResult (best layer recorded in its attributes)
    similarity/              one square TSV per layer (reference release format)
    measures/<name>.tsv      each linguistic measure over the run's languages
    correlation/             summary.tsv, by_layer_{pearson,spearman}.tsv, per_language.tsv,
                             language_max.tsv, dropped.tsv
    clusters.tsv             cluster of each language at the default layer
    figures/                 PNG + PDF
    report.md                the report (embeds the figures)
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

URIEL = ("genetic", "geographic", "syntactic", "inventory", "phonological", "featural")
DEFAULT_MEASURES = URIEL + ("lex",)
STATE = "run-state.json"


@dataclass
class RunConfig:
    """Everything `babelmap run` can be told. Defaults = the embedded default run."""

    out: str = "results/default"
    corpus: str | None = None
    format: str = "cldr"
    model: str | None = None
    langs: list[str] | None = None
    max_sentences: int | None = None
    min_languages: int | None = None
    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    glottolog: str | None = None
    asjp: str | None = None
    device: str = "auto"
    bootstrap: int = 0
    min_partners: int = 5
    clusters: int | None = None
    linkage: str = "complete"
    skip_bad: bool = False
    progress: bool = True
    force: bool = False
    figures: bool = True
    transfer: str | None = None


def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:24]


class Stages:
    """Bookkeeping of finished stages in `<out>/run-state.json` (fingerprint + outputs)."""

    def __init__(self, out: Path, force: bool = False, progress: bool = True, total: int = 8):
        self.out = out
        self.path = out / STATE
        self.force = force
        self.progress = progress
        self.total = total
        self.n = 0
        self.timings: dict[str, float | None] = {}
        try:
            self.state = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            self.state = {}

    def done(self, name: str, fp: str) -> bool:
        s = self.state.get(name)
        return (not self.force and s is not None and s.get("fingerprint") == fp
                and all((self.out / o).exists() for o in s.get("outputs", [])))

    def run(self, name: str, fp: str, outputs: list[str], fn: Callable[[], Any]) -> bool:
        """Run `fn` unless finished with this fingerprint; returns True when it ran."""
        self.n += 1
        head = f"[{self.n}/{self.total}] {name}"
        if self.done(name, fp):
            self._say(f"{head}: reused (inputs unchanged)")
            self.timings[name] = None
            return False
        self._say(f"{head} ...")
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        self.timings[name] = dt
        self.state[name] = {"fingerprint": fp, "outputs": outputs, "seconds": round(dt, 2),
                            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self._save()
        self._say(f"{head}: done in {dt:.1f} s")
        return True

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path)

    def _say(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr, flush=True)
        log.info(msg)


# -- stage helpers ------------------------------------------------------------------------------
def load_corpus(cfg: RunConfig):
    """The corpus of the config, with its language/sentence selection."""
    from babelmap.engine.corpora import read_corpus
    corpus = read_corpus(cfg.corpus, cfg.format, skip_bad=cfg.skip_bad)
    if cfg.langs or cfg.max_sentences is not None or cfg.min_languages is not None:
        corpus = corpus.select(pattern=cfg.langs, first=cfg.max_sentences, min_languages=cfg.min_languages)
    return corpus


def model_key(model: str | None) -> dict:
    """What identifies the model for the fingerprint: the name, or a checkpoint's content hash."""
    if model is None or model in ("default", "multilingual-e5-small-q4"):
        return {"model": "default"}
    p = Path(model)
    if p.is_dir():
        from babelmap.engine.models.loading import fingerprint_dir
        return {"model": str(p.resolve()), "content": fingerprint_dir(p)}
    return {"model": str(model)}


def compute_measure(name: str, languages: list[str], corpus, cfg: RunConfig, progress: bool):
    """One linguistic measure over `languages` as a LanguageMatrix."""
    if name in URIEL:
        from babelmap.analysis.linguistic import uriel_matrix
        return uriel_matrix(name, languages)
    if name == "lex":
        from babelmap.kernels.lex import lex_matrix
        m = lex_matrix(corpus, progress=progress)
        return m.subset([l for l in languages if l in m]) if set(m.languages) != set(languages) else m
    if name == "glottolog":
        from babelmap.analysis.linguistic.glottolog import glottolog_matrix
        return glottolog_matrix(cfg.glottolog, languages)
    if name == "asjp":
        from babelmap.analysis.linguistic.asjp import asjp_matrix
        return asjp_matrix(cfg.asjp, languages, progress=progress)
    from babelmap.kernels.matrix import LanguageMatrix
    p = Path(name)
    if p.exists():
        try:
            from babelmap.analysis.linguistic import read_matrix
            return read_matrix(p)
        except ImportError:
            return LanguageMatrix.from_tsv(p)
    raise ValueError(f"unknown measure {name!r}: use {', '.join(DEFAULT_MEASURES)}, glottolog, asjp "
                     "or a path to a square TSV")


def measure_names(cfg: RunConfig) -> list[str]:
    names = list(cfg.measures)
    if cfg.glottolog and "glottolog" not in names:
        names.append("glottolog")
    if cfg.asjp and "asjp" not in names:
        names.append("asjp")
    return names


def _safe(name: str) -> str:
    """A file-name-safe measure name (a path gives its stem)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem) or "measure"


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
    n, lab = connected_components(csr_matrix(adj), directed=False)
    out: dict[str, str | None] = {}
    groups: dict[int, list[str]] = {}
    for i, l in enumerate(genetic.languages):
        if has[i]:
            groups.setdefault(int(lab[i]), []).append(l)
    for g, members in groups.items():
        nm = sorted({names.get(l) or l for l in members})
        label = ("URIEL family: " + ", ".join(nm[:2]) + (f" +{len(nm) - 2}" if len(nm) > 2 else "")
                 if len(members) > 1 else f"isolate here: {nm[0]}")
        for l in members:
            out[l] = label
    for l in genetic.languages:
        out.setdefault(l, None)
    return out


def _names(languages: list[str], corpus=None) -> dict[str, str]:
    out = {}
    for l in languages:
        nm = None
        if corpus is not None:
            nm = (corpus.meta.get(l) or {}).get("name")
        if not nm:
            try:
                from babelmap.engine.languages import language_name
                nm = language_name(l)
            except Exception:
                nm = None
        if nm:
            out[l] = nm
    return out


# -- the pipeline ---------------------------------------------------------------------------------
def run_pipeline(cfg: RunConfig) -> dict:
    """Run (or resume) the whole job; returns the info dict the report was written from."""
    from babelmap.analysis import cluster as clu
    from babelmap.analysis import correlation as cor
    from babelmap.analysis import report as rep
    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 9 if cfg.transfer else 8
    st = Stages(out, cfg.force, cfg.progress, total=total)
    info: dict[str, Any] = {"command": cfg_command(cfg), "config": asdict(cfg),
                            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        from babelmap.engine.store import babelmap_version
        info["version"] = babelmap_version()
    except Exception:  # pragma: no cover
        info["version"] = ""

    # 1. corpus (always read: its fingerprint keys everything else)
    st.n += 1
    t0 = time.perf_counter()
    corpus = load_corpus(cfg)
    cfp = corpus.fingerprint()
    mask = corpus.mask
    st._say(f"[1/{total}] corpus {corpus.name}: {len(corpus.languages)} languages x {len(corpus.sentence_ids)} "
            f"sentences ({time.perf_counter() - t0:.1f} s)")
    st.timings["corpus"] = time.perf_counter() - t0
    info["corpus"] = {"name": corpus.name, "format": cfg.format, "path": cfg.corpus,
                      "languages": len(corpus.languages), "sentences": len(corpus.sentence_ids),
                      "present": int(mask.sum()), "coverage": float(mask.mean()) if mask.size else 0.0,
                      "fingerprint": cfp, "skipped": list(corpus.skipped)}
    (out / "corpus.json").write_text(json.dumps({**info["corpus"], "language_ids": corpus.languages,
                                                 "meta": corpus.meta}, indent=1, default=str))

    # 2. store
    store = out / "store.h5"
    fp_store = _hash("store", cfp, model_key(cfg.model))

    def _extract():
        from babelmap.engine.extract import extract
        extract(corpus, store, cfg.model, device=cfg.device, progress=cfg.progress, skip_bad=cfg.skip_bad,
                overwrite=store.exists())
    st.run("store", fp_store, ["store.h5"], _extract)
    from babelmap.engine.store import open_store
    with open_store(store) as s:
        sattrs = s.attrs
        n_layers = s.shape[1]
    info["model"] = {"name": sattrs.get("model", cfg.model or "default"), "pooling": sattrs.get("pooling"),
                     "prefix": sattrs.get("prefix", ""), "fingerprint": sattrs.get("model_fingerprint", ""),
                     "layers": n_layers}

    # 3. similarity
    simf = out / "similarity.h5"
    fp_sim = _hash("similarity", fp_store, cfg.bootstrap)

    def _similarity():
        from babelmap.kernels.similarity import compute_similarity
        r = compute_similarity(store, device=cfg.device, bootstrap=cfg.bootstrap, progress=cfg.progress)
        r.save(simf)
        r.export_tsv(out / "similarity")
    st.run("similarity", fp_sim, ["similarity.h5"], _similarity)
    result = SimilarityResult.load(simf)
    languages = result.languages
    names = _names(languages, corpus)
    info["languages"], info["names"] = languages, names
    iu = np.triu_indices(len(languages), 1)
    info["similarity"] = {"bootstrap": cfg.bootstrap, "pairs_missing": int((result.count[iu] == 0).sum())}

    # 4. measures
    mdir = out / "measures"
    mnames = measure_names(cfg)
    fp_meas = {}
    for name in mnames:
        extra = cfp if name == "lex" else (cfg.glottolog if name == "glottolog" else
                                           cfg.asjp if name == "asjp" else name)
        fp_meas[name] = _hash("measure", name, languages, extra)
    fp_all_meas = _hash(sorted(fp_meas.items()))
    errors_path = mdir / "errors.json"

    def _measures():
        from tqdm.auto import tqdm
        mdir.mkdir(exist_ok=True)
        errors = {}
        for name in tqdm(mnames, desc="measures", unit="measure", disable=not cfg.progress):
            try:
                m = compute_measure(name, languages, corpus, cfg, cfg.progress)
                m.name = _safe(name)
                m.to_tsv(mdir / f"{_safe(name)}.tsv")
                (mdir / f"{_safe(name)}.missing.json").write_text(json.dumps(
                    {"missing": list(m.missing), "notes": {k: str(v) for k, v in (m.notes or {}).items()}}, indent=1))
            except Exception as e:  # one failing measure must not sink the run; reported
                log.warning("measure %s failed: %s", name, e)
                errors[name] = f"{type(e).__name__}: {e}"
        errors_path.write_text(json.dumps(errors, indent=1))
    st.run("measures", fp_all_meas, ["measures/errors.json"], _measures)
    errors = json.loads(errors_path.read_text())
    measures: dict[str, LanguageMatrix] = {}
    for name in mnames:
        f = mdir / f"{_safe(name)}.tsv"
        if name not in errors and f.exists():
            m = LanguageMatrix.from_tsv(f, name=_safe(name))
            measures[_safe(name)] = m
    info["measure_errors"] = errors
    info["measures"] = {k: {"covered": int(sum(np.isfinite(m.values[i]).sum() > 1 for i in range(len(m))))}
                        for k, m in measures.items()}

    # 5. correlation
    cdir = out / "correlation"
    fp_cor = _hash("correlation", fp_sim, fp_all_meas, cfg.min_partners, cfg.bootstrap)
    corr_state = cdir / "corr.json"

    def _correlation():
        from tqdm.auto import tqdm
        cdir.mkdir(exist_ok=True)
        corrs = {}
        boot = max(200, cfg.bootstrap) if cfg.bootstrap else 200
        for name in tqdm(list(measures), desc="correlation", unit="measure", disable=not cfg.progress):
            corrs[name] = cor.correlate(result, measures[name], min_partners=cfg.min_partners,
                                        bootstrap=boot, uncertainty="both" if result.stderr is not None
                                        else "languages")
        _write_correlation(cdir, corrs)
        best, reason = _overall_best_layer(corrs, result.layers)
        result.attrs.update(best_layer=int(best), best_layer_measure=reason)
        result.save(simf)
        corr_state.write_text(json.dumps({"best_layer": int(best), "reason": reason}))
        _pickle_corrs(cdir, corrs)
    st.run("correlation", fp_cor, ["correlation/summary.tsv", "correlation/corr.json",
                                   "correlation/corrs.npz"], _correlation)
    corrs = _unpickle_corrs(cdir)
    cstate = json.loads(corr_state.read_text())
    best_layer = int(cstate["best_layer"])
    info["best_layer"] = best_layer
    info["best_layer_reason"] = cstate["reason"]
    _summary_rows(info, corrs)

    # 6. clusters
    fams, fam_source = None, None
    if cfg.glottolog:
        try:
            from babelmap.analysis.linguistic.glottolog import families
            fams, fam_source = families(languages, cfg.glottolog), "Glottolog (top-level families)"
        except Exception as e:
            log.warning("Glottolog families failed: %s", e)
    if fams is None and "genetic" in measures:
        fams, fam_source = families_from_genetic(measures["genetic"].subset(
            [l for l in languages if l in measures["genetic"]]), names), "URIEL genetic (connected families)"
    fp_clu = _hash("clusters", fp_cor, cfg.clusters, cfg.linkage, cfg.glottolog, fam_source)
    cl_path = out / "clusters.json"

    def _clusters():
        mat = result.matrix(best_layer)
        keep = [l for i, l in enumerate(mat.languages) if np.isfinite(mat.values[i]).sum() > 1]
        mat = mat.subset(keep)
        n_fam = len({f for l, f in (fams or {}).items() if f and l in keep})
        k = cfg.clusters or max(2, min(len(keep) - 1, n_fam or int(round(np.sqrt(len(keep) / 2))) or 2))
        c = clu.cluster(mat, k=k, method=cfg.linkage)
        ev = c.evaluate(fams) if fams else None
        members = {int(kk): v for kk, v in c.clusters().items()}
        c.to_pandas().assign(family=[(fams or {}).get(l) for l in c.languages]).to_csv(
            out / "clusters.tsv", sep="\t", index=False)
        if fams:
            clu.evaluate_cuts(c, fams).to_csv(out / "cluster_scores.tsv", sep="\t", index=False)
        np.save(out / "linkage.npy", c.Z)
        cl_path.write_text(json.dumps({"layer": best_layer, "method": cfg.linkage, "k": k,
                                       "members": members, "languages": c.languages, "order": c.order,
                                       "evaluation": ev, "families_source": fam_source,
                                       "families": fams}, indent=1, default=str))
    st.run("clusters", fp_clu, ["clusters.json", "clusters.tsv", "linkage.npy"], _clusters)
    cl = json.loads(cl_path.read_text())
    info["clusters"] = cl

    # 7. figures
    fdir = out / "figures"
    fp_fig = _hash("figures", fp_clu, cfg.figures, 4)
    figs = {"correlation": [fdir / "correlation_by_layer.png", fdir / "correlation_by_layer_spearman.png"],
            "best_layers": [fdir / "best_layers.png"],
            "dendrogram": [fdir / f"dendrogram_layer{best_layer}.png"],
            "heatmap": [fdir / f"heatmap_layer{best_layer}.png"]}

    def _figures():
        from tqdm.auto import tqdm
        from babelmap.analysis import plots
        fdir.mkdir(exist_ok=True)
        Z = np.load(out / "linkage.npy")
        c = clu.Clustering(cl["languages"], Z, cl["method"], np.zeros((1, 1)), name=f"mplm-sim@{best_layer}")
        mat = result.matrix(best_layer).subset(cl["languages"])
        jobs = [("correlation", lambda: plots.plot_correlation_by_layer(corrs, "pearson", figs["correlation"][0])),
                ("correlation (spearman)",
                 lambda: plots.plot_correlation_by_layer(corrs, "spearman", figs["correlation"][1])),
                ("best layers", lambda: plots.plot_best_layers(corrs, "pearson", figs["best_layers"][0])),
                ("dendrogram", lambda: plots.plot_dendrogram(c, cl.get("families"), figs["dendrogram"][0],
                                                             label_names=names if len(names) <= 200 else None)),
                ("heatmap", lambda: plots.plot_heatmap(mat, c.order, cl.get("families"), figs["heatmap"][0]))]
        if not corrs:
            jobs = jobs[3:]
        for _, job in tqdm(jobs, desc="figures", unit="figure", disable=not cfg.progress):
            job()
    if cfg.figures:
        wanted = [p for key, v in figs.items() for p in v if corrs or key in ("dendrogram", "heatmap")]
        st.run("figures", fp_fig, [str(p.relative_to(out)) for p in wanted], _figures)
        info["figures"] = {k: [p for p in v if p.exists()] for k, v in figs.items()}
    else:
        st.n += 1
        info["figures"] = {}

    # 8. transfer (optional): source-language selection against a transfer-results table
    if cfg.transfer:
        tdir = out / "transfer"
        fp_tr = _hash("transfer", fp_cor, cfg.transfer, Path(cfg.transfer).stat().st_size)

        def _transfer():
            tdir.mkdir(exist_ok=True)
            run_transfer(cfg.transfer, result.matrix(best_layer), measures, tdir)
        st.run("transfer", fp_tr, ["transfer/summary.tsv", "transfer/compare.tsv"], _transfer)
        import pandas as pd
        info["transfer"] = {"path": cfg.transfer,
                            "summary": pd.read_csv(tdir / "summary.tsv", sep="\t"),
                            "compare": pd.read_csv(tdir / "compare.tsv", sep="\t"),
                            "excluded": json.loads((tdir / "excluded.json").read_text())}

    # report
    st.n += 1
    info["files"] = {"store": store, "similarity": simf, "similarity TSVs": out / "similarity",
                     "measures": mdir, "correlation tables": cdir, "clusters": out / "clusters.tsv",
                     "figures": fdir}
    info["stages"] = dict(st.timings)
    info["report"] = str(out / "report.md")
    info["out_arg"] = str(cfg.out)
    rep.write_report(out, info)
    st._say(f"[{total}/{total}] report {out / 'report.md'}")
    (out / "summary.json").write_text(json.dumps(
        {"best_layer": best_layer, "best_layer_reason": info["best_layer_reason"],
         "summary": [dict(zip(info.get("summary_header", []), r)) for r in info.get("summary_rows", [])],
         "clusters": {k: cl.get(k) for k in ("layer", "k", "evaluation", "families_source")}},
        indent=1, default=str))
    return info


def run_transfer(table_path: str, model_matrix, measures: dict, tdir: Path) -> None:
    """Source selection with the model's similarity (at the default layer), each measure and
    English, on a long-format transfer table; writes summary, per-target and paired
    comparisons (model vs each other method) into `tdir`."""
    import pandas as pd
    from babelmap.analysis.transfer import ENGLISH, read_transfer_table, select_sources
    table = read_transfer_table(table_path)
    methods: dict[str, Any] = {model_matrix.name: model_matrix}
    methods.update({k: m for k, m in measures.items()})
    if "en" in table.sources:
        methods["english"] = ENGLISH
    # every method must cover a target/source for it to count: drop methods that would leave
    # fewer than 5 targets, so one sparse measure does not shrink the common set to nothing
    keep = dict(methods)
    while True:
        try:
            sel = select_sources(table, keep)
        except ValueError:
            sel = None
        if sel is not None and len(sel.targets) >= 5:
            break
        extra = [k for k in keep if k not in (model_matrix.name, "english")]
        if not extra:
            break
        del keep[extra[-1]]
    if sel is None:
        raise ValueError(f"{table_path}: too few of its languages are in this run to evaluate source selection")
    sel.summary().to_csv(tdir / "summary.tsv", sep="\t", index=False)
    sel.per_target().to_csv(tdir / "per_target.tsv", sep="\t", index=False)
    rows = []
    for other in sel.methods:
        if other != model_matrix.name:
            c = sel.compare(model_matrix.name, other)
            rows.append({"method_a": model_matrix.name, "method_b": other, **c})
    pd.DataFrame(rows, columns=["method_a", "method_b", "diff", "low", "high", "p", "n", "n_boot"]).to_csv(
        tdir / "compare.tsv", sep="\t", index=False)
    excluded = dict(sel.excluded)
    for k in methods:
        if k not in keep:
            excluded[f"method {k}"] = "left out: covers too few of the table's languages"
    (tdir / "excluded.json").write_text(json.dumps(excluded, indent=1))


def cfg_command(cfg: RunConfig) -> str:
    """The `babelmap run` command line that reproduces this config."""
    d = RunConfig()
    parts = ["babelmap run"]
    for k, v in asdict(cfg).items():
        if v == getattr(d, k) or k in ("progress",):
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag)
        elif isinstance(v, list):
            parts.append(flag + " " + " ".join(map(str, v)))
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)


def _overall_best_layer(corrs: dict, layers: list[int]) -> tuple[int, str]:
    """The layer with the highest mean (over measures) of the mean Pearson correlation; the
    last layer when no measure gives a defined correlation."""
    rows = [c.mean_pearson for c in corrs.values() if np.isfinite(c.mean_pearson).any()]
    if not rows:
        return layers[-1], "last layer: no measure gave a defined correlation"
    avg = np.nanmean(np.vstack(rows), axis=0)
    k = int(np.nanargmax(avg))
    used = [n for n, c in corrs.items() if np.isfinite(c.mean_pearson).any()]
    return int(corrs[used[0]].layers[k]), f"highest mean Pearson r averaged over {', '.join(used)}"


def _write_correlation(cdir: Path, corrs: dict) -> None:
    import pandas as pd
    from babelmap.analysis.correlation import by_layer_table, summary_table
    summary_table(corrs).to_csv(cdir / "summary.tsv", sep="\t", index=False)
    by_layer_table(corrs, "pearson").to_csv(cdir / "by_layer_pearson.tsv", sep="\t")
    by_layer_table(corrs, "spearman").to_csv(cdir / "by_layer_spearman.tsv", sep="\t")
    tabs = [c.to_pandas() for c in corrs.values()]
    if tabs:
        pd.concat([t["by_layer"] for t in tabs]).to_csv(cdir / "by_layer_long.tsv", sep="\t", index=False)
        pd.concat([t["by_language"] for t in tabs]).to_csv(cdir / "per_language.tsv", sep="\t", index=False)
        pd.concat([t["language_max"] for t in tabs]).to_csv(cdir / "language_max.tsv", sep="\t", index=False)
        pd.concat([t["dropped"] for t in tabs]).to_csv(cdir / "dropped.tsv", sep="\t", index=False)


def _pickle_corrs(cdir: Path, corrs: dict) -> None:
    """Keep the Correlation objects for later stages (npz arrays + json metadata, no pickle)."""
    arrays, meta = {}, {}
    for i, (name, c) in enumerate(corrs.items()):
        arrays[f"p{i}"], arrays[f"s{i}"], arrays[f"n{i}"] = c.pearson, c.spearman, c.partners
        for k, v in c.ci.items():
            arrays[f"ci{i}_{k}"] = v
        meta[name] = {"i": i, "model": c.model, "layers": c.layers, "languages": c.languages,
                      "min_partners": c.min_partners, "uncertainty": c.uncertainty, "ci": list(c.ci),
                      "dropped": [asdict(d) for d in c.dropped]}
    np.savez(cdir / "corrs.npz", **arrays) if arrays else np.savez(cdir / "corrs.npz", empty=np.zeros(0))
    (cdir / "corrs.json").write_text(json.dumps(meta))


def _unpickle_corrs(cdir: Path) -> dict:
    from babelmap.analysis.correlation import Correlation, Dropped
    meta = json.loads((cdir / "corrs.json").read_text()) if (cdir / "corrs.json").exists() else {}
    out = {}
    with np.load(cdir / "corrs.npz") as z:
        for name, m in meta.items():
            i = m["i"]
            out[name] = Correlation(name, m["model"], m["layers"], m["languages"], z[f"p{i}"], z[f"s{i}"],
                                    z[f"n{i}"], [Dropped(**d) for d in m["dropped"]], m["min_partners"],
                                    {k: z[f"ci{i}_{k}"] for k in m["ci"]}, m["uncertainty"])
    return out


def _summary_rows(info: dict, corrs: dict) -> None:
    header = ["measure", "best layer", "pearson", "pearson 95% CI", "spearman", "mean of max",
              "languages used", "dropped"]
    rows, by_layer, dropped = [], [], []
    for name, c in corrs.items():
        n_drop = sum(c.dropped_counts().values())
        if np.isfinite(c.mean_pearson).any():
            b = c.best_layer()
            k = c.layers.index(b)
            ci = (f"{c.ci['pearson_low'][k]:.3f}–{c.ci['pearson_high'][k]:.3f}" if "pearson_low" in c.ci else "–")
            rows.append([name, b, float(c.mean_pearson[k]), ci, float(np.nanmax(c.mean_spearman)),
                         c.mean_of_max(), int(c.n_used[k]), n_drop])
        else:
            rows.append([name, "–", float("nan"), "–", float("nan"), float("nan"), 0, n_drop])
        by_layer.append([name] + [float(x) for x in c.mean_pearson])
        for reason, n in c.dropped_counts().items():
            which = sorted({d.language for d in c.dropped if d.reason == reason})
            dropped.append([name, reason, n, ", ".join(which[:15]) + (f" +{len(which) - 15}" if len(which) > 15 else "")])
    info["summary_header"], info["summary_rows"] = header, rows
    if corrs:
        first = next(iter(corrs.values()))
        info["by_layer_header"] = ["measure"] + [str(k) for k in first.layers]
        info["by_layer_rows"] = by_layer
    info["dropped"] = dropped
