"""Pooling of all hidden states into one vector per sentence and layer, on the device, in fp32.

Methods (the mPLM-Sim method, MEXA's last token, plus `cls`):
- `mean`: masked mean over all kept tokens, special tokens included (encoders, encoder-decoders'
  encoders, CANINE).
- `cls`: the first kept token (for studies that use the CLS/first-token vector).
- `weighted`: position-weighted mean as in SGPT (decoders; the default there): the token at
  position i (1-based, counted over kept tokens only) weighs i / sum(1..n).
- `weighted-reference`: the weights of the mPLM-Sim reference code, T, T-1, ..., 1 (the first
  token weighs most), normalised; again over kept tokens only, so padding side does not matter.
- `last`: the last kept token (decoders, as MEXA does): right or left padding alike.

Padding positions never reach the result, even when a model leaves NaN there (fully masked
attention rows under left padding): they are zeroed, not multiplied by a zero weight.
Hidden states whose length differs from the token mask (CANINE's downsampled "molecule"
layers) are pooled with `downsampled_mask` instead.
"""
from __future__ import annotations

from typing import Sequence

import torch

POOLINGS = ("mean", "cls", "weighted", "weighted-reference", "last")


def pooling_weights(mask: torch.Tensor, method: str) -> torch.Tensor:
    """[B, T] float32 weights summing to 1 per row (0 on padding) for `method`."""
    m = mask.to(torch.float32)
    if method == "mean":
        w = m
    elif method in ("cls", "last"):
        if method == "cls":
            pick = m.argmax(1)  # index of the first kept token (left or right padding)
        else:  # the largest kept index: positions 1..T where kept, 0 elsewhere
            pick = (torch.arange(1, m.shape[1] + 1, device=m.device, dtype=m.dtype) * m).argmax(1)
        w = torch.zeros_like(m)
        w[torch.arange(len(m), device=m.device), pick] = 1.0
        w = w * (m.sum(1, keepdim=True) > 0)
    elif method == "weighted":
        w = torch.cumsum(m, 1) * m
    elif method == "weighted-reference":
        pos = torch.cumsum(m, 1)
        w = (m.sum(1, keepdim=True) - pos + 1.0) * m
    else:
        raise ValueError(f"unknown pooling {method!r}; choose one of {', '.join(POOLINGS)}")
    return w / w.sum(1, keepdim=True).clamp_min(1e-12)


def canine_downsampled_mask(mask: torch.Tensor, rate: int, length: int) -> torch.Tensor:
    """The molecule mask CANINE computes for each sentence on its own (MaxPool1d over windows
    of `rate` characters of the unpadded sequence, i.e. floor(n / rate) molecules), padded to
    `length`. For an unpadded sentence this equals CANINE's own `_downsample_attention_mask`."""
    n = mask.to(torch.long).sum(1)
    return (torch.arange(length, device=mask.device)[None, :] < (n // rate)[:, None]).to(mask.dtype)


def pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor, method: str = "mean",
         downsampled_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, K, H] float32 from K tensors [B, T_k, H] and the attention mask [B, T].

    Each layer is cast to fp32 one at a time, its padding zeroed, and reduced with its weights.
    """
    w = pooling_weights(mask, method)
    w_down = pooling_weights(downsampled_mask, method) if downsampled_mask is not None else None
    out = []
    for h in hidden_states:
        if h.shape[1] == w.shape[1]:
            wk = w
        elif w_down is not None and h.shape[1] == w_down.shape[1]:
            wk = w_down
        else:
            raise ValueError(f"hidden state of length {h.shape[1]} matches neither the mask "
                             f"({w.shape[1]}) nor a downsampled mask")
        h32 = torch.where((wk > 0).unsqueeze(-1), h.to(torch.float32), 0.0)
        out.append(torch.bmm(wk.unsqueeze(1), h32).squeeze(1))
    return torch.stack(out, 1)
