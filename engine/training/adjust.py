"""Cross-lingual adjustment of a model on aligned word pairs (Cao, Kitaev and Klein 2020;
Efimov et al. 2023), and `AlignmentLoss`, the same objective as a module for any training loop.

Why: adjustment pulls the contextual embeddings of translated words together, so a model
transfers better across the adjusted languages; the word-alignment analysis then shows how
much closeness was gained (and later forgotten by task fine-tuning).

Objective, for a batch of sentence pairs with one-to-one word links (s_i, t_j):

    L = mean_links ||f(s_i) - f(t_j)||^2  +  reg_weight * mean_source_words ||f(s) - f0(s)||^2

f = word embedding (sub-word pooled, default `mean`) at the last layer of the model being
trained, for source *and* target; f0 = the same under a frozen copy of the original model.
The regulariser keeps the source language where it was, so the target moves towards it
instead of everything collapsing.

`adjust(...)` trains with `accelerate` (plain or under `accelerate launch`; `bf16=True` for
bf16 mixed precision) and saves a Hugging Face checkpoint directory (weights, config,
tokenizer, `babelmap_model.json` with the text prefix and the provenance) that
`babelmap extract --model DIR` and `babelmap words --model DIR` read.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from babelmap.engine.errors import BabelmapError, ModelError
from babelmap.engine.words import pooling_matrix, segment

log = logging.getLogger(__name__)


@dataclass
class PairExample:
    """One sentence pair: texts, word spans (character offsets) and one-to-one links (i, j)."""

    src_text: str
    tgt_text: str
    src_spans: list[tuple[int, int]]
    tgt_spans: list[tuple[int, int]]
    links: list[tuple[int, int]]


def build_examples(corpus, src: str, tgt: str, alignment, segmentation: str = "unicode") -> list[PairExample]:
    """Sentence pairs of `corpus` with their links (`alignment` indexes the corpus's sentence
    axis, as one made from a word store of that corpus does). Pairs without links are left out."""
    ts, tt = corpus.text(src), corpus.text(tgt)
    if alignment.n_sentences != len(ts):
        raise BabelmapError(f"the alignment has {alignment.n_sentences} sentences, corpus {corpus.name} "
                            f"{len(ts)}: align a word store of the same corpus")
    out = []
    for s in range(len(ts)):
        links = alignment.sentence(s)
        if ts[s] is None or tt[s] is None or not links:
            continue
        ss, st = segment(ts[s], segmentation), segment(tt[s], segmentation)
        if max(i for i, _ in links) >= len(ss) or max(j for _, j in links) >= len(st):
            raise BabelmapError(f"sentence {corpus.sentence_ids[s]}: alignment indices beyond the "
                                f"{segmentation} segmentation ({len(ss)}/{len(st)} words)")
        out.append(PairExample(ts[s], tt[s], ss, st, links))
    return out


@dataclass
class AlignmentBatch:
    """Tokenised sentence pairs, word pooling weights [B, W, T], valid words [B, W] and links
    [M, 3] = (pair, source word, target word)."""

    src: dict
    tgt: dict
    src_pool: torch.Tensor
    tgt_pool: torch.Tensor
    src_valid: torch.Tensor
    tgt_valid: torch.Tensor
    links: torch.Tensor

    def to(self, device) -> "AlignmentBatch":
        mv = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return AlignmentBatch(mv(self.src), mv(self.tgt), self.src_pool.to(device), self.tgt_pool.to(device),
                              self.src_valid.to(device), self.tgt_valid.to(device), self.links.to(device))


class Collator:
    """Turns a list of `PairExample` into an `AlignmentBatch` (a DataLoader `collate_fn`)."""

    def __init__(self, tokenizer, prefix: str = "", max_length: int = 256, pooling: str = "mean"):
        self.tokenizer, self.prefix, self.max_length, self.pooling = tokenizer, prefix, max_length, pooling

    def _side(self, texts, spans):
        full = [self.prefix + t for t in texts]
        enc = self.tokenizer(full, padding=True, truncation=True, max_length=self.max_length,
                             return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").tolist()
        T = enc["input_ids"].shape[1]
        W = max(len(s) for s in spans)
        pool = torch.zeros(len(texts), W, T)
        valid = torch.zeros(len(texts), W, dtype=torch.bool)
        for b, (sp, off, f) in enumerate(zip(spans, offsets, full)):
            m, v = pooling_matrix(sp, off, len(self.prefix), self.pooling, f)
            pool[b, :len(sp)] = torch.from_numpy(m)
            valid[b, :len(sp)] = torch.from_numpy(v)
        return dict(enc), pool, valid

    def __call__(self, examples: Sequence[PairExample]) -> AlignmentBatch:
        src, sp, sv = self._side([e.src_text for e in examples], [e.src_spans for e in examples])
        tgt, tp, tv = self._side([e.tgt_text for e in examples], [e.tgt_spans for e in examples])
        links = [(b, i, j) for b, e in enumerate(examples) for i, j in e.links]
        lt = torch.tensor(links, dtype=torch.long).reshape(-1, 3)
        keep = sv[lt[:, 0], lt[:, 1]] & tv[lt[:, 0], lt[:, 2]]  # drop links to truncated words
        return AlignmentBatch(src, tgt, sp, tp, sv, tv, lt[keep])


def word_states(model: nn.Module, enc: dict, pool: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """[B, W, H] float32 word embeddings at `layer` (-1 = last), differentiable."""
    out = model(**enc, output_hidden_states=layer != -1)
    h = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
    return torch.einsum("bwt,bth->bwh", pool.to(h.device, torch.float32), h.float())


class AlignmentLoss(nn.Module):
    """The adjustment objective as a module: add it to any training loop (the continual-learning
    variant: `loss = task_loss + alpha * align_loss(model, next(align_batches))`).

    `reference` is a frozen copy of the original model (made by `AlignmentLoss.from_model`);
    without one the regulariser is left out. After each call `self.parts` holds the two terms
    (detached floats) for logging.
    """

    def __init__(self, reference: nn.Module | None = None, reg_weight: float = 1.0, layer: int = -1):
        super().__init__()
        self.reg_weight = float(reg_weight)
        self.layer = int(layer)
        self.parts: dict[str, float] = {}
        # kept out of the module's parameters and state_dict: never trained, never saved
        self.__dict__["reference"] = reference
        if reference is not None:
            reference.eval()
            for p in reference.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_model(cls, model: nn.Module, reg_weight: float = 1.0, layer: int = -1) -> "AlignmentLoss":
        """A loss whose regulariser holds `model` (as it is now) frozen."""
        return cls(copy.deepcopy(model) if reg_weight > 0 else None, reg_weight, layer)

    def forward(self, model: nn.Module, batch: AlignmentBatch) -> torch.Tensor:
        dev = next(model.parameters()).device
        batch = batch.to(dev)
        fs = word_states(model, batch.src, batch.src_pool, self.layer)
        ft = word_states(model, batch.tgt, batch.tgt_pool, self.layer)
        b, i, j = batch.links[:, 0], batch.links[:, 1], batch.links[:, 2]
        if len(b):
            align = ((fs[b, i] - ft[b, j]) ** 2).sum(-1).mean()
        else:
            align = fs.sum() * 0.0
        loss = align
        reg = torch.zeros((), device=dev)
        if self.reference is not None and self.reg_weight > 0:
            ref = self.reference
            if next(ref.parameters()).device != dev:
                ref.to(dev)
            with torch.no_grad():
                f0 = word_states(ref, batch.src, batch.src_pool, self.layer)
            reg = ((fs - f0) ** 2).sum(-1)[batch.src_valid].mean()
            loss = loss + self.reg_weight * reg
        self.parts = {"align": float(align.detach()), "reg": float(reg.detach()), "loss": float(loss.detach())}
        return loss


def batches(examples: Sequence[PairExample], collate: Collator, batch_size: int = 8, seed: int = 0,
            forever: bool = True) -> Iterator[AlignmentBatch]:
    """Shuffled batches of aligned sentence pairs (endless by default, for a continual loop)."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    while True:
        rng.shuffle(order)
        for a in range(0, len(order), batch_size):
            yield collate([examples[k] for k in order[a:a + batch_size]])
        if not forever:
            return


