"""Continual learning against forgetting: the cross-lingual alignment loss kept in a task loop.

Why: task fine-tuning moves a model away from the alignment that adjustment added; adding
`alpha * AlignmentLoss` on aligned word pairs at every task step keeps it (Efimov et al. 2023).
`ContinualAlignment` is the `extra_loss` callable that `babelmap.training.finetune.finetune`
adds to the task loss: each call draws the next batch of aligned sentence pairs.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from babelmap.training.loss import AlignmentBatch, AlignmentLoss, Collator, PairExample, batches


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder of a task model (`BertForSequenceClassification.bert`), or the model
    itself when it is one already: the alignment loss needs `last_hidden_state`."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) and base is not model else model


class ContinualAlignment:
    """`extra_loss(model) = alpha * AlignmentLoss(encoder_of(model), next aligned batch)`.

    `reference`: the frozen encoder the regulariser holds the source words to (the model as
    it was before the task; None leaves the regulariser out). After each call `parts` holds
    the alignment loss's terms and `calls` counts the calls."""

    def __init__(self, examples: Sequence[PairExample], collate: Collator, *, alpha: float = 1.0,
                 reference: nn.Module | None = None, reg_weight: float = 1.0, batch_size: int = 8,
                 seed: int = 0):
        if not examples:
            raise ValueError("continual alignment needs at least one aligned sentence pair")
        self.alpha = float(alpha)
        self.loss = AlignmentLoss(reference, reg_weight if reference is not None else 0.0)
        self._batches: Iterator[AlignmentBatch] = batches(examples, collate, batch_size, seed, forever=True)
        self.parts: dict[str, float] = {}
        self.calls = 0
        self.settings = {"alpha": self.alpha, "reg_weight": self.loss.reg_weight, "batch_size": batch_size,
                         "seed": seed, "n_pairs": len(examples),
                         "n_links": int(sum(len(e.links) for e in examples))}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        value = self.loss(encoder_of(model), next(self._batches))
        self.parts = dict(self.loss.parts)
        self.calls += 1
        return self.alpha * value

    def __repr__(self) -> str:
        s = self.settings
        return (f"ContinualAlignment(alpha={s['alpha']}, reg_weight={s['reg_weight']}, "
                f"batch_size={s['batch_size']}, pairs={s['n_pairs']}, links={s['n_links']})")
