"""The forgetting study (issue 18 item 5; docs/wordalign.md, "Forgetting").

Four checkpoints of the default model (multilingual-e5-small-q4): base; adjusted on
English-German FLORES dev pairs; adjusted + fine-tuned on the English topic task; adjusted +
continual (the same fine-tuning with the alignment loss on the English-German pairs kept in the
task loop). For each: aligned-word distances and word retrieval per layer on held-out
English-German and English-French sentences, and zero-shot topic accuracy in German, French and
a distant language. Every stage is cached in --work (re-running skips finished stages).

    nice -n 5 .venv/bin/python benchmarks/run_forgetting.py --work /tmp/babelmap-forgetting

Prints a table, writes benchmarks/results/forgetting.json and docs/figures/forgetting_*.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FLORES = ROOT.parent / "shared" / "data" / "flores200"
ENG, DEU, FRA = "eng_Latn", "deu_Latn", "fra_Latn"
PREFIX = "query: "
CHECKPOINTS = ("base", "adjusted", "finetuned", "continual")
TRAINED = ("finetuned", "continual", "basetuned")  # basetuned: the base model fine-tuned (no adjustment)
ALL = CHECKPOINTS + ("basetuned",)
RECORD_NAME = "babelmap_finetune.json"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def topic_split(flores: Path, start: int, test_fraction: float, seed: int):
    """Labelled FLORES dev sentences from index `start` on (the adjustment pairs come before),
    split by article: (train ids, test ids, label of id, article of id, category names)."""
    from babelmap.analysis.probe import split_by_article
    from babelmap.analysis.topics import CATEGORIES, read_flores_topics
    lab = read_flores_topics(flores / "metadata_dev.tsv").labelled()
    keep = [i for i, s in enumerate(lab.sentence_ids) if int(s.split(":")[1]) > start]
    ids = [lab.sentence_ids[i] for i in keep]
    arts = [lab.articles[i] for i in keep]
    y = [CATEGORIES.index(lab.categories[i]) for i in keep]
    tr, te = split_by_article(arts, y, test_fraction=test_fraction, seed=seed)
    label = dict(zip(ids, y))
    article = dict(zip(ids, arts))
    return [s for s, t in zip(ids, tr) if t], [s for s, t in zip(ids, te) if t], label, article, list(CATEGORIES)


def train_alignment(corpus, work: Path, layer: int):
    """The base model's mutual-argmax links at `layer` on the adjustment pairs (cached)."""
    from babelmap.engine.alignments import read_pharaoh
    from babelmap.engine.words import extract_words, open_words
    from babelmap.kernels.align import align_store
    path = work / "train-eng-deu.align"
    if not path.exists():
        ws_path = extract_words(corpus, work / "words-train-base.h5", None, prefix=PREFIX)
        with open_words(ws_path) as ws:
            align_store(ws, ENG, DEU, layer=layer).save(path)
    return read_pharaoh(path, keep_one_to_one=False)


