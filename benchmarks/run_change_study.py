"""The representation-change study at 204 FLORES languages (issue 18, item 6).

Base default model vs the same model fine-tuned on the English topic task (plain fine-tuning,
no alignment loss; helper B's /work/ckpt/topic-eng-base/): per layer and language the change
(1 - CKA linear / debiased, 1 - matched cosine) over the held-out topic sentences, correlated
over languages with the URIEL distance to eng_Latn and with zero-shot topic accuracy (the item-2
probe grid's English row, and the fine-tuned model's own head on each language's held-out
sentences), bootstrap intervals over languages. Stages, each cached in --work (rerunnable):

    python benchmarks/run_change_study.py split          # held-out ids (checked vs topic-split.json)
    python benchmarks/run_change_study.py extract-base   # store of the base model
    python benchmarks/run_change_study.py extract-tuned  # store of the fine-tuned model
    python benchmarks/run_change_study.py compare        # change.h5 (babelmap.kernels.cka)
    python benchmarks/run_change_study.py correlate      # accuracies, distances, correlations
    python benchmarks/run_change_study.py all            # everything, in order
    python benchmarks/run_change_study.py report         # the tables of a recorded run (docs/cka.md)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _common import RESULTS, SHARED_DATA, machine

ROOT = Path(__file__).resolve().parents[1]
FLORES = SHARED_DATA / "flores200"
ENG = "eng_Latn"
PREFIX = "query: "
CKPT = Path("/work/ckpt/topic-eng-base")
SPLIT_JSON = Path("/work/ckpt/topic-split.json")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# split: the held-out sentences of the fine-tuning task
# --------------------------------------------------------------------------------------------
def held_out_split(flores: Path, start: int = 300, test_fraction: float = 0.3, seed: int = 0) -> dict:
    """The fine-tuning task's split, as the forgetting study makes it (run_forgetting.topic_split:
    labelled FLORES dev sentences after `start`, whole articles to one side per category).
    Returns {"train": ids, "test": ids, "label": {id: class}, "article": {id: url}, "categories": names}."""
    from run_forgetting import topic_split
    train, test, label, article, names = topic_split(flores, start, test_fraction, seed)
    return {"train": train, "test": test, "label": label, "article": article, "categories": names}


def split_ids(split_json: Path) -> tuple[list[str] | None, list[str] | None]:
    """(train, test) sentence ids from B's topic-split.json, whatever its exact key names."""
    d = json.loads(split_json.read_text())
    def find(*names):
        for n in names:
            if n in d:
                v = d[n]
                return [x if isinstance(x, str) else x.get("id", x.get("sentence_id")) for x in v] \
                    if isinstance(v, list) else list(v)
        return None
    return find("train", "train_ids"), find("test", "test_ids", "held_out", "heldout")


def stage_split(args) -> dict:
    sp = held_out_split(args.flores, args.start, args.test_fraction, args.seed)
    out = args.work / "split.json"
    check = "topic-split.json not there yet"
    if args.split_json.is_file():
        tr, te = split_ids(args.split_json)
        same = (te == sp["test"], tr is None or set(tr) <= set(sp["train"]))
        check = (f"{args.split_json}: test ids {'identical' if same[0] else 'DIFFERENT'} "
                 f"({len(te or [])} vs {len(sp['test'])}), train ids "
                 f"{'within ours' if same[1] else 'NOT within ours'}")
        if not same[0] and te:
            log(f"using B's test ids ({len(te)}) instead of the reproduced split")
            sp["test"] = [s for s in te if s in sp["label"]]
    sp["check"] = check
    out.write_text(json.dumps(sp))
    log(f"split: {len(sp['train'])} train, {len(sp['test'])} held-out sentences; {check}")
    return sp


