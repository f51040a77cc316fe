"""`run(config) -> RunResult`: the stages of `babelmap run` in order, one results folder.

corpus -> store -> similarity -> [alignment-<m>] -> measures -> correlation -> [correlation-<m>]
-> clusters -> figures -> [transfer] -> [probe -> probe-selection] -> report. Each stage's typed result is passed on in memory; on a rerun a finished stage is
loaded from its own files (see `stages`).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from babelmap.pipeline.config import RunConfig, command_line, fingerprint
from babelmap.pipeline.stages import (Stage, StageLog, correlate_measures, families_from_genetic, language_names,
                                      load_measure, model_key, read_layer_choice, run_transfer, safe_name,
                                      save_measure)
from babelmap.pipeline.summary import RunSummary

log = logging.getLogger("babelmap.pipeline")

DEFAULT_LAYER = "correlation/default_layer.json"


@dataclass
class RunResult:
    """What a run produced: its `RunSummary` and the results folder; the artefacts open on
    demand (`similarity()` with the run's default layer, `correlations()`, `clustering()`,
    `selection()`)."""

    out: Path
    summary: RunSummary
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def report(self) -> Path:
        return self.out / "report.md"

    def similarity(self):
        """The run's SimilarityResult, `layer=None` meaning the run's default (best) layer."""
        if "sim" not in self._cache:
            self._cache["sim"] = open_similarity(self.out)
        return self._cache["sim"]

    def correlations(self) -> dict:
        from babelmap.analysis.correlation import load_correlations
        return load_correlations(self.out / "correlation" / "correlations.h5")

    def clustering(self):
        from babelmap.analysis.cluster import Clustering
        p = self.out / "clusters.h5"
        return Clustering.load(p) if p.exists() else None

    def selection(self):
        from babelmap.analysis.transfer import Selection
        p = self.out / "transfer" / "selection.json"
        return Selection.load(p) if p.exists() else None

    def measures(self) -> dict:
        mdir = self.out / "measures"
        return {n: load_measure(mdir, n) for n in self.summary.measures}


def open_similarity(out: str | Path):
    """`<out>/similarity.h5` of a results folder with the default layer the correlation stage
    chose (recorded in `correlation/default_layer.json`) applied in memory."""
    from babelmap.kernels.result import SimilarityResult
    out = Path(out)
    result = SimilarityResult.load(out / "similarity.h5")
    rec = out / DEFAULT_LAYER
    if rec.exists():
        layer, reason = read_layer_choice(rec)
        result.attrs.update(best_layer=layer, best_layer_measure=reason)
    return result


def _read_corpus(cfg: RunConfig):
    """The corpus of the config with its language and sentence selection, read the way every
    command reads one (`babelmap.corpus_options`)."""
    from babelmap.corpus_options import open_corpus, select_corpus
    corpus = open_corpus(cfg.corpus, cfg.format, split=cfg.split, skip_bad=cfg.skip_bad, languages=cfg.langs)
    return select_corpus(corpus, languages=cfg.langs, max_sentences=cfg.max_sentences,
                         min_languages=cfg.min_languages, sample=cfg.sample, seed=cfg.seed,
                         stratify=cfg.stratify)


def _as_dict(v) -> dict:
    """A dict attribute as saved in HDF5 (JSON text) or in memory."""
    return json.loads(v) if isinstance(v, (str, bytes)) else dict(v or {})


def measure_names(cfg: RunConfig) -> list[str]:
    names = list(cfg.measures)
    for extra in ("glottolog", "asjp"):
        if getattr(cfg, extra) and extra not in names:
            names.append(extra)
    return names


def _split_model_measures(cfg: RunConfig) -> RunConfig:
    """`--measures lex mexa` = `--measures lex --alignment mexa`; `--measures mexa` alone keeps the
    default linguistic measures to correlate it with."""
    import dataclasses

    from babelmap.pipeline import alignment as aln
    from babelmap.pipeline.config import DEFAULT_MEASURES
    model = [m for m in cfg.measures if aln.is_alignment_name(m)]
    if not model:
        return cfg
    linguistic = [m for m in cfg.measures if not aln.is_alignment_name(m)] or list(DEFAULT_MEASURES)
    alignment = list(cfg.alignment) + [m for m in model if m not in cfg.alignment]
    log.info("--measures %s: model alignment measures, computed beside cosine-mean and correlated with %s",
             " ".join(model), ", ".join(linguistic))
    return dataclasses.replace(cfg, measures=linguistic, alignment=alignment)


def run(cfg: RunConfig) -> RunResult:
    """Run (or resume) the whole job; returns the summary and the folder of artefacts."""
    from babelmap.analysis import cluster as clu
    from babelmap.analysis import correlation as cor
    from babelmap.analysis.linguistic import compute_measure
    from babelmap.engine.store import babelmap_version, open_store
    from babelmap.pipeline import alignment as aln
    from babelmap.pipeline import probe as prb
    from babelmap.pipeline.report import write_report

    # model measures named in --measures (mexa, retrieval@K) are computed as alignment measures
    # beside cosine-mean and correlated with the linguistic ones; with none of those left, the defaults
    cfg = _split_model_measures(cfg)
    # refuse what cannot run before any work: alignment names, --probe
    alignment = aln.check_alignment_names(cfg.alignment)
    if cfg.probe:
        prb.require_flores(cfg.format)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 8 + bool(cfg.transfer) + 2 * len(alignment) + 2 * bool(cfg.probe)
    st = StageLog(out, total, cfg.force, cfg.progress)
    notes: list[str] = []

    # 1. corpus (always read: its fingerprint keys everything else)
    st.n += 1
    t0 = time.perf_counter()
    corpus = _read_corpus(cfg)
    cfp = corpus.fingerprint()
    mask = corpus.mask
    st.say(f"[1/{total}] corpus {corpus.name}: {len(corpus.languages)} languages x {len(corpus.sentence_ids)} "
           f"sentences ({time.perf_counter() - t0:.1f} s)")
    st.timings["corpus"] = time.perf_counter() - t0
    corpus_info = {"name": corpus.name, "format": cfg.format, "path": cfg.corpus,
                   "languages": len(corpus.languages), "sentences": len(corpus.sentence_ids),
                   "present": int(mask.sum()), "coverage": float(mask.mean()) if mask.size else 0.0,
                   "fingerprint": cfp, "skipped": list(corpus.skipped)}
    (out / "corpus.json").write_text(json.dumps({**corpus_info, "language_ids": corpus.languages,
                                                 "meta": corpus.meta}, indent=1, default=str))
    labels = prb.topic_labels(cfg.corpus, getattr(corpus, "split", None) or "dev") if cfg.probe else None

    # 2. store
    store = out / "store.h5"
    fp_store = fingerprint("store", cfp, model_key(cfg.model))

    def _extract() -> Path:
        from babelmap.engine.extract import extract
        extract(corpus, store, cfg.model, device=cfg.device, progress=cfg.progress, skip_bad=cfg.skip_bad,
                overwrite=store.exists())
        return store
    st.run(Stage("store", fp_store, ["store.h5"], _extract, lambda: store))
    with open_store(store) as s:
        sattrs, n_layers = s.attrs, s.shape[1]
    model_info = {"name": sattrs.get("model", cfg.model or "default"), "pooling": sattrs.get("pooling"),
                  "prefix": sattrs.get("prefix", ""), "fingerprint": sattrs.get("model_fingerprint", ""),
                  "layers": n_layers}

    # 3. similarity
    simf = out / "similarity.h5"
    fp_sim = fingerprint("similarity", fp_store, cfg.bootstrap)

    def _similarity():
        from babelmap.kernels.similarity import compute_similarity
        r = compute_similarity(store, device=cfg.device, bootstrap=cfg.bootstrap, progress=cfg.progress)
        r.save(simf)
        r.export_tsv(out / "similarity")
        return r
    from babelmap.kernels.result import SimilarityResult
    result = st.run(Stage("similarity", fp_sim, ["similarity.h5"], _similarity, lambda: SimilarityResult.load(simf)))
    languages = list(result.languages)
    names = language_names(languages, corpus)
    iu = np.triu_indices(len(languages), 1)
    sim_info = {"bootstrap": cfg.bootstrap, "pairs_missing": int((result.count[iu] == 0).sum())}

    # 3b. alignment measures (MEXA, retrieval@K), each its own stage and result file beside
    # similarity.h5; the ones to (re)compute share one pass over the pairs (AlignmentPass)
    fp_al = {n: fingerprint("alignment", n, fp_store, cfg.bootstrap) for n in alignment}
    al_stages = {n: Stage(f"alignment-{n}", fp_al[n], [aln.alignment_file(n)], lambda: None,
                          lambda path=out / aln.alignment_file(n): SimilarityResult.load(path)) for n in alignment}
    shared_pass = aln.AlignmentPass(store, [n for n, sg in al_stages.items() if not st.finished(sg)],
                                    device=cfg.device, bootstrap=cfg.bootstrap, progress=cfg.progress)
    aligned = {}
    for name, sg in al_stages.items():
        sg.compute = lambda name=name: shared_pass.save(name, out / aln.alignment_file(name))
        aligned[name] = st.run(sg)

    # 4. measures, from the one registry (analysis.linguistic)
    mdir = out / "measures"
    mnames = measure_names(cfg)
    fp_meas = {name: fingerprint("measure", name, languages, cfp if name == "lex" else
                                 cfg.glottolog if name == "glottolog" else cfg.asjp if name == "asjp" else name)
               for name in mnames}
    fp_all_meas = fingerprint(sorted(fp_meas.items()))
    errors_path = mdir / "errors.json"
    inputs = {"corpus": corpus, "glottolog": cfg.glottolog, "asjp": cfg.asjp, "progress": cfg.progress}

    def _load_measures() -> tuple[dict, dict]:
        errors = json.loads(errors_path.read_text())
        return ({safe_name(n): load_measure(mdir, safe_name(n)) for n in mnames
                 if n not in errors and (mdir / f"{safe_name(n)}.tsv").exists()}, errors)

    def _measures() -> tuple[dict, dict]:
        from tqdm.auto import tqdm
        mdir.mkdir(exist_ok=True)
        errors, done = {}, {}
        for name in tqdm(mnames, desc="measures", unit="measure", disable=not cfg.progress):
            try:
                m = compute_measure(name, languages, **inputs)
                m.name = safe_name(name)
                save_measure(m, mdir, m.name)
                meas_stage.outputs += [f"measures/{m.name}.tsv", f"measures/{m.name}.missing.json"]
                done[m.name] = m
            except Exception as e:  # one failing measure must not sink the run; reported
                log.warning("measure %s failed: %s", name, e)
                errors[name] = f"{type(e).__name__}: {e}"
        errors_path.write_text(json.dumps(errors, indent=1))
        return done, errors
    meas_stage = Stage("measures", fp_all_meas, ["measures/errors.json"], _measures, _load_measures)
    measures, errors = st.run(meas_stage)          # outputs: errors.json and each measure written
    measures_info = {k: {"covered": int(sum(np.isfinite(m.values[i]).sum() > 1 for i in range(len(m)))),
                         "missing": list(m.missing)} for k, m in measures.items()}

    # 5. correlation; the default layer is recorded here, similarity.h5 is left as written
    cdir = out / "correlation"
    fp_cor = fingerprint("correlation", fp_sim, fp_all_meas, cfg.min_partners, cfg.bootstrap)

    def _correlation() -> dict:
        return correlate_measures(result, measures, cdir, out / DEFAULT_LAYER, min_partners=cfg.min_partners,
                                  bootstrap=cfg.bootstrap, progress=cfg.progress)
    corrs = st.run(Stage("correlation", fp_cor, ["correlation/summary.tsv", "correlation/correlations.h5",
                                                 DEFAULT_LAYER], _correlation,
                         lambda: cor.load_correlations(cdir / "correlations.h5")))
    best_layer, best_reason = read_layer_choice(out / DEFAULT_LAYER)

    # 5b. each alignment measure against the linguistic measures and cosine-mean
    fp_alc, align_info = {}, {}
    for name in alignment:
        adir = out / aln.alignment_dir(name)
        fp_alc[name] = fingerprint("alignment-correlation", fp_al[name], fp_sim, fp_all_meas, cfg.min_partners,
                                   cfg.bootstrap)
        st.run(Stage(f"correlation-{name}", fp_alc[name],
                     [f"{aln.alignment_dir(name)}/{f}" for f in ("correlations.h5", "vs_cosine.tsv", aln.LAYER_FILE)],
                     lambda name=name, adir=adir: aln.alignment_correlations(
                         aligned[name], result, measures, adir, min_partners=cfg.min_partners,
                         bootstrap=cfg.bootstrap),
                     lambda adir=adir: cor.load_correlations(adir / "correlations.h5")))
        b, why = aln.best_alignment_layer(adir)
        align_info[name] = {"file": aln.alignment_file(name), "folder": aln.alignment_dir(name),
                            "best_layer": b, "reason": why}
    result.attrs.update(best_layer=best_layer, best_layer_measure=best_reason)
    defined = {n: c for n, c in corrs.items() if np.isfinite(c.mean_pearson).any()}
    if corrs and not defined:
        why = sorted({d.reason for c in corrs.values() for d in c.dropped})
        notes.append(f"No measure gave a defined correlation: every language was left out ({'; '.join(why)}). "
                     f"A language needs at least --min-partners {cfg.min_partners} partners with both values "
                     f"(this run has {len(languages)} languages, so at most {len(languages) - 1} partners); "
                     "run more languages or lower --min-partners. The default layer is the last one, and "
                     "there are no correlation figures.")

    # 6. clusters
    fams, fam_source = None, None
    if cfg.glottolog:
        try:
            from babelmap.analysis.linguistic.glottolog import families
            fams, fam_source = families(languages, cfg.glottolog), "Glottolog (top-level families)"
        except Exception as e:
            log.warning("Glottolog families failed: %s", e)
    if fams is None and "genetic" in measures:
        gen = measures["genetic"]
        fams, fam_source = families_from_genetic(gen.subset([x for x in languages if x in gen]), names), \
            "URIEL genetic (connected families)"
    fp_clu = fingerprint("clusters", fp_cor, cfg.clusters, cfg.linkage, cfg.glottolog, fam_source)
    cl_path = out / "clusters.json"
    mat = result.matrix(best_layer)
    keep = [x for i, x in enumerate(mat.languages) if np.isfinite(mat.values[i]).sum() > 1]

    def _clusters() -> dict:
        c_mat = mat.subset(keep)
        n_fam = len({f for x, f in (fams or {}).items() if f and x in keep})
        k = cfg.clusters or max(2, min(len(keep) - 1, n_fam or int(round(np.sqrt(len(keep) / 2))) or 2))
        k = min(k, len(keep))
        c = clu.cluster(c_mat, k=k, method=cfg.linkage)
        c.info = {"layer": best_layer, "families_source": fam_source, "families": fams}
        ev = c.evaluate(fams) if fams else None
        c.to_pandas().assign(family=[(fams or {}).get(x) for x in c.languages]).to_csv(
            out / "clusters.tsv", sep="\t", index=False)
        if fams:
            clu.evaluate_cuts(c, fams).to_csv(out / "cluster_scores.tsv", sep="\t", index=False)
        np.save(out / "linkage.npy", c.Z)
        c.save(out / "clusters.h5")
        info = {"layer": best_layer, "method": cfg.linkage, "k": k,
                "members": {int(kk): v for kk, v in c.clusters().items()}, "languages": c.languages,
                "order": c.order, "evaluation": ev, "families_source": fam_source, "families": fams}
        cl_path.write_text(json.dumps(info, indent=1, default=str))
        return info
    if len(keep) >= 2:
        cl = st.run(Stage("clusters", fp_clu, ["clusters.json", "clusters.tsv", "clusters.h5", "linkage.npy"],
                          _clusters, lambda: json.loads(cl_path.read_text())))
    else:
        cl = None
        st.skip("clusters", "fewer than 2 languages with similarities")
        notes.append(f"No clusters: {len(keep)} language(s) have a similarity to another language.")

    # 7. figures
    fdir = out / "figures"
    figs = {"correlation": ["figures/correlation_by_layer.png", "figures/correlation_by_layer_spearman.png"],
            "best_layers": ["figures/best_layers.png"],
            "dendrogram": [f"figures/dendrogram_layer{best_layer}.png"],
            "heatmap": [f"figures/heatmap_layer{best_layer}.png"]}
    if not defined:
        figs.pop("correlation"), figs.pop("best_layers")
    if cl is None:
        figs.pop("dendrogram"), figs.pop("heatmap")
    fp_fig = fingerprint("figures", fp_clu, sorted(figs), 5)

    def _figures() -> dict:
        from tqdm.auto import tqdm

        from babelmap.analysis import plots
        from babelmap.analysis.cluster import Clustering
        fdir.mkdir(exist_ok=True)
        jobs = []
        if "correlation" in figs:
            jobs += [lambda: plots.plot_correlation_by_layer(defined, "pearson", out / figs["correlation"][0]),
                     lambda: plots.plot_correlation_by_layer(defined, "spearman", out / figs["correlation"][1]),
                     lambda: plots.plot_best_layers(defined, "pearson", out / figs["best_layers"][0])]
        if "dendrogram" in figs:
            c = Clustering.load(out / "clusters.h5")
            hm = result.matrix(best_layer).subset(c.languages)
            jobs += [lambda: plots.plot_dendrogram(c, cl.get("families"), out / figs["dendrogram"][0],
                                                   label_names=names if len(names) <= 200 else None),
                     lambda: plots.plot_heatmap(hm, c.order, cl.get("families"), out / figs["heatmap"][0])]
        for job in tqdm(jobs, desc="figures", unit="figure", disable=not cfg.progress):
            job()
        return figs
    if cfg.figures and figs:
        st.run(Stage("figures", fp_fig, [p for v in figs.values() for p in v], _figures, lambda: figs))
    else:
        st.skip("figures", "--no-figures" if not cfg.figures else "nothing to draw")
        figs = {}

    # 8. transfer (optional): source-language selection against a transfer-results table
    if cfg.transfer:
        tdir = out / "transfer"
        fp_tr = fingerprint("transfer", fp_cor, cfg.transfer, Path(cfg.transfer).stat().st_size)

        def _transfer():
            tdir.mkdir(exist_ok=True)
            return run_transfer(cfg.transfer, result.matrix(best_layer), measures, tdir)
        from babelmap.analysis.transfer import Selection
        st.run(Stage("transfer", fp_tr, ["transfer/selection.json", "transfer/summary.tsv", "transfer/compare.tsv"],
                     _transfer, lambda: Selection.load(tdir / "selection.json")))

    # 9. probe (FLORES): the topic-probe transfer grid, and source selection evaluated on it
    probe_info = None
    if cfg.probe:
        pdir = out / "probe"
        fp_probe = fingerprint("probe", fp_store, prb.labels_key(labels), prb.PROBE_SETTINGS)
        from babelmap.analysis.probe import ProbeGrid
        grid = st.run(Stage("probe", fp_probe, ["probe/grid.h5", "probe/by_layer.tsv"],
                            lambda: prb.compute_probe_grid(store, labels, pdir, cfg.progress),
                            lambda: ProbeGrid.load(pdir / "grid.h5")))
        fp_psel = fingerprint("probe-selection", fp_probe, fp_cor, sorted(fp_alc.items()))
        others = {}
        for name in alignment:
            m = aligned[name].matrix(align_info[name]["best_layer"])
            others[m.name] = m
        others.update(measures)
        from babelmap.analysis.transfer import Selection
        st.run(Stage("probe-selection", fp_psel, ["probe/selection.json", "probe/summary.tsv", "probe/compare.tsv"],
                     lambda: prb.probe_selection(grid, result.matrix(best_layer), others, pdir),
                     lambda: Selection.load(pdir / "selection.json")))
        probe_info = {"best_layer": grid.best_layer(), "layers": list(grid.layers), "settings": prb.PROBE_SETTINGS,
                      "labels": str(getattr(labels, "source", "")), "categories": list(grid.categories),
                      "sentences": int(grid.attrs.get("n_sentences", 0)), "articles": int(grid.attrs.get("articles", 0)),
                      "counts": _as_dict(grid.attrs.get("counts")), "reference": result.matrix(best_layer).name,
                      "english": prb.ENGLISH_ID in grid.languages}

    # report, from the artefacts alone
    st.n += 1
    summary = RunSummary(
        out=str(cfg.out), command=command_line(cfg), config=asdict(cfg),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), version=babelmap_version(),
        corpus=corpus_info, model=model_info, languages=languages, names=names, similarity=sim_info,
        measures=measures_info, measure_errors=errors, best_layer=best_layer, best_layer_reason=best_reason,
        clusters=None if cl is None else {k: cl.get(k) for k in ("layer", "method", "k", "evaluation",
                                                                  "families_source")},
        figures=figs, transfer=cfg.transfer, notes=notes, stages=dict(st.timings), alignment=align_info,
        probe=probe_info,
        summary=[c.summary() if np.isfinite(c.mean_pearson).any() else {"measure": n, "dropped": c.dropped_counts()}
                 for n, c in corrs.items()])
    summary.save()
    write_report(out)
    st.say(f"[{total}/{total}] report {out / 'report.md'}")
    return RunResult(out, summary)