def encode_checkpoint(model_dir: str | None, texts: dict[str, list[str]], word_langs: set[str],
                      batch_size: int = 16) -> tuple[dict, dict]:
    """One forward pass per batch (prefix `query: `) gives, per language: the mean-pooled
    last-layer sentence embeddings [n, H], the classification head's predictions (a checkpoint
    from `finetune` only: its mean-pooled linear head, as ids in `analysis.topics.CATEGORIES` order) and, for `word_langs`, every word's embedding at every hidden state
    (sub-word mean, unicode segmentation: what `babelmap words` stores).
    Returns (features {"X_<lang>", "pred_<lang>"}, words {lang: (offsets, tokens, emb [K,N,H], valid)})."""
    import torch
    from tqdm.auto import tqdm

    from babelmap.analysis.forgetting import masked_mean
    from babelmap.engine.models import load_model
    from babelmap.engine.words import pooling_matrix, segment
    from babelmap.training.finetune import RECORD, load_classifier
    head = model_dir is not None and (Path(model_dir) / RECORD).exists()
    if head:
        from babelmap.analysis.topics import CATEGORIES
        from babelmap.training.finetune import label_names
        clf, tok, _ = load_classifier(model_dir)
        # the head's classes are the checkpoint's sorted label names; the study counts in CATEGORIES order
        to_study = np.array([CATEGORIES.index(n) for n in label_names(model_dir)])
        net = clf.encoder
        head_w = clf.head.weight.detach().double().numpy()
        head_b = clf.head.bias.detach().double().numpy()
    else:
        lm = load_model(model_dir, device="cpu", prefix=PREFIX)
        tok, net = lm.tokenizer, lm.model.eval()
    feats, words = {}, {}
    for lang, tx in texts.items():
        X, P, offs, toks, embs, valid = [], [], [0], [], [], []
        for a in tqdm(range(0, len(tx), batch_size), desc=f"encode {lang}", leave=False):
            chunk = tx[a:a + batch_size]
            enc = tok([PREFIX + t for t in chunk], padding=True, truncation=True, max_length=256,
                      return_offsets_mapping=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").tolist()
            with torch.inference_mode():
                out = net(**enc, output_hidden_states=True)
            hs = torch.stack(out.hidden_states, 1).float().numpy()          # [B, K, T, H]
            X.append(masked_mean(hs[:, -1], enc["attention_mask"].numpy()))
            if head:  # the checkpoint's own linear head on the mean-pooled last layer
                P.append(to_study[np.argmax(X[-1] @ head_w.T + head_b, axis=1)])
            if lang in word_langs:
                for b, t in enumerate(chunk):
                    spans = segment(t, "unicode")
                    W, v = pooling_matrix(spans, offsets[b], len(PREFIX), "mean", PREFIX + t)
                    embs.append(np.einsum("nt,kth->knh", W, hs[b]))
                    toks += [t[i:j] for i, j in spans]
                    valid.append(v)
                    offs.append(offs[-1] + len(spans))
        feats[f"X_{lang}"] = np.concatenate(X)
        if head:
            feats[f"pred_{lang}"] = np.concatenate(P)
        if lang in word_langs:
            words[lang] = (np.array(offs), toks, np.concatenate(embs, axis=1), np.concatenate(valid))
    return feats, words


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", nargs="?", default="all", choices=("all", "train", "eval", "probe", "report"),
                    help="train: the three trained checkpoints; eval: measures of --checkpoints; "
                         "report: table, JSON, figures (all: everything, in order)")
    ap.add_argument("--checkpoints", nargs="+", default=list(CHECKPOINTS), choices=ALL)
    ap.add_argument("--work", type=Path, default=Path("/tmp/babelmap-forgetting"))
    ap.add_argument("--flores", type=Path, default=FLORES)
    ap.add_argument("--train-pairs", type=int, default=300, help="adjustment pairs: dev sentences 1..N")
    ap.add_argument("--adjust-steps", type=int, default=12, help="adjustment steps of 8 pairs")
    ap.add_argument("--layer", type=int, default=8, help="layer of the base model's links")
    ap.add_argument("--adjust-lr", type=float, default=2e-4)
    ap.add_argument("--ft-sentences", type=int, default=128, help="English train sentences (seeded sample)")
    ap.add_argument("--probe-sentences", type=int, default=192, help="English train sentences embedded for the probe")
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--ft-lr", type=float, default=3e-5, help="encoder learning rate")
    ap.add_argument("--ft-head-lr", type=float, default=2e-3, help="learning rate of the mean-pooled linear head")
    ap.add_argument("--ft-seed", type=int, default=0,
                    help="fine-tuning seed (data order, head init, dropout); the split and adjustment keep --seed. "
                         "Checkpoints of seed S > 0 are named finetuned-sS, continual-sS, basetuned-sS")
    ap.add_argument("--ft-batch", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=1.0, help="weight of the alignment loss in the continual run")
    ap.add_argument("--align-batch", type=int, default=4, help="aligned pairs per continual step")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--distant", default="jpn_Jpan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("adjusted",) + TRAINED, default=None,
                    help="train: only this checkpoint (e.g. finetuned and continual in two processes); "
                         "basetuned (the base model fine-tuned) is trained only when asked")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="report: the fine-tuning seeds to gather (default: --ft-seed); means with t intervals")
    ap.add_argument("--export", type=Path, default=None,
                    help="train --only basetuned: copy the checkpoint there and write topic-split.json beside it")
    ap.add_argument("--wait", action="store_true", help="eval: wait for a checkpoint still being trained")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forgetting.json")
    ap.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    return ap


