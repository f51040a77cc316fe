"""The main job (`babelmap run`): corpus -> store -> similarity -> [alignment] -> measures ->
correlation -> clusters -> figures -> [transfer] -> [probe] -> report, in one results folder, as typed stages.

    from babelmap.pipeline import RunConfig, run
    res = run(RunConfig(corpus="flores200/dev", format="flores", langs=["deu_*", "eng_*"], out="r"))
    res.summary.best_layer, res.similarity().get("English", "German"), res.correlations()

Layout of the results folder (each file written by one stage, never rewritten by another):

    corpus.json              the corpus read (ids, counts, fingerprint, what was skipped)
    store.h5                 all layers' pooled sentence embeddings (engine.extract)
    similarity.h5            SimilarityResult, as computed
    similarity/              one square TSV per layer (reference release format)
    similarity-<m>.h5        each --alignment measure (mexa, retrieval@K), the same result format
    measures/<name>.tsv      each linguistic measure over the run's languages (+ <name>.missing.json)
    correlation/             correlations.h5 (Correlation objects), default_layer.json, summary.tsv,
                             by_layer_{pearson,spearman,long}.tsv, per_language.tsv, language_max.tsv,
                             dropped.tsv; <m>/ per alignment measure: correlations.h5, the same
                             TSVs, vs_cosine.tsv (per layer vs cosine-mean), best_layer.json
    clusters.h5              the Clustering; clusters.json, clusters.tsv, cluster_scores.tsv, linkage.npy
    figures/                 PNG + PDF
    transfer/                selection.json (Selection), summary.tsv, per_target.tsv, compare.tsv,
                             excluded.json (with --transfer)
    probe/                   grid.h5 (ProbeGrid), by_layer.tsv, and the selection files as in
                             transfer/ on the grid's best layer (with --probe; FLORES only)
    summary.json             RunSummary
    report.md                the report (embeds the figures), written from the files above
    run-state.json           per finished stage: fingerprint and outputs (reuse on rerun)
"""
from __future__ import annotations

from babelmap.pipeline.config import DEFAULT_MEASURES, RunConfig, command_line
from babelmap.pipeline.report import terminal_summary, write_report
from babelmap.pipeline.runner import RunResult, open_similarity, run
from babelmap.pipeline.summary import RunSummary

__all__ = ["DEFAULT_MEASURES", "RunConfig", "RunResult", "RunSummary", "command_line", "open_similarity",
           "run", "terminal_summary", "write_report"]
