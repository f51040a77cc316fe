"""The cross-lingual alignment objective (Cao, Kitaev and Klein 2020) as a module for any
training loop, with the data it needs: sentence pairs with one-to-one word links
(`PairExample`, `build_examples`), their tokenised batches (`Collator`, `AlignmentBatch`,
`batches`) and differentiable word states (`word_states`).

Objective, for a batch of sentence pairs with one-to-one word links (s_i, t_j):

    L = mean_links ||f(s_i) - f(t_j)||^2  +  reg_weight * mean_source_words ||f(s) - f0(s)||^2

f = word embedding (sub-word pooled, default `mean`) at the last layer of the model being
trained, for source *and* target; f0 = the same under a frozen copy of the original model.
The regulariser keeps the source language where it was, so the target moves towards it
instead of everything collapsing.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from babelmap.engine.errors import BabelmapError
from babelmap.engine.words import pooling_matrix, segment


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
