"""The topic-probe transfer grid on the default model over all 204 FLORES-200 dev languages,
and source selection evaluated on it (issue 18, item 2). Two stages:

    python benchmarks/run_probe_flores200.py extract --out /tmp/probe/flores_probe.h5
    python benchmarks/run_probe_flores200.py analyse --out /tmp/probe/flores_probe.h5

`extract` embeds a category-balanced subset of whole articles (SIB-200-style categories,
analysis/topics.py; --per-category sentences per category, seed 0) in every language.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _common import RESULTS, SHARED_DATA, machine

FLORES = SHARED_DATA / "flores200"


def language_chunks(languages: list[str], n_chunks: int, seed: int = 0) -> list[list[str]]:
    """English first, then the rest in a seeded random order, cut into n_chunks: each finished
    chunk is a random sample of languages (so a run cut short is still an unbiased subset)."""
    import numpy as np
    rest = [l for l in languages if l != "eng_Latn"]
    order = ["eng_Latn"] + [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    return [list(c) for c in np.array_split(np.array(order, dtype=object), n_chunks)]


def extract(args) -> None:
    from babelmap.analysis.topics import read_flores_topics, sample_articles
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import extract as run_extract

    labels = read_flores_topics(FLORES)
    sids = sample_articles(labels, args.per_category, seed=args.seed)
    corpus = read_corpus(FLORES, "flores").select(sentence_ids=sids)
    chunks = language_chunks(corpus.languages, args.chunks, args.seed)
    print(f"{len(corpus.languages)} languages x {len(sids)} sentences "
          f"({args.per_category} per category, seed {args.seed}) in {len(chunks)} chunks", flush=True)
    t0 = time.time()
    for i, langs in enumerate(chunks):
        out = args.out.with_name(f"{args.out.stem}.c{i}{args.out.suffix}")
        if out.exists():
            continue
        run_extract(corpus.select(languages=langs), out, progress=True)
        print(f"chunk {i}: {len(langs)} languages done at {time.time() - t0:.0f} s; "
              f"load {os.getloadavg()}", flush=True)
    print(f"extract took {time.time() - t0:.0f} s", flush=True)


def merge_chunks(out: Path, merged: Path) -> list[str]:
    """Join the finished language chunks <out>.c<i>.h5 into one store (languages sorted);
    returns the chunk files used."""
    import numpy as np
    from babelmap.engine.store import open_store, write_store
    files = sorted(out.parent.glob(f"{out.stem}.c*{out.suffix}"))
    files = [f for f in files if not f.name.endswith(".tmp")]
    if not files:
        sys.exit(f"no finished chunk store {out.stem}.c<i>{out.suffix} in {out.parent}")
    stores = [open_store(f) for f in files]
    sids = stores[0].sentence_ids
    rows = {}
    for st in stores:
        if st.sentence_ids != sids:
            sys.exit(f"{st.path}: other sentences than {stores[0].path}")
        E, M, N = st.block(), st.mask, st.n_tokens
        for i, l in enumerate(st.languages):
            rows[l] = (E[i], M[i], N[i])
    langs = sorted(rows)
    attrs = {k: v for k, v in stores[0].attrs.items() if k not in ("format", "format_version", "dtype")}
    attrs["merged_from"] = json.dumps([str(f) for f in files])
    write_store(merged, langs, sids, np.stack([rows[l][0] for l in langs]),
                mask=np.stack([rows[l][1] for l in langs]), n_tokens=np.stack([rows[l][2] for l in langs]),
                dtype=str(stores[0].dtype), attrs=attrs)
    for st in stores:
        st.close()
    return [str(f) for f in files]


def linguistic_measures(langs: list[str]) -> dict:
    """Every linguistic measure available offline, over `langs`, each restricted to the
    languages it covers (an uncovered target would otherwise get an arbitrary first source).
    LEX is mPLM-Sim's released edit_flores200.tsv (all 997 dev sentences), which our LEX
    reproduces exactly (benchmarks/results/lex.json: max |diff| 0), read instead of recomputed."""
    from babelmap.analysis.linguistic import MEASURES, compute_measure
    inputs = {"glottolog": SHARED_DATA / "glottolog", "asjp": SHARED_DATA / "asjp",
              "path": SHARED_DATA / "mplm_sim_linguistic" / "edit_flores200.tsv"}
    out = {}
    for name in MEASURES:
        if name == "file":
            continue
        t0 = time.time()
        try:
            m = compute_measure("file" if name == "lex" else name, langs, **inputs)
        except Exception as e:  # a measure that cannot run offline is reported, not fatal
            print(f"  {name}: not available ({e})", flush=True)
            continue
        miss = set(m.missing)
        covered = [l for l in langs if l in m and l not in miss]
        m = m.subset(covered)
        m.name = name
        print(f"  {name}: {len(covered)}/{len(langs)} languages ({time.time() - t0:.0f} s)", flush=True)
        out[name] = m
    return out


def evaluate(grid, layer: int, methods: dict, n_boot: int, ref: str) -> dict:
    """Source selection on the grid at `layer`: every method on the languages all cover, and
    each method alone beside `ref` and English on the languages it covers; paired bootstrap
    over targets of chosen-source accuracy, `ref` minus the other method."""
    from babelmap.analysis.transfer import ENGLISH, select_sources
    table = grid.to_transfer_table(layer)
    out = {"layer": layer, "pairwise": {}}
    L = len(grid.languages)
    wide = {n: m for n, m in methods.items() if len(m.languages) >= 0.9 * L}   # the common set stays large
    sel = select_sources(table, dict(wide, english=ENGLISH), english="eng_Latn")
    out["common"] = {"summary": sel.summary().to_dict(orient="records"),
                     "compare": {m: sel.compare(ref, m, n_boot) for m in sel.methods if m != ref},
                     "targets": len(sel.targets), "excluded": len(sel.excluded),
                     "left_out_methods": sorted(set(methods) - set(wide))}
    for name, m in methods.items():
        if name == ref:
            continue
        s = select_sources(table, {ref: methods[ref], name: m, "english": ENGLISH}, english="eng_Latn")
        out["pairwise"][name] = {"summary": s.summary().to_dict(orient="records"),
                                 "compare": s.compare(ref, name, n_boot),
                                 "vs_english": s.compare(name, "english", n_boot),
                                 "targets": len(s.targets)}
    return out


def analyse(args) -> None:
    import numpy as np
    import torch
    from babelmap.analysis.probe import probe_grid
    from babelmap.analysis.topics import read_flores_topics
    from babelmap.kernels.similarity import compute_similarity

    torch.set_num_threads(args.threads)
    t_all = time.time()
    merged = args.out.with_name(f"{args.out.stem}.merged{args.out.suffix}")
    chunks = merge_chunks(args.out, merged)
    labels = read_flores_topics(FLORES)
    t0 = time.time()
    grid = probe_grid(merged, labels, seed=args.seed, folds=args.folds, probe=args.probe, alpha=args.alpha,
                      C=args.C, progress=True)
    t_grid = time.time() - t0
    grid.save(RESULTS / "probe_flores200_grid.h5")
    langs = grid.languages
    best = grid.best_layer()
    L = len(langs)
    off = ~np.eye(L, dtype=bool)
    print(f"grid: {L} languages x {len(grid.layers)} layers in {t_grid:.0f} s "
          f"({np.mean(grid.attrs['seconds_per_layer']):.1f} s/layer); best layer {best}", flush=True)
    print("layer  in-language  cross-lingual  from-English")
    e = langs.index("eng_Latn")
    per_layer = []
    for k, a in zip(grid.layers, grid.accuracy):
        row = {"layer": k, "in_language": float(np.nanmean(np.diag(a))), "cross": float(np.nanmean(a[off])),
               "from_english": float(np.nanmean(np.delete(a[e], e)))}
        per_layer.append(row)
        print(f"{k:5d}  {row['in_language']:.3f}        {row['cross']:.3f}          {row['from_english']:.3f}")
    t0 = time.time()
    sim = compute_similarity(merged, progress=False)
    t_sim = time.time() - t0
    print("linguistic measures:", flush=True)
    ling = linguistic_measures(langs)
    layers_eval = sorted({best, *args.layers})
    results, by_layer = {}, []
    for k in grid.layers:   # mPLM-Sim at layer k vs English on the grid at layer k (cheap)
        from babelmap.analysis.transfer import ENGLISH, select_sources
        s = select_sources(grid.to_transfer_table(k), {"mplm-sim": sim.matrix(k), "english": ENGLISH},
                           english="eng_Latn")
        c = s.compare("mplm-sim", "english", args.n_boot)
        sm = s.summary().set_index("method")
        by_layer.append({"layer": k, "mplm_sim": float(sm.loc["mplm-sim", "chosen"]),
                         "english": float(sm.loc["english", "chosen"]), "oracle": float(sm.loc["english", "oracle"]),
                         "diff": c["diff"], "low": c["low"], "high": c["high"], "p": c["p"]})
    print("\nper layer: mean accuracy (%) of the source each method picks, all targets; "
          "mplm-sim minus english [95% paired bootstrap]")
    for r in by_layer:
        print(f"  layer {r['layer']:2d}: mplm-sim {r['mplm_sim']:6.2f}  english {r['english']:6.2f}  "
              f"oracle {r['oracle']:6.2f}   {r['diff']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]")
    for k in layers_eval:
        methods = {"mplm-sim": sim.matrix(k)}
        if not args.no_mexa:
            t0 = time.time()
            mx = compute_similarity(merged, measure="mexa", layers=[k], progress=False)
            methods["mexa"] = mx.matrix(k)
            print(f"mexa at layer {k}: {time.time() - t0:.0f} s", flush=True)
        # mPLM-Sim on other sentences: the shipped result (first 100 dev sentences; 7 shared with the probe's)
        import babelmap
        shipped = babelmap.load("default/flores200")
        if k in shipped.layers:
            m = shipped.matrix(k)
            m.name = "mplm-sim-first100"
            methods["mplm-sim-first100"] = m
        methods.update(ling)
        results[k] = evaluate(grid, k, methods, args.n_boot, "mplm-sim")
        print(f"\nsource selection on the probe grid at layer {k} (chosen = mean accuracy % of the "
              f"top-ranked source over targets; diff = mplm-sim minus method, 95% paired bootstrap)")
        print(f"{'method':14s} {'targets':>7s} {'chosen':>7s} {'method':>7s} {'english':>7s} {'oracle':>7s} "
              f"{'top@1':>6s} {'ndcg':>6s}   mplm-sim minus method [95% CI]")
        for name, r in results[k]["pairwise"].items():
            sm = {x["method"]: x for x in r["summary"]}
            c = r["compare"]
            print(f"{name:14s} {r['targets']:7d} {sm['mplm-sim']['chosen']:7.2f} {sm[name]['chosen']:7.2f} "
                  f"{sm['english']['chosen']:7.2f} {sm[name]['oracle']:7.2f} {sm[name]['top@1']:6.3f} "
                  f"{sm[name]['ndcg']:6.3f}   {c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] p={c['p']:.3f}")
        cm = results[k]["common"]
        print(f"common set at layer {k}: {cm['targets']} targets, methods covering >= 90% of the languages "
              f"(left out: {', '.join(cm['left_out_methods']) or 'none'})")
        for x in cm["summary"]:
            c = cm["compare"].get(x["method"])
            ci = f"   mplm-sim minus it {c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c else ""
            print(f"  {x['method']:14s} chosen {x['chosen']:6.2f}  gap {x['gap']:5.2f}  top@3 {x['top@3']:.3f}  "
                  f"ndcg {x['ndcg']:.3f}{ci}")
    out = {"what": "topic-probe transfer grid (FLORES-200 dev, SIB-200-style categories) and source selection on it",
           "command": " ".join(sys.argv), "store_chunks": chunks, "languages": L,
           "sentences": int(grid.attrs["n_sentences"]),
           "grid_attrs": {k: v for k, v in grid.attrs.items() if k != "path"},
           "grid_seconds": t_grid, "similarity_seconds": t_sim, "best_layer": best,
           "per_layer": per_layer, "mplm_sim_vs_english_by_layer": by_layer,
           "selection": {str(k): v for k, v in results.items()},
           "n_boot": args.n_boot, "load_average": os.getloadavg(), "torch_threads": torch.get_num_threads(),
           "total_seconds": time.time() - t_all}
    out["machine"] = machine()
    path = RESULTS / "probe_flores200.json"
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path} and {RESULTS / 'probe_flores200_grid.h5'}")


def report(args) -> None:
    """Markdown tables of a recorded run (benchmarks/results/probe_flores200.json) for docs/probe.md."""
    r = json.loads(Path(args.json).read_text())
    g = r["grid_attrs"]
    print(f"{r['languages']} languages x {r['sentences']} sentences ({g['articles']} articles), "
          f"{g['folds']}-fold by article, probe {g['probe']}; grid {r['grid_seconds']:.0f} s "
          f"({sum(g['seconds_per_layer']) / len(g['seconds_per_layer']):.1f} s/layer), similarity "
          f"{r['similarity_seconds']:.0f} s, whole analysis {r['total_seconds']:.0f} s, load {r['load_average'][0]:.1f}\n")
    print("| layer | in-language | cross-lingual (mean off-diagonal) | from English | mPLM-Sim picks | English | oracle | mPLM-Sim - English [95% CI] |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for a, b in zip(r["per_layer"], r["mplm_sim_vs_english_by_layer"]):
        print(f"| {a['layer']} | {100 * a['in_language']:.1f} | {100 * a['cross']:.1f} | {100 * a['from_english']:.1f} | "
              f"{b['mplm_sim']:.1f} | {b['english']:.1f} | {b['oracle']:.1f} | {b['diff']:+.2f} [{b['low']:+.2f}, {b['high']:+.2f}] |")
    for k, sel in r["selection"].items():
        print(f"\nLayer {k}, each measure beside mPLM-Sim and English on the languages it covers "
              f"(chosen = mean accuracy % of the source ranked first; paired bootstrap over targets, {r['n_boot']} resamples):\n")
        print("| measure | targets | measure picks | mPLM-Sim picks | English | mPLM-Sim - measure [95% CI] | p | measure - English [95% CI] |")
        print("|---|---:|---:|---:|---:|---|---:|---|")
        for name, x in sel["pairwise"].items():
            sm = {y["method"]: y for y in x["summary"]}
            c, e = x["compare"], x["vs_english"]
            print(f"| {name} | {x['targets']} | {sm[name]['chosen']:.2f} | {sm['mplm-sim']['chosen']:.2f} | "
                  f"{sm['english']['chosen']:.2f} | {c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] | {c['p']:.3f} | "
                  f"{e['diff']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}] |")
        cm = sel["common"]
        print(f"\nLayer {k}, all methods on one common set ({cm['targets']} targets; left out for coverage: "
              f"{', '.join(cm['left_out_methods']) or 'none'}):\n")
        print("| method | chosen | oracle - chosen | top@3 | NDCG | mPLM-Sim - method [95% CI] |")
        print("|---|---:|---:|---:|---:|---|")
        for x in cm["summary"]:
            c = cm["compare"].get(x["method"])
            ci = f"{c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c else ""
            print(f"| {x['method']} | {x['chosen']:.2f} | {x['gap']:.2f} | {x['top@3']:.3f} | {x['ndcg']:.3f} | {ci} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--per-category", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--chunks", type=int, default=6, help="language chunks, each its own store <out>.c<i>.h5")
    e.add_argument("--minus", type=int, default=0,
                   help="leave out the subset that --per-category MINUS picks (extend a first store)")
    a = sub.add_parser("analyse")
    a.add_argument("--out", type=Path, required=True, help="the --out given to extract")
    a.add_argument("--seed", type=int, default=0, help="split seed")
    a.add_argument("--folds", type=int, default=5, help="grouped k-fold over articles (1: one 70/30 split)")
    a.add_argument("--probe", choices=("ridge", "logistic"), default="ridge")
    a.add_argument("--alpha", type=float, default=1000.0, help="ridge L2 strength")
    a.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the logistic probe")
    a.add_argument("--layers", type=int, nargs="*", default=[], help="also evaluate these layers in full")
    a.add_argument("--n-boot", type=int, default=10000)
    a.add_argument("--no-mexa", action="store_true")
    a.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded CPU)")
    r = sub.add_parser("report")
    r.add_argument("json", nargs="?", default=str(RESULTS / "probe_flores200.json"))
    args = ap.parse_args()
    {"extract": extract, "analyse": analyse, "report": report}[args.stage](args)


if __name__ == "__main__":
    main()
