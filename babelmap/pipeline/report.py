"""The Markdown report of a `babelmap run` and the short summary printed to the terminal.

`write_report(out)` reads only the results folder: `summary.json` (RunSummary: what was run),
`correlation/correlations.h5` (the Correlation objects), `clusters.json`, `transfer/`. So a
report can be rewritten, or written for a folder copied elsewhere, without rerunning anything.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelmap.engine.diskwrite import write_text_safely
from babelmap.pipeline.summary import RunSummary

SUMMARY_HEADER = ["measure", "best layer", "pearson", "pearson 95% CI", "spearman", "mean of max",
                  "languages used", "dropped"]


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: floats rounded, NaN/None as an en dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def md_table(rows: Sequence[Sequence[Any]], header: Sequence[str], digits: int = 3) -> str:
    """A GitHub Markdown table."""
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(x, digits).replace("|", "\\|") for x in r) + " |")
    return "\n".join(out)


def df_table(df, digits: int = 3) -> str:
    """A pandas DataFrame as a Markdown table."""
    rows = [[v.item() if hasattr(v, "item") else v for v in r.tolist()] for _, r in df.iterrows()]
    return md_table(rows, [str(c) for c in df.columns], digits)


def summary_rows(corrs: dict) -> list[list]:
    """One row per measure (SUMMARY_HEADER) from the Correlation objects."""
    rows = []
    for name, c in corrs.items():
        n_drop = sum(c.dropped_counts().values())
        if np.isfinite(c.mean_pearson).any():
            b = c.best_layer()
            k = c.layers.index(b)
            ci = f"{c.ci['pearson_low'][k]:.3f}–{c.ci['pearson_high'][k]:.3f}" if "pearson_low" in c.ci else "–"
            rows.append([name, b, float(c.mean_pearson[k]), ci, float(np.nanmax(c.mean_spearman)),
                         c.mean_of_max(), int(c.n_used[k]), n_drop])
        else:
            rows.append([name, "–", float("nan"), "–", float("nan"), float("nan"), 0, n_drop])
    return rows


def dropped_rows(corrs: dict) -> list[list]:
    """(measure, reason, how many languages, which) per measure and reason."""
    rows = []
    for name, c in corrs.items():
        for reason, n in c.dropped_counts().items():
            which = sorted({d.language for d in c.dropped if d.reason == reason})
            rows.append([name, reason, n, ", ".join(which[:15]) + (f" +{len(which) - 15}" if len(which) > 15 else "")])
    return rows


def _load_correlations(out: Path) -> dict:
    p = out / "correlation" / "correlations.h5"
    if not p.exists():
        return {}
    from babelmap.analysis.correlation import load_correlations
    return load_correlations(p)


def selection_tail(tdir: Path) -> list[str]:
    """The paired-bootstrap table and what was left out, of a selection folder (compare.tsv,
    excluded.json written by pipeline.stages.evaluate_selection)."""
    import pandas as pd
    lines: list[str] = []
    cmp = pd.read_csv(tdir / "compare.tsv", sep="\t")
    if len(cmp):
        cmp["p"] = [f"< {1 / nb:.0e}" if p == 0 else f"{p:.3f}" for p, nb in zip(cmp["p"], cmp["n_boot"])]
        lines += ["Paired bootstrap over targets (difference in mean chosen score, 95% interval):", "",
                  df_table(cmp), ""]
    ex = json.loads((tdir / "excluded.json").read_text()) if (tdir / "excluded.json").exists() else {}
    if ex:
        lines += [f"Left out ({len(ex)}): " + "; ".join(f"{k}: {v}" for k, v in list(ex.items())[:40])
                  + (" ..." if len(ex) > 40 else ""), ""]
    return lines


def alignment_section(out: Path, s: RunSummary) -> list[str]:
    """## Model alignment measures: per measure (MEXA, retrieval@K) its agreement with the
    linguistic measures and, per layer, its mean, its correlation with cosine-mean over pairs
    and its mean Pearson r with each linguistic measure."""
    if not s.alignment:
        return []
    import pandas as pd
    from babelmap.analysis.correlation import load_correlations
    lines = ["## Model alignment measures", "",
             "Computed for every language pair and layer from the same store, in the similarity result "
             "format. *mexa*: share of shared sentences whose translation is the strict maximum of both its "
             "row and its column of the pair's sentence cosine matrix (MEXA, Kargaran et al. 2024); "
             "*retrieval@K*: share of sentences of the row language whose translation is among the K "
             "nearest of the column language (one direction). Each is correlated with the linguistic "
             "measures by the protocol above; *r vs cosine* = Pearson r with cosine-mean over language "
             "pairs at the same layer.", ""]
    for name, info in s.alignment.items():
        adir = out / info["folder"]
        if not (adir / "correlations.h5").exists():
            continue
        corrs = load_correlations(adir / "correlations.h5")
        vs = pd.read_csv(adir / "vs_cosine.tsv", sep="\t")
        lines += [f"### {name} (`{info['file']}`)", "",
                  f"**Best layer: {info['best_layer']}** ({info['reason']}).", ""]
        if corrs:
            lines += [md_table(summary_rows(corrs), SUMMARY_HEADER), ""]
        per = {n: dict(zip(c.layers, c.mean_pearson)) for n, c in corrs.items()}
        rows = [[int(r.layer), float(r.mean), float(r.pearson_vs_cosine), float(r.spearman_vs_cosine)]
                + [float(per[n].get(int(r.layer), float("nan"))) for n in per] for r in vs.itertuples()]
        lines += ["Per layer:", "", md_table(rows, ["layer", f"mean {name}", "r vs cosine", "rho vs cosine"]
                                            + [f"r {n}" for n in per]), ""]
    return lines


def probe_section(out: Path, s: RunSummary) -> list[str]:
    """## Topic probe: the grid's per-layer accuracies and source selection evaluated on it."""
    pdir = out / "probe"
    if not s.probe or not (pdir / "by_layer.tsv").exists():
        return []
    import pandas as pd
    p = s.probe
    st = p.get("settings", {})
    counts = p.get("counts") or {}
    lines = ["## Topic probe (FLORES topics)", "",
             f"A linear probe ({st.get('probe')}, alpha {st.get('alpha')}) on one source language's sentence "
             f"embeddings at a layer, tested on every target language's embeddings of other articles "
             f"(grouped {st.get('folds')}-fold over articles, answers pooled, seed {st.get('seed')}): "
             f"{p.get('sentences')} labelled sentences from {p.get('articles')} articles, "
             f"{len(p.get('categories', []))} categories ("
             + ", ".join(f"{c} {n}" for c, n in counts.items()) + f"); labels `{p.get('labels')}`. "
             "Grid: `probe/grid.h5` (`babelmap.analysis.probe.load_probe`)."
             + (f" No sentence of this run is in {', '.join(c for c, n in counts.items() if not n)} "
                "(a FLORES article is 2-10 consecutive sentences, so the first N sentences are few "
                "articles: more sentences cover more categories)." if any(not n for n in counts.values()) else ""), "",
             "Mean accuracy per layer (fraction of test sentences):", "",
             md_table([[int(r.layer), float(r.in_language), float(r.cross_lingual), float(r.from_english)]
                       for r in pd.read_csv(pdir / "by_layer.tsv", sep="\t").itertuples()],
                      ["layer", "in-language", "cross-lingual", "from English"]), ""]
    if (pdir / "summary.tsv").exists():
        lines += [f"### Source selection on the probe grid (layer {p['best_layer']})", "",
                  f"For each target language, each method picks the source language to train the probe on: "
                  f"`{p.get('reference')}` (cosine-mean at the run's default layer), the alignment measures at "
                  "their best layers, each linguistic measure"
                  + (", and English" if p.get("english") else " (English is not in this run: no English baseline)")
                  + ". *chosen* = mean accuracy (%) of the picked source over targets; *oracle* = of the best "
                  "source; *top@k*, *ndcg* as in source-language selection above. The grid's layer is the one "
                  "with the highest mean cross-lingual accuracy.", "",
                  df_table(pd.read_csv(pdir / "summary.tsv", sep="\t")), ""]
        lines += selection_tail(pdir)
    return lines


