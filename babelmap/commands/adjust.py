"""`babelmap adjust`: cross-lingual adjustment of a model on aligned word pairs."""
from __future__ import annotations

import argparse

NAME = "adjust"
HELP = "fine-tune a model so aligned words of two languages move together (Cao et al. 2020)"
EXAMPLE = """babelmap adjust --corpus ../shared/data/flores200/dev --format flores --src eng_Latn --tgt deu_Latn \\
    --max-sentences 300 --layer 8 --out adjusted-eng-deu/
babelmap adjust --model ckpt/ --corpus ... --pharaoh gold.align --reg-weight 1 --bf16 --out adjusted/
accelerate launch -m babelmap adjust ...   (several GPUs)
then: babelmap extract --model adjusted-eng-deu/ ...  or  babelmap words --model adjusted-eng-deu/ ..."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from babelmap.corpus_options import add_corpus_arguments
    from babelmap.threads import add_threads_argument
    add_corpus_arguments(p, langs=False, sentence_range=True)
    p.add_argument("--model", default=None, help="checkpoint folder (default: the embedded multilingual-e5-small-q4)")
    p.add_argument("--src", required=True, help="source language (kept in place by the regulariser)")
    p.add_argument("--tgt", required=True, help="target language (moved towards the source)")
    p.add_argument("--pharaoh", help="links from a Pharaoh file over the selected sentences (unicode "
                   "segmentation); default: the model's own mutual-argmax alignment at --layer")
    p.add_argument("--layer", type=int, default=8, help="hidden state of the model's own aligner (default 8)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the sentence pairs (default 1)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimiser steps")
    p.add_argument("--batch-size", type=int, default=8, help="sentence pairs per step (default 8)")
    p.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate (default 2e-5)")
    p.add_argument("--reg-weight", type=float, default=1.0, help="weight of the source regulariser (default 1)")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
    p.add_argument("--freeze-embeddings", action="store_true", help="keep the input embedding matrix fixed")
    p.add_argument("--dropout", action="store_true", help="train with dropout on (default off)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    add_threads_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-sentences", metavar="A:B", help="held-out sentences for the before/after "
                   "measures (default: the training ones)")
    p.add_argument("--report", metavar="FOLDER", help="write the sentence-similarity figure (before/after) here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="checkpoint folder to write")


def run(args: argparse.Namespace) -> int:
    from babelmap.corpus_options import read_args_corpus, select_corpus, selection_from_args
    from babelmap.engine.alignments import read_pharaoh_for_corpus
    from babelmap.threads import set_threads
    from babelmap.training.adjust import adjust
    set_threads(args.threads)
    pair = [args.src, args.tgt]
    both = read_args_corpus(args, langs=pair)      # read once: training and held-out sentences
    corpus = select_corpus(both, **selection_from_args(args, langs=pair))
    eval_corpus = (select_corpus(both, languages=pair, sentences=args.eval_sentences,
                                 min_languages=args.min_languages) if args.eval_sentences else None)
    alignment = read_pharaoh_for_corpus(args.pharaoh, corpus, args.src, args.tgt) if args.pharaoh else None
    res = adjust(args.model, corpus, args.src, args.tgt, args.out, alignment=alignment, layer=args.layer,
                 epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                 reg_weight=args.reg_weight, bf16=args.bf16, seed=args.seed, device=args.device,
                 freeze_embeddings=args.freeze_embeddings, dropout=args.dropout, overwrite=args.overwrite,
                 eval_corpus=eval_corpus, progress=not args.no_progress)
    b, a = res.before, res.after
    print(f"adjusted {args.src}-{args.tgt}: {res.steps} steps in {res.seconds:.0f} s -> {res.out}")
    print(f"  aligned-pair mean squared distance {b['aligned_msd']:.3f} -> {a['aligned_msd']:.3f} "
          f"(unrelated {b['unrelated_msd']:.3f} -> {a['unrelated_msd']:.3f}); "
          f"source drift {a.get('source_drift_msd', float('nan')):.4f}")
    ss = res.sentence_sim
    if ss:
        import numpy as np
        before, after = np.array(ss["before"]), np.array(ss["after"])
        print(f"  sentence-level mean cosine over {ss['n_pairs']} pairs, last layer {before[-1]:.4f} -> "
              f"{after[-1]:.4f}; per layer change: " + " ".join(f"{d:+.3f}" for d in after - before))
        if args.report:
            from babelmap.analysis.wordalign import plot_sentence_similarity
            files = plot_sentence_similarity({"base": before, "adjusted": after}, args.report,
                                             f"Sentence similarity {args.src} - {args.tgt} ({ss['n_pairs']} pairs)")
            print(f"  figure: {', '.join(map(str, files))}")
    return 0