def load_split(args) -> dict:
    p = args.work / "split.json"
    return json.loads(p.read_text()) if p.is_file() else stage_split(args)


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------
def study_corpus(args):
    """The FLORES dev corpus restricted to the held-out sentences (or a seeded sample of them)."""
    from babelmap.engine.corpora import read_corpus
    ids = load_split(args)["test"]
    if args.sample:
        import numpy as np
        pick = set(np.random.default_rng(args.seed).choice(len(ids), size=min(args.sample, len(ids)), replace=False))
        ids = [s for i, s in enumerate(ids) if (i in pick) != args.complement]
    corpus = read_corpus(args.flores / "dev", "flores").select(sentence_ids=ids)
    return corpus.select(languages=args.langs) if args.langs else corpus


def chunk_path(args, which: str, i: int) -> Path:
    return args.work / f"{which}.c{i}.h5"


def cut_store(sources: list[Path], dst: Path, corpus) -> Path:
    """A store of `corpus` (these languages, these sentences) cut and joined from extractions
    of the same model over other sentence sets: each sentence's rows from the first source
    that has it (the model is deterministic: a row does not depend on the other sentences),
    the selection's sentence ids and corpus fingerprint, the rest of the provenance kept."""
    import numpy as np
    from babelmap.engine.store import open_store, write_store
    stores = [open_store(s) for s in sources]
    try:
        where = {}
        for j, st in enumerate(stores):
            if st.languages != list(corpus.languages):
                sys.exit(f"{st.path}: other languages than the selection")
            for c, sid in enumerate(st.sentence_ids):
                where.setdefault(sid, (j, c))
        missing = [sid for sid in corpus.sentence_ids if sid not in where]
        if missing:
            sys.exit(f"{len(missing)} sentences (e.g. {missing[0]}) are in none of {[str(s) for s in sources]}")
        L, K, _, H = stores[0].shape
        S = len(corpus.sentence_ids)
        E = np.zeros((L, K, S, H), dtype=stores[0].dtype)
        mask = np.zeros((L, S), bool)
        ntok = np.zeros((L, S), dtype=stores[0].n_tokens.dtype)
        for j, st in enumerate(stores):
            take = [(t, where[sid][1]) for t, sid in enumerate(corpus.sentence_ids) if where[sid][0] == j]
            if take:
                dst_cols, src_cols = (list(x) for x in zip(*take))
                E[:, :, dst_cols] = st.block()[:, :, src_cols]
                mask[:, dst_cols] = st.mask[:, src_cols]
                ntok[:, dst_cols] = st.n_tokens[:, src_cols]
        attrs = {k: v for k, v in stores[0].attrs.items() if k not in ("format", "format_version", "dtype")}
        attrs.update(corpus_fingerprint=corpus.fingerprint(), cut_from=json.dumps([str(s) for s in sources]))
        return write_store(dst, stores[0].languages, list(corpus.sentence_ids), E, mask=mask, n_tokens=ntok,
                           dtype=str(stores[0].dtype), attrs=attrs)
    finally:
        for st in stores:
            st.close()