def write_report(out: str | os.PathLike) -> Path:
    """Write `<out>/report.md` from the folder's artefacts; returns its path."""
    out = Path(out)
    s = RunSummary.load(out)
    corrs = _load_correlations(out)
    c, m = s.corpus, s.model
    lines = [f"# babelmap report: {m['name']} on {c['name']}", ""]
    lines += [f"Generated by `{s.command}` (babelmap {s.version}), {s.created}.", ""]
    lines += ["## What was run", ""]
    lines += [f"- **Corpus**: `{c['name']}` ({c['format']}{', ' + str(c['path']) if c.get('path') else ''}): "
              f"{c['languages']} languages, {c['sentences']} sentences, {c['present']} present texts "
              f"({100 * c['coverage']:.1f}% of the grid). Fingerprint `{c['fingerprint'][:12]}`."]
    if c.get("skipped"):
        lines.append(f"- **Skipped while reading** ({len(c['skipped'])}): "
                     + "; ".join(f"{x.get('language') or x.get('file') or '?'}: {x.get('reason', x)}"
                                 if isinstance(x, dict) else str(x) for x in c["skipped"][:20]))
    lines += [f"- **Model**: `{m['name']}` (pooling {m.get('pooling', '?')}, prefix `{m.get('prefix', '')}`, "
              f"{m['layers']} hidden states: layer 0 = embedding output), fingerprint "
              f"`{str(m.get('fingerprint', ''))[:12]}`."]
    lines += [f"- **Similarity**: mean cosine over shared sentences, per layer; "
              f"{s.similarity.get('pairs_missing', 0)} language pairs share no sentence (NaN)."
              + (f" Bootstrap B={s.similarity['bootstrap']} (sentence blocks)." if s.similarity.get("bootstrap") else "")]
    lines += [f"- **Languages** ({len(s.languages)}): " + ", ".join(
        f"{x} ({s.names[x]})" if s.names.get(x) else x for x in s.languages)]
    lines += ["- **Measures**: " + (", ".join(f"{k} (covers {v['covered']}/{len(s.languages)})"
                                              for k, v in s.measures.items()) or "none")]
    if s.measure_errors:
        lines += ["- **Measures that could not be computed**: " + "; ".join(f"{k}: {v}" for k, v in s.measure_errors.items())]
    lines.append("")

    lines += ["## Agreement with linguistic measures", ""]
    lines += ["Per language, Pearson and Spearman correlation between its model similarities to all "
              "other languages and its measure similarities to them (partners with both values); "
              "then the unweighted mean over languages (the mPLM-Sim protocol). *Best layer* = "
              "layer with the highest mean; *mean of maxima* = mean over languages of each "
              "language's best correlation over layers.", ""]
    for note in s.notes:
        lines += [f"**Note.** {note}", ""]
    if corrs:
        lines += [md_table(summary_rows(corrs), SUMMARY_HEADER), ""]
    lines += [f"**Default layer: {s.best_layer}** ({s.best_layer_reason}). "
              f"`babelmap.load('{s.out}')` uses it when no layer is given.", ""]
    for fig in s.figures.get("correlation", []):
        lines += [f"![correlation by layer]({fig})", ""]
    if corrs:
        first = next(iter(corrs.values()))
        lines += ["Mean Pearson r per layer:", "",
                  md_table([[n] + [float(x) for x in cc.mean_pearson] for n, cc in corrs.items()],
                           ["measure"] + [str(k) for k in first.layers]), ""]
    for fig in s.figures.get("best_layers", []):
        lines += [f"![per-language best layers]({fig})", ""]

    lines += ["### Languages left out of the correlation", ""]
    dropped = dropped_rows(corrs)
    if dropped:
        lines += ["Counted per measure and reason (a language is left out of the mean where its "
                  "correlation is undefined; nothing is averaged away silently):", ""]
        lines += [md_table(dropped, ["measure", "reason", "languages", "which"]), ""]
    else:
        lines += ["None: every language entered every mean.", ""]

    cl_path = out / "clusters.json"
    if s.clusters and cl_path.exists():
        cl = json.loads(cl_path.read_text())
        lines += [f"## Clusters (layer {cl['layer']}, {cl['method']} linkage, k = {cl['k']})", ""]
        if cl.get("families_source"):
            ev = cl.get("evaluation") or {}
            lines += [f"Families from {cl['families_source']}: purity **{fmt(ev.get('purity'))}**, "
                      f"adjusted Rand index **{fmt(ev.get('ari'))}** over {ev.get('languages', 0)} languages "
                      f"in {ev.get('families', 0)} families"
                      + (f" ({len(ev.get('unlabelled', []))} without a family: "
                         f"{', '.join(ev.get('unlabelled', [])[:20])})" if ev.get("unlabelled") else "") + ".", ""]
        else:
            lines += ["No family labels (give `--glottolog FOLDER`, or include the URIEL genetic measure).", ""]
        lines += [md_table([[k, len(v), ", ".join(v)] for k, v in cl["members"].items()],
                           ["cluster", "size", "languages"]), ""]
        for fig in s.figures.get("dendrogram", []):
            lines += [f"![dendrogram]({fig})", ""]
        for fig in s.figures.get("heatmap", []):
            lines += [f"![heatmap]({fig})", ""]

    tdir = out / "transfer"
    if s.transfer and (tdir / "summary.tsv").exists():
        import pandas as pd
        lines += ["## Source-language selection", ""]
        lines += [f"For each target language of `{s.transfer}`, each method ranks the candidate source "
                  "languages (the table's sources, never the target itself nor another code of the same "
                  "language) by similarity; *chosen* = mean score of the top-ranked source, *gap* = mean "
                  "distance to the best source (oracle), *top@k* = share of targets whose best source is among "
                  "the first k, NDCG with relevance = score min-max scaled per target. All methods on the same "
                  "targets and pool.", ""]
        lines += [df_table(pd.read_csv(tdir / "summary.tsv", sep="\t")), ""]
        lines += selection_tail(tdir)
    lines += alignment_section(out, s)
    lines += probe_section(out, s)

    lines += ["## Files", ""]
    files = {"store": "store.h5", "similarity": "similarity.h5", "similarity TSVs": "similarity",
             "measures": "measures", "correlation tables": "correlation", "clusters": "clusters.tsv",
             "figures": "figures", "probe grid and selection": "probe", "run summary": "summary.json"}
    files.update({f"{n} result": i["file"] for n, i in s.alignment.items()})
    lines += [f"- {k}: `{v}`" for k, v in files.items() if (out / v).exists()]
    lines += ["", "Stages and timings: " + ", ".join(
        f"{k} {'reused' if t is None else f'{t:.1f} s'}" for k, t in s.stages.items()), ""]
    return write_text_safely(out / "report.md", "\n".join(lines), "report")