class Study:
    """The corpus, the splits and the paths every stage shares."""

    def __init__(self, args):
        from babelmap.engine.corpora import read_corpus
        self.args, self.work = args, args.work
        self.work.mkdir(parents=True, exist_ok=True)
        self.flores = read_corpus(args.flores / "dev", "flores")
        self.adj_corpus = self.flores.select(languages=[ENG, DEU], sentence_ids=self.flores.sentence_ids[:args.train_pairs])
        tr, self.te_ids, self.label, self.article, self.names = topic_split(args.flores, args.train_pairs,
                                                                            args.test_fraction, args.seed)
        # one seeded draw of train-article sentences: the first --probe-sentences embedded for the
        # probe, the first --ft-sentences of the same draw (a subset) for fine-tuning and the probe
        draw = np.random.default_rng(args.seed).choice(len(tr), size=min(args.probe_sentences, len(tr)), replace=False)
        self.probe_ids = [tr[i] for i in sorted(draw)]
        self.tr_ids = [tr[i] for i in sorted(draw[:args.ft_sentences])]
        self.folder = {n: run_name(n, args.ft_seed, args.alpha) for n in ALL}   # checkpoint -> folder/cache name
        self.dirs = {n: None if n == "base" else str(self.work / self.folder[n]) for n in ALL}
        self.langs = [ENG, DEU, FRA, args.distant]

    def text(self, lang: str) -> dict[str, str]:
        return dict(zip(self.flores.sentence_ids, self.flores.text(lang)))


def train(st: Study, timing: dict) -> None:
    """adjusted, finetuned, continual (each skipped when its checkpoint exists); basetuned
    (the base model, same fine-tuning) only with --only basetuned."""
    from babelmap.training.finetune import finetune
    args, work = st.args, st.work
    eng = st.text(ENG)
    # finetune() prepends the prefix (`query: `) itself
    train_tsv = work / "topics-eng-train.tsv"
    train_tsv.write_text("".join(f"{eng[s]}\t{st.names[st.label[s]]}\n" for s in st.tr_ids), encoding="utf-8")
    kw = dict(epochs=args.ft_epochs, lr=args.ft_lr, head_lr=args.ft_head_lr, pooling="mean", prefix=PREFIX,
              batch_size=args.ft_batch, seed=args.ft_seed, device="cpu", max_length=256, freeze_embeddings=True,
              overwrite=True)

    def tune(name: str, base, **extra) -> None:
        out = Path(st.dirs[name])
        if (out / "config.json").exists():
            return
        t = time.time()
        log(f"fine-tuning {st.folder[name]} from {base or 'the default model'}")
        r = finetune(base, train_tsv, out, **kw, **extra)
        timing[f"{st.folder[name]}_s"] = time.time() - t
        log(f"{st.folder[name]}: loss per epoch {[round(x, 4) for x in r.epoch_loss]}, "
            f"train accuracy {r.train_accuracy:.3f}, {time.time() - t:.0f} s")

    if args.only == "basetuned":
        tune("basetuned", None)
        if args.export:
            export(st, args.export)
    else:
        adj_dir = adjust_stage(st, timing)
        if args.only in (None, "finetuned"):
            tune("finetuned", adj_dir)
        if args.only in (None, "continual") and not (Path(st.dirs["continual"]) / "config.json").exists():
            from transformers import AutoModel, AutoTokenizer

            from babelmap.training.continual import ContinualAlignment
            from babelmap.training.loss import Collator
            tok = AutoTokenizer.from_pretrained(str(adj_dir))
            reference = AutoModel.from_pretrained(str(adj_dir))        # the adjusted encoder, frozen
            extra = ContinualAlignment(st.examples, Collator(tok, PREFIX, 256), alpha=args.alpha, reference=reference,
                                       reg_weight=1.0, batch_size=args.align_batch, seed=args.ft_seed)
            tune("continual", adj_dir, extra_loss=extra)
            log(f"continual: last alignment terms {extra.parts}")
    (work / f"timing-train-{args.only or 'all'}{st.folder['finetuned'][9:]}.json").write_text(json.dumps(timing))


