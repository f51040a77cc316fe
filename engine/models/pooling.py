"""Pooling of all hidden states into one vector per sentence and layer, on the device, in fp32."""
from __future__ import annotations

from typing import Sequence

import torch

POOLINGS = ("mean",)


def pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """[B, K, H] float32 from K tensors [B, T, H] and the attention mask [B, T]."""
    if method != "mean":
        raise ValueError(f"unknown pooling {method!r}; choose one of {POOLINGS}")
    m = mask.to(torch.float32).unsqueeze(-1)
    denom = m.sum(1).clamp_min(1.0)
    return torch.stack([(h.to(torch.float32) * m).sum(1) / denom for h in hidden_states], 1)