def stage_extract(args, which: str) -> list[Path]:
    """Both models are extracted in the same language chunks (English first, then a seeded
    random order: item 2's language_chunks), one store per chunk, so that a run cut short still
    compares an unbiased subset of languages and each chunk is a resumable unit."""
    import torch
    from babelmap.engine.extract import extract
    from run_probe_flores200 import language_chunks
    torch.set_num_threads(args.threads)
    corpus = study_corpus(args)
    model = None if which == "base" else str(args.ckpt)
    if model and not Path(model).is_dir():
        sys.exit(f"{model}: no fine-tuned checkpoint yet")
    chunks = language_chunks(corpus.languages, args.chunks, args.seed)
    log(f"extract {which}: {len(corpus.languages)} languages x {len(corpus.sentence_ids)} sentences in "
        f"{len(chunks)} chunks, model {model or 'default'}, mean pooling, prefix {PREFIX!r}, "
        f"{torch.get_num_threads()} thread(s)")
    from babelmap.engine.errors import StoreError
    done = []
    for i in (range(len(chunks)) if args.chunk_ids is None else args.chunk_ids):  # in the order given
        langs, out = chunks[i], chunk_path(args, which, i)
        sources = [r / out.name for r in (args.reuse or []) if (r / out.name).exists()]
        if not out.exists() and sources:
            cut_store(sources, out, corpus.select(languages=langs))
            log(f"{which} chunk {i}: cut from {', '.join(map(str, sources))}")
        if not out.exists():
            t0 = time.time()
            try:
                extract(corpus.select(languages=langs), out, model, pooling="mean", prefix=PREFIX, device="cpu",
                        progress=True)
            except StoreError as e:
                if "another run is writing" not in str(e):
                    raise
                log(f"chunk {i} is being extracted by another process: skipped here")
                continue
            dt = time.time() - t0
            Path(f"{out}.timing.json").write_text(json.dumps(
                {"seconds": dt, "sentences": len(corpus.sentence_ids) * len(langs), "load_average": os.getloadavg(),
                 "threads": torch.get_num_threads()}))
            log(f"extract {which} chunk {i}: {len(langs)} languages in {dt:.0f} s, load {os.getloadavg()[0]:.1f}")
        done.append(out)
    return done


# --------------------------------------------------------------------------------------------
# compare: change per chunk, joined
# --------------------------------------------------------------------------------------------
def stage_compare(args) -> Path:
    """babelmap compare (kernels.cka.compare_stores) on every chunk both models have, joined
    into <work>/change.h5; chunks not yet extracted for both are left out (and counted)."""
    from babelmap.kernels.cka import CKAResult, compare_stores
    parts, t0 = [], time.time()
    missing = []
    for i in range(args.chunks):
        b, t = chunk_path(args, "base", i), chunk_path(args, "tuned", i)
        if not (b.exists() and t.exists()):
            missing.append(i)
            continue
        out = args.work / f"change.c{i}.h5"
        if not out.exists():
            compare_stores(b, t, device="cpu", progress=False).save(out)
        parts.append(CKAResult.load(out))
    if not parts:
        sys.exit("no chunk extracted by both models yet")
    res = CKAResult.concat(parts)
    res.attrs["chunks_missing"] = json.dumps(missing)
    path = res.save(args.work / "change.h5")
    log(f"compare: {len(res.languages)} languages x {len(res.layers)} layers in {time.time() - t0:.0f} s "
        f"(chunks left out: {missing or 'none'}) -> {path}")
    return path


# --------------------------------------------------------------------------------------------
# correlate: accuracies, distances, correlations, figures, JSON
# --------------------------------------------------------------------------------------------
HEAD_CHANGES = ("cka_debiased", "cka_linear", "cosine")
DISTANCES = ("syntactic", "genetic", "geographic", "featural", "inventory", "phonological")


def head_in_category_order(ckpt: Path, categories: list[str]):
    """The fine-tuned model's head (weight [C, H], bias [C]) with rows in `categories` order
    (a category the head lacks gets bias -inf: never predicted), or None when not saved."""
    import numpy as np
    try:
        from babelmap.training.finetune import load_head
        W, b, names, pooling = load_head(ckpt)
    except Exception as e:  # no head in time: the study uses the grid only
        log(f"no usable head in {ckpt} ({e}); zero-shot accuracy from the probe grid only")
        return None
    Wf = np.zeros((len(categories), W.shape[1]))
    bf = np.full(len(categories), -np.inf)
    for j, name in enumerate(names):
        if name in categories:
            Wf[categories.index(name)], bf[categories.index(name)] = W[j], b[j]
    return Wf, bf, names, pooling