def adjust_stage(st: Study, timing: dict) -> Path:
    """The adjusted checkpoint (trained unless it exists); sets `st.examples` (the aligned
    English-German adjustment pairs the continual loss reuses)."""
    from babelmap.training.adjust import adjust
    from babelmap.training.loss import build_examples
    args, adj_dir = st.args, st.work / "adjusted"
    alignment = train_alignment(st.adj_corpus, st.work, args.layer)
    st.examples = build_examples(st.adj_corpus, ENG, DEU, alignment)
    if not (adj_dir / "config.json").exists():
        t = time.time()
        log(f"adjusting: {len(st.examples)} pairs, {len(alignment)} links, {args.adjust_steps} steps of 8")
        res = adjust(None, st.adj_corpus, ENG, DEU, adj_dir, alignment=alignment, layer=args.layer,
                     max_steps=args.adjust_steps, batch_size=8, lr=args.adjust_lr, reg_weight=1.0, seed=args.seed,
                     device="cpu", freeze_embeddings=True, prefix=PREFIX, eval_examples=st.examples[:16],
                     eval_corpus=st.adj_corpus.select(first=16), overwrite=True)
        timing["adjust_s"] = time.time() - t
        log(f"adjusted: {res.steps} steps, {res.before} -> {res.after}")
    return adj_dir


def export(st: Study, dest: Path) -> None:
    """Copy the basetuned checkpoint to `dest` and write `topic-split.json` beside it: the FLORES
    dev sentence ids (with article URL and category) used for fine-tuning and held out."""
    import shutil
    src = Path(st.dirs["basetuned"])
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)

    def rows(ids):
        return [{"id": s, "category": st.names[st.label[s]], "url": st.article[s]} for s in ids]
    split = {"corpus": "flores200 dev", "categories": st.names,
             "how": f"labelled dev sentences after {st.args.train_pairs} (the adjustment pairs come first), split by "
                    f"article (analysis.probe.split_by_article, test fraction {st.args.test_fraction}, seed "
                    f"{st.args.seed}); train = the English sentences fine-tuned on; test = held-out articles",
             "checkpoint": str(dest),
             "head_labels": json.loads((dest / RECORD_NAME).read_text())["labels"],
             "note": "the head's rows (head.safetensors weight [C, H]) follow head_labels (sorted names), "
                     "not the order of categories",
             "train": rows(st.tr_ids), "test": rows(st.te_ids)}
    path = dest.parent / "topic-split.json"
    path.with_suffix(".tmp").write_text(json.dumps(split, indent=1) + "\n")
    os.replace(path.with_suffix(".tmp"), path)
    log(f"exported {src} -> {dest}, split -> {path}")


def evaluate(st: Study, name: str, wait: bool) -> None:
    """Features (probe/head) and the word store of one checkpoint on the held-out sentences."""
    from babelmap.engine.words import write_word_store
    d = st.dirs[name]
    while wait and d is not None and not (Path(d) / "config.json").exists():
        time.sleep(20)
    run = st.folder[name]
    cache, ws = st.work / f"features-{run}.npz", st.work / f"words-{run}.h5"
    if cache.exists() and ws.exists():
        return
    t = time.time()
    log(f"evaluating {run}")
    texts = {l: [st.text(l)[s] for s in st.te_ids] for l in st.langs}
    if name in ("base", "adjusted"):  # no head: the probe trains on English train embeddings
        texts["train_" + ENG] = [st.text(ENG)[s] for s in st.probe_ids]
    feats, words = encode_checkpoint(d, texts, {ENG, DEU, FRA})
    write_word_store(ws, st.te_ids, words, attrs={"model": str(d or "default"), "prefix": PREFIX,
                                                  "pooling": "mean", "segmentation": "unicode"})
    np.savez(cache, **feats)
    (st.work / f"timing-eval-{run}.json").write_text(json.dumps({"seconds": time.time() - t}))
    log(f"evaluated {run} in {time.time() - t:.0f} s")


def train_features(st: Study, name: str) -> None:
    """English train embeddings of a fine-tuned checkpoint, so the same probe as for base and
    adjusted can be read off its encoder (beside its own head)."""
    path = st.work / f"features-{st.folder[name]}-train.npz"
    if not path.exists():
        log(f"probe features: {name}")
        feats, _ = encode_checkpoint(st.dirs[name], {"train_" + ENG: [st.text(ENG)[s] for s in st.tr_ids]}, set())
        np.savez(path, X=feats["X_train_" + ENG])