@torch.no_grad()
def evaluate_alignment(model: nn.Module, examples: Sequence[PairExample], collate: Collator,
                       reference: nn.Module | None = None, layer: int = -1, batch_size: int = 16) -> dict:
    """Mean squared distance of aligned word pairs (and of source words to the reference
    model's, when given) at `layer`, dropout off. The numbers adjustment moves."""
    was = model.training
    model.eval()
    tot = {"aligned_sq": 0.0, "n_links": 0, "drift_sq": 0.0, "n_src": 0, "unrelated_sq": 0.0}
    dev = next(model.parameters()).device
    try:
        for a in range(0, len(examples), batch_size):
            batch = collate(list(examples[a:a + batch_size])).to(dev)
            fs = word_states(model, batch.src, batch.src_pool, layer)
            ft = word_states(model, batch.tgt, batch.tgt_pool, layer)
            b, i, j = batch.links[:, 0], batch.links[:, 1], batch.links[:, 2]
            tot["aligned_sq"] += float(((fs[b, i] - ft[b, j]) ** 2).sum())
            # unrelated: the aligned target of the next pair in the batch (another sentence)
            if len(batch.src_valid) > 1:
                bn = (b + 1) % len(batch.src_valid)
                jn = torch.minimum(j, batch.tgt_valid[bn].sum(1) - 1)
                tot["unrelated_sq"] += float(((fs[b, i] - ft[bn, jn]) ** 2).sum())
            tot["n_links"] += len(b)
            if reference is not None:
                f0 = word_states(reference.to(dev).eval(), batch.src, batch.src_pool, layer)
                tot["drift_sq"] += float(((fs - f0) ** 2).sum(-1)[batch.src_valid].sum())
                tot["n_src"] += int(batch.src_valid.sum())
    finally:
        model.train(was)
    n = max(1, tot["n_links"])
    res = {"aligned_msd": tot["aligned_sq"] / n, "unrelated_msd": tot["unrelated_sq"] / n, "n_links": tot["n_links"]}
    if reference is not None:
        res["source_drift_msd"] = tot["drift_sq"] / max(1, tot["n_src"])
    return res