def check_head_against_model(args, sp: dict, head, n: int = 24) -> dict:
    """The head on the tuned store's English embeddings vs the fine-tuned classifier run
    directly on the same sentences: largest |logit difference| and prediction agreement."""
    import numpy as np
    import torch
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.store import open_store
    from babelmap.training.finetune import load_classifier
    model, tok, prefix = load_classifier(args.ckpt)
    with open_store(chunk_path(args, "tuned", 0)) as st:
        ids = st.sentence_ids[:n]
        E = np.asarray(st.embeddings(ENG, len(st.layers) - 1), dtype=np.float64)[:n]
    flores = read_corpus(args.flores / "dev", "flores").select(languages=[ENG])
    text = dict(zip(flores.sentence_ids, flores.text(ENG)))
    enc = tok([PREFIX + text[i] for i in ids], padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits.double().numpy()
    W, b, names, _ = head
    mine = E @ W.T + b
    order = [names.index(c) for c in sp["categories"] if c in names]
    ref = logits[:, order]
    mine = mine[:, [sp["categories"].index(c) for c in sp["categories"] if c in names]]
    return {"sentences": len(ids), "prefix_in_record": prefix, "max_abs_logit_diff": float(np.abs(mine - ref).max()),
            "prediction_agreement": float(np.mean(mine.argmax(1) == ref.argmax(1)))}


def spearman_boot(x, y, n_boot: int, seed: int = 0) -> dict:
    """Spearman rho, p and a percentile bootstrap interval over the paired items."""
    import numpy as np
    from scipy.stats import spearmanr
    from babelmap.analysis.correlation import pearson_last_axis, rank_last_axis
    x, y = np.asarray(x, float), np.asarray(y, float)
    rho, p = spearmanr(x, y)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    sb = pearson_last_axis(rank_last_axis(x[idx]), rank_last_axis(y[idx]))
    lo, hi = np.nanquantile(sb, [0.025, 0.975])
    return {"spearman": float(rho), "p": float(p), "low": float(lo), "high": float(hi), "n": int(len(x))}


def base_cosine_to_english(args, languages: list[str]) -> dict:
    """Per language, the base model's mean cosine with English over matched sentences, per
    layer ([K]): how far the base model places the language from the fine-tuning language."""
    import numpy as np
    from babelmap.engine.store import open_store
    with open_store(chunk_path(args, "base", 0)) as st:
        eng = np.asarray(st.block(languages=[ENG])[0], dtype=np.float64)  # [K, S, H]
        eng_ok = st.mask[st.index(ENG)].astype(bool)
    eng /= np.linalg.norm(eng, axis=-1, keepdims=True) + 1e-12
    out = {}
    for i in range(args.chunks):
        path = chunk_path(args, "base", i)
        if not path.exists():
            continue
        with open_store(path) as st:
            mask = st.mask
            for lang in st.languages:
                if lang not in languages:
                    continue
                X = np.asarray(st.block(languages=[lang])[0], dtype=np.float64)
                ok = mask[st.index(lang)].astype(bool) & eng_ok
                X /= np.linalg.norm(X, axis=-1, keepdims=True) + 1e-12
                out[lang] = np.einsum("ksh,ksh->ks", X[:, ok], eng[:, ok]).mean(axis=1)
    return out


def stage_correlate(args) -> dict:
    import numpy as np
    import pandas as pd
    from babelmap.analysis.change import (correlate_change, distance_row, head_accuracy, partial_correlate_change,
                                          plot_change_by_layer, plot_change_scatter, plot_correlation_by_layer, table)
    from babelmap.analysis.linguistic import compute_measure
    from babelmap.analysis.probe import ProbeGrid
    from babelmap.kernels.cka import CKAResult
    t_all = time.time()
    sp = load_split(args)
    res = CKAResult.load(args.work / "change.h5")
    langs = res.languages
    labels = {s: sp["label"][s] for s in sp["test"]}
    # zero-shot accuracy 1: the fine-tuned model's own head on its store's last layer
    head = head_in_category_order(args.ckpt, sp["categories"])
    acc_head: dict[str, float] = {}
    head_check = None
    if head is not None:
        for i in range(args.chunks):
            t = chunk_path(args, "tuned", i)
            if t.exists() and (args.work / f"change.c{i}.h5").exists():
                a, _ = head_accuracy(t, head[0], head[1], labels)
                acc_head.update(a)
        try:
            head_check = check_head_against_model(args, sp, head)
        except Exception as e:
            head_check = {"error": str(e)}
        log(f"head: accuracy {acc_head.get(ENG, float('nan')):.3f} in English, mean "
            f"{np.mean([v for l, v in acc_head.items() if l != ENG]):.3f} over {len(acc_head) - 1} others; "
            f"check against the model: {head_check}")
    # zero-shot accuracy 2: the item-2 probe grid's English row (probe trained on English)
    grid = ProbeGrid.load(args.grid)
    gk = grid.best_layer() if args.grid_layer is None else args.grid_layer
    e = grid.languages.index(ENG)
    acc_grid = {l: float(grid.accuracy[grid.layers.index(gk), e, j]) for j, l in enumerate(grid.languages)
                if l in langs}
    loss = {}
    if acc_head:
        loss["loss_head"] = {l: acc_head[ENG] - v for l, v in acc_head.items()}
    loss["loss_grid"] = {l: acc_grid[ENG] - v for l, v in acc_grid.items()}
    # distances from English
    mats = {name: compute_measure(name, langs) for name in DISTANCES}
    mats["lex"] = compute_measure("file", langs, path=args.lex)
    dist = {name: distance_row(m, ENG, langs) for name, m in mats.items()}
    base_cos = base_cosine_to_english(args, langs)
    dist["base_1-cos_eng"] = {l: 1.0 - float(v[-1]) for l, v in base_cos.items()}  # last layer, as the head reads
    # the transfer scores as a table `babelmap compare --transfer` reads (reproduce with the CLI)
    for name, acc in (("head", acc_head), ("grid", acc_grid)):
        if acc:
            pd.DataFrame({"source": ENG, "target": list(acc), "score": list(acc.values())}).to_csv(
                args.out.with_name(f"{args.out.stem}_transfer_{name}.tsv"), sep="\t", index=False)
    # correlations: every change variant x (distances + transfer losses), per layer
    corrs = {}
    for ch in HEAD_CHANGES:
        corrs[ch] = {name: correlate_change(res, vals, source=ENG, name=name, change=ch, bootstrap=args.bootstrap,
                                            seed=args.seed) for name, vals in {**dist, **loss}.items()}
    # partial: beyond the base model's own distance to English (and that distance beyond the loss)
    partial = {}
    base_d = dist["base_1-cos_eng"]
    for ch in ("cka_debiased", "cosine"):
        jobs = [(n, v, "base_1-cos_eng", base_d) for n, v in {**dist, **loss}.items()
                if n in ("syntactic", "genetic", "geographic", "lex", "loss_head", "loss_grid")]
        if "loss_head" in loss:
            jobs.append(("base_1-cos_eng", base_d, "loss_head", loss["loss_head"]))
        partial[ch] = {f"{n}|{cn}": partial_correlate_change(res, v, cv, source=ENG, name=n, control_name=cn,
                                                           change=ch, bootstrap=args.bootstrap, seed=args.seed)
                       for n, v, cn, cv in jobs}
    tab = pd.concat([table(c) for c in corrs.values()], ignore_index=True)
    tab.to_csv(args.out.with_name(args.out.stem + "_correlations.tsv"), sep="\t", index=False, float_format="%.5g")
    # per language and layer
    long = res.to_pandas()
    K = len(res.layers)
    long["base_cos_eng"] = [float(base_cos[l][r]) if l in base_cos else np.nan
                            for r in range(K) for l in langs]
    for name, vals in {"acc_head": acc_head, "acc_grid": acc_grid, **{f"dist_{k}": v for k, v in dist.items()}}.items():
        long[name] = long.language.map(vals)
    long.to_csv(args.out.with_name(args.out.stem + "_languages.tsv"), sep="\t", index=False, float_format="%.5g")
    # context: does the transfer loss itself grow with distance?
    context = {}
    for lname, lv in loss.items():
        for dname, dv in dist.items():
            common = [l for l in langs if l != ENG and l in lv and l in dv]
            context[f"{lname}~{dname}"] = spearman_boot([lv[l] for l in common], [dv[l] for l in common],
                                                        args.bootstrap, args.seed)
    # figures
    figs = []
    main = "cka_debiased"
    color, clabel = (acc_head, "zero-shot accuracy (fine-tuned head)") if acc_head else (acc_grid, "grid accuracy")
    figs += plot_change_by_layer(res, args.figures / "cka_204_change_by_layer", change=main, color_by=color,
                                 color_label=clabel, source=ENG,
                                 title=f"Change by layer, {len(langs)} FLORES languages (English fine-tuning)")
    shown = {k: corrs[main][k] for k in ("syntactic", "genetic", "geographic", "featural", "lex", "base_1-cos_eng", *loss)}
    figs += plot_correlation_by_layer(shown, args.figures / "cka_204_correlation_by_layer",
                                      title=f"Change (1 - debiased CKA) vs distance from English / transfer loss, "
                                            f"{len(langs) - 1} languages: filled = p < 0.05, band = 95% bootstrap")
    layer = res.layers[-1]
    panels = {"syntactic distance": dist["syntactic"], "genetic distance": dist["genetic"],
              "base model 1 - cos to English": dist["base_1-cos_eng"],
              **{f"transfer loss ({k.split('_')[1]})": v for k, v in loss.items()}}
    figs += plot_change_scatter(res, layer, panels, args.figures / "cka_204_scatter", change=main, source=ENG, label=6)
    # summary
    def row(c, k):
        return {f: float(getattr(c, f)[k]) for f in ("pearson", "pearson_p", "pearson_low", "pearson_high",
                                                     "spearman", "spearman_p", "spearman_low", "spearman_high")} \
            | {"n": int(c.n[k])}
    with np.errstate(all="ignore"):
        others = [i for i, l in enumerate(langs) if l != ENG]
        per_layer = [{"layer": k, "change_debiased_mean": float(np.nanmean(1 - res.cka_debiased[r, others])),
                      "change_linear_mean": float(np.nanmean(1 - res.cka_linear[r, others])),
                      "change_cosine_mean": float(np.nanmean(1 - res.cosine[r, others])),
                      "change_debiased_english": float(1 - res.cka_debiased[r, langs.index(ENG)])}
                     for r, k in enumerate(res.layers)]
    timings = {}  # every extraction this result is made of (here, or in the --reuse folders it was cut from)
    for folder in [args.work, *(args.reuse or [])]:
        for f in sorted(Path(folder).glob("*.c*.h5.timing.json")):
            timings[f"{folder}/{f.name[:-len('.timing.json')]}"] = json.loads(f.read_text())
    out = {"what": "representation change (CKA) of the default model fine-tuned on the English topic task, "
                   "over the FLORES dev held-out topic sentences, vs distance from English and zero-shot transfer loss",
           "command": " ".join(sys.argv), "checkpoint": str(args.ckpt), "languages": len(langs),
           "sentences": int(np.max(res.count)), "sample": {"n": args.sample, "seed": args.seed, "complement": args.complement,
                                                                  "reused": [str(r) for r in args.reuse or []]},
           "split": {"held_out": len(sp["test"]), "train": len(sp["train"]),
                                                         "check": sp.get("check")},
           "chunks_missing": json.loads(res.attrs.get("chunks_missing", "[]")),
           "grid": {"path": str(args.grid), "layer": gk, "english_in_language": acc_grid.get(ENG),
                    "mean_target": float(np.mean([v for l, v in acc_grid.items() if l != ENG]))},
           "head": None if not acc_head else {"english": acc_head[ENG], "check": head_check,
                                              "mean_target": float(np.mean([v for l, v in acc_head.items() if l != ENG])),
                                              "labels": head[2], "pooling": head[3]},
           "distance_coverage": {k: len(v) for k, v in dist.items()},
           "per_layer": per_layer,
           "correlations": {ch: {name: [row(c, k) | {"layer": c.layers[k]} for k in range(len(c.layers))]
                                 for name, c in cc.items()} for ch, cc in corrs.items()},
           "partial": {ch: {key: [{"layer": c.layers[k], "rho": float(c.rho[k]), "p": float(c.p[k]),
                                   "low": float(c.low[k]), "high": float(c.high[k]), "n": int(c.n[k])}
                                  for k in range(len(c.layers))] for key, c in pp.items()}
                       for ch, pp in partial.items()},
           "loss_vs_distance": context, "bootstrap": args.bootstrap, "extract_timings": timings,
           "figures": [str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in figs],
           "load_average": os.getloadavg(), "seconds": time.time() - t_all, "machine": machine()}
    args.out.write_text(json.dumps(out, indent=1, default=float))
    log(f"wrote {args.out} (+ _correlations.tsv, _languages.tsv), figures {len(figs)}")
    print_report(out)
    return out


def print_report(out: dict, changes=("cka_debiased", "cosine")) -> None:
    """Per layer, Spearman rho [95% CI] of change with each distance / loss."""
    head = "none" if not out["head"] else f"English accuracy {out['head']['english']:.3f}"
    print(f"\n{out['languages']} languages x {out['sentences']} sentences; head: {head}")
    for ch in changes:
        cc = out["correlations"][ch]
        names = list(cc)
        bonf = 0.05 / (len(names) * len(cc[names[0]]))
        print(f"\nSpearman rho of change (1 - {ch}) with ..., 95% bootstrap over languages "
              f"(* p < 0.05, ** p < {bonf:.1e} = 0.05 / {len(names) * len(cc[names[0]])} tests)")
        print("layer " + " ".join(f"{n[:24]:>24s}" for n in names))
        for k in range(len(cc[names[0]])):
            cells = []
            for n in names:
                r = cc[n][k]
                cells.append(f"{r['spearman']:+.2f} [{r['spearman_low']:+.2f},{r['spearman_high']:+.2f}]"
                             f"{'**' if r['spearman_p'] < bonf else '*' if r['spearman_p'] < 0.05 else ''}")
            print(f"{cc[names[0]][k]['layer']:5d} " + " ".join(f"{c:>24s}" for c in cells))
    for ch, pp in out.get("partial", {}).items():
        print(f"\npartial Spearman of change (1 - {ch}) with X given Y [95% CI] (* p < 0.05)")
        names = list(pp)
        print("layer " + " ".join(f"{n[:28]:>28s}" for n in names))
        for k in range(len(pp[names[0]])):
            print(f"{pp[names[0]][k]['layer']:5d} " + " ".join(
                f"{r['rho']:+.2f} [{r['low']:+.2f},{r['high']:+.2f}]{'*' if r['p'] < 0.05 else ' '}".rjust(28)
                for r in (pp[n][k] for n in names)))
    print("\ntransfer loss vs distance (Spearman [95% CI]):")
    for k, v in out["loss_vs_distance"].items():
        print(f"  {k:28s} {v['spearman']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}] p={v['p']:.2g} n={v['n']}")


DOC_COLUMNS = ("syntactic", "genetic", "geographic", "lex", "base_1-cos_eng", "loss_head", "loss_grid")


def markdown_report(out: dict, change: str = "cka_debiased", method: str = "spearman",
                    columns: tuple[str, ...] = DOC_COLUMNS) -> None:
    """The per-layer tables for docs/cka.md: mean change, and `method` r [95% CI] of change
    with each distance and transfer loss (bold where p < 0.05 / number of tests)."""
    cc = out["correlations"][change]
    K = len(next(iter(cc.values())))
    bonf = 0.05 / (len(cc) * K)  # every measure computed counts as a test
    names = [n for n in columns if n in cc]
    print("| layer | mean change (debiased) | mean 1 - cosine | English change | "
          + " | ".join(names) + " |")
    print("|---:|---:|---:|---:|" + "---|" * len(names))
    for k in range(K):
        pl = out["per_layer"][k]
        cells = []
        for n in names:
            r = cc[n][k]
            v = f"{r[method]:+.2f} [{r[method + '_low']:+.2f}, {r[method + '_high']:+.2f}]"
            cells.append(f"**{v}**" if r[method + "_p"] < bonf else v)
        print(f"| {pl['layer']} | {pl['change_debiased_mean']:.3f} | {pl['change_cosine_mean']:.4f} | "
              f"{pl['change_debiased_english']:.3f} | " + " | ".join(cells) + " |")
    print("\n(n per measure: " + ", ".join(f"{n} {cc[n][-1]['n']}" for n in names)
          + f"; bold: p < {bonf:.1e} = 0.05 / {len(cc) * K})")


def markdown_partial(out: dict, change: str = "cka_debiased", layers=(4, 8, 10, 12)) -> None:
    """Rows of the partial-correlation table for docs/cka.md: rho [95% CI] at `layers`."""
    for key, rows in out["partial"][change].items():
        name, control = key.split("|")
        by = {r["layer"]: r for r in rows}
        print(f"| {name} | {control} | " + " | ".join(
            f"{by[k]['rho']:+.2f} [{by[k]['low']:+.2f}, {by[k]['high']:+.2f}]" for k in layers) + " |")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("split", "extract-base", "extract-tuned", "compare", "correlate", "all", "report"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/babelmap-change"))
    ap.add_argument("--flores", type=Path, default=FLORES)
    ap.add_argument("--ckpt", type=Path, default=CKPT, help="the fine-tuned checkpoint folder")
    ap.add_argument("--split-json", type=Path, default=SPLIT_JSON)
    ap.add_argument("--start", type=int, default=300, help="topic sentences after this dev index")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=0, help="a seeded sample of N held-out sentences (0: all)")
    ap.add_argument("--complement", action="store_true", help="the held-out sentences NOT in --sample")
    ap.add_argument("--reuse", type=Path, nargs="+", default=None,
                    help="work folders of runs over other sentence sets of the same languages: a chunk they cover "
                         "together is cut and joined from their stores instead of extracted")
    ap.add_argument("--langs", nargs="+", help="only these languages (tests, trial runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunks", type=int, default=6, help="language chunks (one store each, per model)")
    ap.add_argument("--chunk-ids", type=int, nargs="+", default=None,
                    help="extract only these chunks, in this order (e.g. a second process: 5 4 3)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--grid", type=Path, default=RESULTS / "probe_flores200_grid.h5", help="item 2's probe grid")
    ap.add_argument("--grid-layer", type=int, default=None, help="grid layer (default: its best layer)")
    ap.add_argument("--lex", type=Path, default=SHARED_DATA / "mplm_sim_linguistic" / "edit_flores200.tsv")
    ap.add_argument("--out", type=Path, default=RESULTS / "change_study.json")
    ap.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    st = args.stage
    if st in ("split", "all"):
        stage_split(args)
    if st in ("extract-base", "all"):
        stage_extract(args, "base")
    if st in ("extract-tuned", "all"):
        stage_extract(args, "tuned")
    if st in ("compare", "all"):
        stage_compare(args)
    if st in ("correlate", "all"):
        stage_correlate(args)
    if st == "report":
        out = json.loads(args.out.read_text())
        print_report(out)
        for ch in HEAD_CHANGES:
            print(f"\n### change = 1 - {ch}\n")
            markdown_report(out, ch)
            if ch in out.get("partial", {}):
                print(f"\npartial Spearman given the control, change = 1 - {ch}:\n")
                markdown_partial(out, ch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
