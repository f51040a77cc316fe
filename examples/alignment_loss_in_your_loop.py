"""Add babelmap's cross-lingual alignment loss to your own training loop (continual learning).

Your task loss trains the model; the alignment loss keeps translated words of two languages
close (and, through its regulariser, the source language where the original model had it),
so task fine-tuning does not "forget" cross-lingual alignment (Efimov et al. 2023).

    python examples/alignment_loss_in_your_loop.py            # a tiny random model, offline, ~1 min
    python examples/alignment_loss_in_your_loop.py --model DIR --corpus ../shared/data/flores200/dev

With `--model`/`--corpus` it aligns English and German words of FLORES-200 with the model's own
mutual-argmax aligner (layer 8); without, it builds a tiny random model and a synthetic
parallel sample (target words = reversed source words, shuffled).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import torch


def synthetic_pairs(n: int = 32, seed: int = 0):
    """A toy parallel corpus with known one-to-one links."""
    from babelmap.engine.corpora import ParallelCorpus
    from babelmap.engine.alignments import Alignment
    vocab = "the quick brown fox jumps over lazy dog river stone house tree sun moon".split()
    rng = random.Random(seed)
    src, tgt, links = [], [], []
    for _ in range(n):
        words = rng.sample(vocab, rng.randint(3, 6))
        perm = list(range(len(words)))
        rng.shuffle(perm)
        src.append(" ".join(words))
        tgt.append(" ".join(words[p][::-1] for p in perm))
        links.append(sorted((perm[j], j) for j in range(len(words))))
    corpus = ParallelCorpus("toy", ["src_Latn", "tgt_Latn"], [str(i) for i in range(n)], [src, tgt])
    return corpus, Alignment.from_lists(links), "src_Latn", "tgt_Latn"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint folder (default: a tiny random model)")
    ap.add_argument("--corpus", help="FLORES-200 dev folder (with --model)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--alpha", type=float, default=1.0, help="weight of the alignment loss")
    args = ap.parse_args(argv)

    from babelmap.engine.models import load_model
    from babelmap.training.adjust import evaluate_alignment
    from babelmap.training.loss import AlignmentLoss, Collator, batches, build_examples

    torch.manual_seed(0)
    if args.model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny import make_tiny_model
        model_dir = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
        corpus, alignment, src, tgt = synthetic_pairs()
        lm = load_model(str(model_dir), device="cpu")
        lr = 3e-3
    else:
        from babelmap.engine.corpora import read_corpus
        from babelmap.engine.words import extract_words, open_words
        from babelmap.kernels.align import align_store
        src, tgt = "eng_Latn", "deu_Latn"
        corpus = read_corpus(args.corpus, "flores").select(languages=[src, tgt], first=64)
        lm = load_model(args.model, device="cpu")
        with tempfile.TemporaryDirectory() as tmp:  # the model's own word alignment at layer 8
            with open_words(extract_words(corpus, Path(tmp) / "w.h5", lm, progress=False)) as ws:
                alignment = align_store(ws, src, tgt, layer=8)
        lr = 2e-5

    # 1. the aligned sentence pairs, as endless shuffled batches
    examples = build_examples(corpus, src, tgt, alignment)
    collate = Collator(lm.tokenizer, prefix=lm.prefix)
    align_batches = batches(examples, collate, batch_size=8)

    # 2. your model, your task head, your optimiser ... plus the alignment loss
    model = lm.model
    model.eval()  # dropout off here; use model.train() in your own setting
    align_loss = AlignmentLoss.from_model(model, reg_weight=1.0)  # freezes a copy of the model as it is now
    head = torch.nn.Linear(model.config.hidden_size, 2)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=lr)

    before = evaluate_alignment(model, examples, collate, align_loss.reference)
    for step in range(args.steps):
        # a stand-in task: classify the source sentences (replace with your data and loss)
        b = next(align_batches)
        logits = head(model(**b.src).last_hidden_state[:, 0])
        task_loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        loss = task_loss + args.alpha * align_loss(model, b)  # <- the one added line
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(f"step {step:3d}  task {task_loss.item():.4f}  align {align_loss.parts['align']:.4f}  "
                  f"reg {align_loss.parts['reg']:.4f}")
    after = evaluate_alignment(model, examples, collate, align_loss.reference)
    print(f"aligned-pair mean squared distance {before['aligned_msd']:.3f} -> {after['aligned_msd']:.3f}; "
          f"unrelated {before['unrelated_msd']:.3f} -> {after['unrelated_msd']:.3f}; "
          f"source drift {after['source_drift_msd']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