def sentence_similarity(lm, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """[K] mean cosine, per hidden state, between mean-pooled sentence embeddings of
    translation pairs (texts_a[i], texts_b[i]) under a `LoadedModel` (dropout off)."""
    if len(texts_a) != len(texts_b) or not texts_a:
        raise ValueError("texts_a and texts_b must be non-empty translation pairs of equal length")
    sums = None
    was = lm.model.training
    lm.model.eval()
    try:
        for i in range(0, len(texts_a), batch_size):
            ea = lm.embed(lm.tokenize(texts_a[i:i + batch_size]), "mean").double()
            eb = lm.embed(lm.tokenize(texts_b[i:i + batch_size]), "mean").double()
            cos = torch.nn.functional.cosine_similarity(ea, eb, dim=-1).sum(0).cpu().numpy()
            sums = cos if sums is None else sums + cos
    finally:
        lm.model.train(was)
    return sums / len(texts_a)


@dataclass
class AdjustResult:
    out: Path
    steps: int
    history: list[dict] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    seconds: float = 0.0
    sentence_sim: dict = field(default_factory=dict)


def adjust(model, corpus, src: str, tgt: str, out: str | os.PathLike, *, alignment=None, layer: int = 8,
           epochs: float = 1.0, max_steps: int | None = None, batch_size: int = 8, lr: float = 2e-5,
           reg_weight: float = 1.0, bf16: bool = False, seed: int = 0, device: str = "auto",
           pooling: str = "mean", segmentation: str = "unicode", freeze_embeddings: bool = False,
           dropout: bool = False, max_length: int = 256, prefix: str | None = None,
           eval_examples: Sequence[PairExample] | None = None, eval_corpus=None, overwrite: bool = False,
           progress: bool = True) -> AdjustResult:
    """Fine-tune `model` (a checkpoint directory, None = the embedded default, or a
    `LoadedModel`) so aligned words of `src` and `tgt` in `corpus` move together; save a
    Hugging Face checkpoint to `out`.

    `alignment`: an `Alignment` over the corpus's sentences (e.g. a Pharaoh file read with
    `read_pharaoh`); None computes the model's own mutual-argmax alignment at `layer`.
    `freeze_embeddings` keeps the (large) input embedding matrix fixed: faster on a CPU.
    `eval_corpus` (e.g. held-out sentences): the mean sentence-level cosine of the pair per
    layer before and after is measured on it (default: the training sentences).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from babelmap.engine.models import load_model
    from babelmap.engine.words import model_prefix

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelError(f"{out} exists and is not empty; choose another --out or pass overwrite")
    t0 = time.time()
    torch.manual_seed(seed)
    from accelerate.state import AcceleratorState
    if AcceleratorState._shared_state:  # a second run in one process may change precision
        AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=device == "cpu")
    if hasattr(model, "model"):
        lm = model
    else:
        lm = load_model(model, device=str(acc.device) if device != "cpu" else "cpu",
                        prefix=prefix if prefix is not None else model_prefix(model))
    if prefix is None:
        prefix = lm.prefix
    corpus = corpus.select(languages=[src, tgt])
    if alignment is None:
        import tempfile

        from babelmap.engine.words import extract_words, open_words
        from babelmap.kernels.align import align_store
        with tempfile.TemporaryDirectory() as tmp:
            ws_path = extract_words(corpus, Path(tmp) / "words.h5", lm, pooling=pooling, segmentation=segmentation,
                                    prefix=prefix, progress=progress)
            with open_words(ws_path) as ws:
                alignment = align_store(ws, src, tgt, layer=layer)
    examples = build_examples(corpus, src, tgt, alignment, segmentation)
    if not examples:
        raise BabelmapError(f"no aligned sentence pairs for {src}-{tgt} in corpus {corpus.name}")
    collate = Collator(lm.tokenizer, prefix, min(max_length, int(getattr(lm, "max_length", max_length))), pooling)
    net = lm.model
    net.train(dropout)
    loss_fn = AlignmentLoss.from_model(net, reg_weight)
    evals = list(eval_examples) if eval_examples is not None else examples[: min(len(examples), 64)]
    before = evaluate_alignment(net, evals, collate, loss_fn.reference)
    ec = (eval_corpus if eval_corpus is not None else corpus).select(languages=[src, tgt])
    both = [j for j in range(len(ec.sentence_ids)) if ec.text(src)[j] is not None and ec.text(tgt)[j] is not None]
    sa, sb = [ec.text(src)[j] for j in both], [ec.text(tgt)[j] for j in both]
    sim_before = sentence_similarity(lm, sa, sb) if both else None
    if freeze_embeddings:
        net.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loader = torch.utils.data.DataLoader(examples, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    net, opt, loader = acc.prepare(net, opt, loader)
    steps_total = max_steps or int(np.ceil(epochs * len(loader)))
    history: list[dict] = []
    step = 0
    bar = tqdm(total=steps_total, desc=f"adjust {src}-{tgt}", disable=not progress or not acc.is_main_process)
    while step < steps_total:
        for batch in loader:
            net.train(dropout)
            with acc.autocast():
                loss = loss_fn(net, batch)
            acc.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            history.append({"step": step, **loss_fn.parts})
            bar.set_postfix(align=f"{loss_fn.parts['align']:.3g}", reg=f"{loss_fn.parts['reg']:.3g}")
            bar.update(1)
            if step >= steps_total:
                break
    bar.close()
    net = acc.unwrap_model(net)
    after = evaluate_alignment(net, evals, collate, loss_fn.reference)
    sent = {}
    if sim_before is not None:
        lm.model = net
        sent = {"n_pairs": len(both), "before": sim_before.tolist(), "after": sentence_similarity(lm, sa, sb).tolist()}
    acc.wait_for_everyone()
    if acc.is_main_process:
        _save(net, lm, out, overwrite, {
            "prefix": prefix, "base_model": str(lm.name), "base_fingerprint": str(lm.fingerprint),
            "method": "cross-lingual adjustment (Cao et al. 2020)", "src": src, "tgt": tgt,
            "corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(),
            "alignment": {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                          for k, v in alignment.attrs.items()},
            "n_pairs": len(examples), "n_links": int(sum(len(e.links) for e in examples)),
            "steps": step, "batch_size": batch_size, "lr": lr, "reg_weight": reg_weight, "bf16": bf16,
            "pooling": pooling, "segmentation": segmentation, "freeze_embeddings": freeze_embeddings,
            "dropout": dropout, "seed": seed, "before": before, "after": after, "sentence_similarity": sent,
            "loss_first": history[0] if history else None, "loss_last": history[-1] if history else None})
    return AdjustResult(out, step, history, before, after, time.time() - t0, sent)


def _save(net: nn.Module, lm, out: Path, overwrite: bool, meta: dict) -> None:
    """Checkpoint through a temporary sibling directory, then renamed into place."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    net.save_pretrained(str(tmp))
    lm.tokenizer.save_pretrained(str(tmp))
    (tmp / "babelmap_model.json").write_text(json.dumps(meta, indent=1, default=str))
    if out.exists():
        if not overwrite:
            raise ModelError(f"{out} appeared while training; not replacing it")
        shutil.rmtree(out)
    os.replace(tmp, out)