def run_name(checkpoint: str, seed: int, alpha: float = 1.0) -> str:
    """Folder and cache name of a trained checkpoint for a fine-tuning seed (seed 0: no suffix)
    and, for continual, an alignment weight other than 1 (`continual-a0.1`)."""
    name = checkpoint if checkpoint != "continual" or alpha == 1.0 else f"continual-a{alpha:g}"
    return name if checkpoint not in TRAINED or seed == 0 else f"{name}-s{seed}"


def report(st: Study) -> dict:
    """Word measures and zero-shot topic accuracy of every evaluated checkpoint and seed; means
    over fine-tuning seeds with t intervals, and the paired seed-wise effects."""
    from babelmap.analysis.forgetting import accuracy_with_interval, layer_row, seed_interval, zero_shot
    from babelmap.analysis.wordalign import analyse, store_alignment
    from babelmap.engine.words import open_words
    args, work, langs = st.args, st.work, st.langs
    seeds = args.seeds if args.seeds else [args.ft_seed]
    y_te = np.array([st.label[s] for s in st.te_ids])
    y_tr = np.array([st.label[s] for s in st.tr_ids])
    groups = [st.article[s] for s in st.te_ids]

    def cached(r):
        return (work / f"features-{r}.npz").exists() and (work / f"words-{r}.h5").exists()
    runs = {n: [run_name(n, s, args.alpha) for s in seeds if cached(run_name(n, s, args.alpha))] if n in TRAINED else
            ([n] if cached(n) else []) for n in ALL}
    runs = {n: r for n, r in runs.items() if r}
    done = [n for n in ALL if n in runs]
    every = [r for n in done for r in runs[n]]
    feats = {r: dict(np.load(work / f"features-{r}.npz")) for r in every}
    topic: dict[str, dict] = {}
    # the probe on English train embeddings of base/adjusted; the fine-tuned checkpoints' own head
    for n in [n for n in ("base", "adjusted") if n in done]:
        z = feats[n]
        row = {s: i for i, s in enumerate(st.probe_ids)}
        Xtr = z["X_train_" + ENG][[row[s] for s in st.tr_ids]]   # the fine-tuning sentences
        topic[n] = {"probe": zero_shot(Xtr, y_tr, {l: z[f"X_{l}"] for l in langs}, y_te, groups,
                                       len(st.names), seed=args.seed)}
    for r in [r for n in done if n in TRAINED for r in runs[n]]:
        topic[r] = {"head": {l: accuracy_with_interval(feats[r][f"pred_{l}"], y_te, groups, seed=args.seed)
                             for l in langs}}
        extra = work / f"features-{r}-train.npz"
        if extra.exists():
            topic[r]["probe"] = zero_shot(np.load(extra)["X"], y_tr, {l: feats[r][f"X_{l}"] for l in langs}, y_te,
                                          groups, len(st.names), seed=args.seed)
    majority = np.bincount(y_tr).argmax()
    chance = accuracy_with_interval(np.full(len(y_te), majority), y_te, groups, seed=args.seed)
    words = {r: str(work / f"words-{r}.h5") for r in every}
    word_rows, align_lines = {}, {}
    with open_words(words["base"]) as ws_base:
        for tgt in (DEU, FRA):
            al, line = store_alignment(ws_base, ENG, tgt, layer=args.layer)
            align_lines[tgt] = line
            word_rows[tgt] = analyse(words, al, ENG, tgt, seed=args.seed, raw_layers=[], progress=False).rows
    K = max(r["layer"] for r in word_rows[DEU]) + 1
    metrics = ("cos_aligned", "cos_diff", "retrieval")
    # per checkpoint: mean over seeds (t interval) of each word measure and layer, and of head accuracy
    summary: dict[str, dict] = {}
    for n in done:
        summary[n] = {"runs": runs[n], "words": {}, "head": {}}
        for tgt in (DEU, FRA):
            summary[n]["words"][tgt] = [
                {"layer": k, **{m: seed_interval([layer_row(word_rows[tgt], r, k)[m] for r in runs[n]])
                                for m in metrics}} for k in range(K)]
        if n in TRAINED:
            summary[n]["head"] = {l: seed_interval([topic[r]["head"][l]["accuracy"] for r in runs[n]]) for l in langs}
            recs = [json.loads((work / r / RECORD_NAME).read_text()) for r in runs[n]
                    if (work / r / RECORD_NAME).exists()]
            summary[n]["train_accuracy"] = seed_interval([x["train_accuracy"] for x in recs]) if recs else None
            summary[n]["epoch_loss"] = [x["epoch_loss"] for x in recs]
    # seed-paired effects: continual - finetuned (what the alignment loss keeps), finetuned - adjusted
    effects = {}
    pairs = [("continual", "finetuned"), ("finetuned", "adjusted"), ("basetuned", "base")]
    for a, b in [(a, b) for a, b in pairs if a in done and b in done]:
        both = [(ra, rb) for ra in runs[a] for rb in runs[b]
                if b not in TRAINED or ra.split("-s")[-1] == rb.split("-s")[-1] or ("-s" not in ra and "-s" not in rb)]
        eff = {"pairs": both}
        for tgt in (DEU, FRA):
            for k in (4, 8, K - 1):
                for m in ("cos_diff", "retrieval"):
                    eff[f"{tgt}_L{k}_{m}"] = seed_interval([layer_row(word_rows[tgt], ra, k)[m]
                                                            - layer_row(word_rows[tgt], rb, k)[m] for ra, rb in both])
        if a in TRAINED and b in TRAINED:
            for l in langs:
                eff[f"head_{l}"] = seed_interval([topic[ra]["head"][l]["accuracy"] - topic[rb]["head"][l]["accuracy"]
                                                  for ra, rb in both])
        effects[f"{a}-{b}"] = eff
    print(f"\nword measures, held-out test articles ({len(st.te_ids)} sentences); links: base model, layer "
          f"{args.layer}; trained checkpoints: mean over seeds {seeds}")
    print(f"{'pair':9} {'checkpoint':10} " + " ".join(f"L{k} cos/gap/ret".rjust(20) for k in (4, 8, K - 1)))
    for tgt in (DEU, FRA):
        for n in done:
            cells = [summary[n]["words"][tgt][k] for k in (4, 8, K - 1)]
            print(f"eng-{tgt[:3]:5} {n:10} " + " ".join(
                "/".join(f"{c[m]['mean']:.3f}" for m in metrics).rjust(20) for c in cells))
    print(f"\nzero-shot topic accuracy, {len(st.te_ids)} test sentences, {len(set(groups))} articles "
          f"(majority class {chance['accuracy']:.3f})")
    print(f"{'run':14} {'how':6} " + " ".join(l.rjust(18) for l in langs))
    for r in [x for x in ("base", "adjusted") if x in topic] + [r for n in done if n in TRAINED for r in runs[n]]:
        for how, acc in topic[r].items():
            print(f"{r:14} {how:6} " + " ".join(
                f"{acc[l]['accuracy']:.3f} [{acc[l]['low']:.2f},{acc[l]['high']:.2f}]".rjust(18) for l in langs))
    for n in [n for n in done if n in TRAINED]:
        print(f"{n + ' mean':14} {'head':6} " + " ".join(
            f"{summary[n]['head'][l]['mean']:.3f} [{summary[n]['head'][l]['low']:.2f},{summary[n]['head'][l]['high']:.2f}]"
            .rjust(18) for l in langs) + f"  (t interval over {len(runs[n])} seeds)")
    print("\nseed-paired effects (mean [95% t interval over seeds])")
    for name, eff in effects.items():
        print(f"{name}: " + "; ".join(f"{k} {v['mean']:+.3f} [{v['low']:+.3f},{v['high']:+.3f}]"
                                      for k, v in eff.items() if k != "pairs" and ("L8" in k or "head" in k)))
    adj = json.loads((work / "adjusted" / "babelmap_model.json").read_text())
    recs = {r: json.loads((work / r / RECORD_NAME).read_text()) for r in every if (work / r / RECORD_NAME).exists()}
    timing = {}
    for f in sorted(work.glob("timing-*.json")):
        timing[f.stem] = json.loads(f.read_text())
    return {
        "study": "forgetting (issue 18 item 5)", "model": "multilingual-e5-small-q4 (embedded default)",
        "checkpoints": done, "runs": runs, "seeds": seeds, "split_seed": args.seed, "threads": args.threads,
        "load_average": list(os.getloadavg()), "cpu_count": os.cpu_count(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "adjust": {k: adj.get(k) for k in ("src", "tgt", "n_pairs", "n_links", "steps", "batch_size", "lr",
                                           "reg_weight", "freeze_embeddings", "before", "after", "loss_first",
                                           "loss_last")},
        "topic_task": {"categories": st.names, "train_sentences": len(st.tr_ids), "test_sentences": len(st.te_ids),
                       "train_articles": len({st.article[s] for s in st.tr_ids}),
                       "test_articles": len(set(groups)),
                       "split": f"labelled dev sentences after {args.train_pairs}, by article, test fraction "
                                f"{args.test_fraction}, seed {args.seed}; train = seeded sample of "
                                f"{len(st.tr_ids)} sentences of the train articles",
                       "majority_class_accuracy": chance},
        "finetune": {r: {k: recs[r].get(k) for k in ("epoch_loss", "train_accuracy", "settings", "seconds")}
                     for r in recs},
        "alignment_eval": align_lines, "word_measures": word_rows, "topic_accuracy": topic, "summary": summary,
        "effects": effects, "timing_s": timing,
    }


def markdown(result: dict, langs: list[str]) -> str:
    """The docs' tables: word measures at layers 4, 8 and the top (trained checkpoints: mean over
    seeds), zero-shot topic accuracy, and the seed-paired effects."""
    summary, K = result["summary"], len(result["summary"]["base"]["words"][DEU])
    out = []
    for tgt in (DEU, FRA):
        out.append(f"| eng-{tgt[:3]} | " + " | ".join(f"layer {k}: cos aligned / gap / retrieval" for k in (4, 8, K - 1))
                   + " |")
        out.append("|---" * 4 + "|")
        for n in result["checkpoints"]:
            cells = [summary[n]["words"][tgt][k] for k in (4, 8, K - 1)]
            out.append(f"| {n} | " + " | ".join(" / ".join(f"{c[m]['mean']:.3f}" for m in
                                                           ("cos_aligned", "cos_diff", "retrieval")) for c in cells) + " |")
        out.append("")
    out.append("| checkpoint | classifier | " + " | ".join(langs) + " |")
    out.append("|---" * (2 + len(langs)) + "|")
    for n in [n for n in ("base", "adjusted") if n in result["checkpoints"]]:
        acc = result["topic_accuracy"][n]["probe"]
        out.append(f"| {n} | English probe | " + " | ".join(
            f"{acc[l]['accuracy']:.3f} [{acc[l]['low']:.2f}, {acc[l]['high']:.2f}]" for l in langs) + " |")
    for n in [n for n in result["checkpoints"] if n in TRAINED]:
        for r in summary[n]["runs"]:
            acc = result["topic_accuracy"][r]["head"]
            out.append(f"| {r} | own head | " + " | ".join(
                f"{acc[l]['accuracy']:.3f} [{acc[l]['low']:.2f}, {acc[l]['high']:.2f}]" for l in langs) + " |")
        if len(summary[n]["runs"]) > 1:
            h = summary[n]["head"]
            out.append(f"| **{n}, mean of {len(summary[n]['runs'])} seeds** | own head | " + " | ".join(
                f"**{h[l]['mean']:.3f}** [{h[l]['low']:.2f}, {h[l]['high']:.2f}]" for l in langs) + " |")
    out.append("")
    out.append("| seed-paired effect | " + " | ".join(f"{t[:3]} L{k} {m}" for t in (DEU, FRA) for k in (8, K - 1)
                                                   for m in ("gap", "retrieval")) + " |")
    out.append("|---" * 9 + "|")
    for name, eff in result["effects"].items():
        out.append(f"| {name} ({len(eff['pairs'])}) | " + " | ".join(
            "{mean:+.3f} [{low:+.3f}, {high:+.3f}]".format(**eff[f"{t}_L{k}_{m}"]) for t in (DEU, FRA)
            for k in (8, K - 1) for m in ("cos_diff", "retrieval")) + " |")
    heads = [(name, eff) for name, eff in result["effects"].items() if f"head_{ENG}" in eff]
    if heads:
        out.append("")
        out.append("| seed-paired effect on head accuracy | " + " | ".join(langs) + " |")
        out.append("|---" * (1 + len(langs)) + "|")
        for name, eff in heads:
            out.append(f"| {name} | " + " | ".join("{mean:+.3f} [{low:+.3f}, {high:+.3f}]".format(**eff[f"head_{l}"])
                                                  for l in langs) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    st = Study(args)
    if args.stage in ("all", "train"):
        train(st, {})
    if args.stage in ("all", "eval"):
        for n in args.checkpoints:
            evaluate(st, n, args.wait)
    if args.stage in ("all", "probe"):
        for n in [n for n in args.checkpoints if n in TRAINED]:
            while args.wait and not (Path(st.dirs[n]) / "config.json").exists():
                time.sleep(20)
            train_features(st, n)
    if args.stage in ("all", "report"):
        result = report(st)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, args.out)
        plot(result, args.figures, st.langs, args.out.stem)
        table = markdown(result, st.langs)
        args.out.with_suffix(".md").write_text(table)
        print("\n" + table)
        log(f"wrote {args.out}")
    return 0


def plot(result: dict, folder: Path, langs: list[str], stem: str = "forgetting") -> None:
    """<stem>_words.png (aligned cosine distance, unrelated - aligned gap, retrieval per layer,
    eng-deu and eng-fra; trained checkpoints: mean over seeds, band = seed range) and
    <stem>_topics.png (zero-shot accuracy: probe for base/adjusted, the model's own head for the
    fine-tuned ones: mean over seeds with the t interval, dots = single seeds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    colours = dict(zip(ALL, ("tab:grey", "tab:blue", "tab:red", "tab:green", "tab:orange")))
    summary, seeds = result["summary"], result["seeds"]
    alpha = result["settings"]["alpha"]

    def label(name: str) -> str:
        return f"continual (α = {alpha:g})" if name == "continual" else name
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    for i, tgt in enumerate((DEU, FRA)):
        for j, (metric, title) in enumerate((("cos_aligned", "aligned cosine distance"),
                                             ("cos_diff", "unrelated - aligned (cosine)"),
                                             ("retrieval", "word retrieval"))):
            ax = axes[i, j]
            for name in result["checkpoints"]:
                rows = summary[name]["words"][tgt]
                x = [r["layer"] for r in rows]
                ax.plot(x, [r[metric]["mean"] for r in rows], marker="o", ms=3, label=label(name), color=colours[name])
                if len(summary[name]["runs"]) > 1:
                    ax.fill_between(x, [min(r[metric]["values"]) for r in rows], [max(r[metric]["values"]) for r in rows],
                                    color=colours[name], alpha=0.2, lw=0)
            ax.set_title(f"eng-{tgt[:3]}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
            if i == 1:
                ax.set_xlabel("layer")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Forgetting: held-out FLORES test articles, multilingual-e5-small-q4 (fine-tuning seeds {seeds}, "
                 "band = seed range; eng-fra not adjusted)", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / f"{stem}_words.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    bars = [(n, "probe") for n in ("base", "adjusted") if n in result["checkpoints"]] + \
           [(n, "head") for n in result["checkpoints"] if n in TRAINED]
    width = 0.8 / len(bars)
    for k, (n, how) in enumerate(bars):
        x = np.arange(len(langs)) + (k - len(bars) / 2 + 0.5) * width
        if how == "probe":
            acc = [result["topic_accuracy"][n]["probe"][l] for l in langs]
            mid, lo, hi = [a["accuracy"] for a in acc], [a["low"] for a in acc], [a["high"] for a in acc]
        else:
            acc = [summary[n]["head"][l] for l in langs]
            mid, lo, hi = [a["mean"] for a in acc], [a["low"] for a in acc], [a["high"] for a in acc]
            for li, a in enumerate(acc):
                ax.plot([x[li]] * len(a["values"]), a["values"], "k.", ms=3)
        ax.bar(x, mid, width, color=colours[n], alpha=0.55 if how == "probe" else 1.0,
               label=f"{label(n)} ({'English probe' if how == 'probe' else 'own head'})")
        ax.errorbar(x, mid, yerr=[np.subtract(mid, lo), np.subtract(hi, mid)], fmt="none", ecolor="black", lw=0.8)
    ax.axhline(result["topic_task"]["majority_class_accuracy"]["accuracy"], color="k", ls=":", lw=0.8,
               label="majority class")
    ax.set_xticks(np.arange(len(langs)), langs)
    ax.set_ylabel("topic accuracy (7 classes)")
    ax.set_ylim(0, 1.25)
    ax.set_title("Zero-shot topic accuracy on held-out articles (trained on English). Probe: 95% article bootstrap; "
                 "head: mean and t interval over seeds, dots = seeds", fontsize=8)
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / f"{stem}_topics.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