def terminal_summary(out: str | os.PathLike) -> str:
    """A few README-friendly lines for the terminal, from the results folder."""
    out = Path(out)
    s = RunSummary.load(out)
    corrs = _load_correlations(out)
    c, m = s.corpus, s.model
    lines = [f"babelmap run: {c['languages']} languages x {c['sentences']} sentences ({c['name']}), "
             f"model {m['name']}, {m['layers']} hidden states"]
    if corrs:
        lines.append("agreement with linguistic measures (mean over languages):")
        header = ["measure", "best layer", "pearson", "spearman", "mean of max", "used", "dropped"]
        rows = [[r[0], r[1], r[2], r[4], r[5], r[6], r[7]] for r in summary_rows(corrs)]
        widths = [max(len(str(h)), *(len(fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
        lines.append("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
        for r in rows:
            lines.append("  " + "  ".join(fmt(x).ljust(w) for x, w in zip(r, widths)))
    lines.append(f"default layer: {s.best_layer} ({s.best_layer_reason})")
    if s.clusters:
        ev = s.clusters.get("evaluation") or {}
        extra = (f", purity {fmt(ev.get('purity'))}, ARI {fmt(ev.get('ari'))} vs {s.clusters['families_source']}"
                 if s.clusters.get("families_source") else "")
        lines.append(f"clusters: k={s.clusters['k']} at layer {s.clusters['layer']}{extra}")
    for name, info in s.alignment.items():
        lines.append(f"{name}: best layer {info['best_layer']} (by mean Pearson r with the linguistic measures); "
                     f"{info['file']}")
    if s.probe and (out / "probe" / "summary.tsv").exists():
        import pandas as pd
        sm = pd.read_csv(out / "probe" / "summary.tsv", sep="\t")
        lines.append(f"topic probe, source selection at layer {s.probe['best_layer']} (mean accuracy % of the "
                     "picked source): " + ", ".join(f"{r.method} {r.chosen:.1f}" for r in sm.itertuples())
                     + f"; oracle {sm['oracle'].iloc[0]:.1f}")
    n_drop = sum(r[2] for r in dropped_rows(corrs))
    if n_drop:
        lines.append(f"left out of correlations: {n_drop} (language, measure) cases; see the report")
    lines += [f"note: {n}" for n in s.notes]
    lines.append(f"report: {out / 'report.md'}")
    return "\n".join(lines)
