"""`babelmap.encode`: pooled sentence embeddings of every layer for a list of texts, in memory.

(The module is `babelmap.encoding`, so that `babelmap.encode` stays the function.)

    import babelmap
    E = babelmap.encode(["Hello.", "Bonjour."])       # float32 [2, K, H], K = layers + 1
    E = babelmap.encode("Hello.", layers=[0, 8])       # one text -> [2, H]

The sentence-transformers habit, with every hidden state: texts are sorted by token count and
cut into batches of `batch_size` (little padding), and the rows come back in input order. The
model, tokenizer, prefix, pooling and truncation are those of `babelmap extract` (the same
`LoadedModel`), so a row equals the store row of the same model and text up to float noise
(and the store's float16 rounding). Loaded models are cached per (model, device, dtype,
prefix), so repeated calls cost only the forward passes.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError

MODEL_CACHE_SIZE = 2
_cache: "OrderedDict[tuple, Any]" = OrderedDict()
_lock = threading.Lock()


def _model_key(model: str | os.PathLike | None) -> str:
    from babelmap.engine.models.loading import DEFAULT_NAMES
    if model in DEFAULT_NAMES:
        return "default"
    return str(Path(model).resolve())


def cached_model(model: str | os.PathLike | None = None, device: str = "auto", dtype: str | None = None,
                 prefix: str | None = None):
    """The LoadedModel for (model, device, dtype, prefix), loaded once and kept (the last
    `MODEL_CACHE_SIZE` used) so that repeated `encode` calls do not reload it."""
    from babelmap.engine.models import load_model, resolve_device
    dev = str(resolve_device(device))
    dt = dtype or "float32"
    key = (_model_key(model), dev, dt, prefix)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        lm = load_model(None if key[0] == "default" else str(model), device=dev, dtype=dt, prefix=prefix)
        _cache[key] = lm
        while len(_cache) > MODEL_CACHE_SIZE:
            _cache.popitem(last=False)
        return lm


def clear_model_cache() -> None:
    """Forget the models `encode` has loaded (frees their memory)."""
    with _lock:
        _cache.clear()


def _layer_positions(layers: int | Sequence[int] | None, K: int) -> list[int]:
    if layers is None:
        return list(range(K))
    wanted = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    pos = []
    for k in wanted:
        k = int(k)
        if not -K <= k < K:
            raise BabelmapError(f"layer {k} does not exist: the model has {K} hidden states (0..{K - 1}; "
                                "0 is the embedding output)")
        pos.append(k % K)
    return pos


def encode(texts: str | Sequence[str], model: Any = None, layers: int | Sequence[int] | None = None,
           pooling: str | None = None, batch_size: int = 32, device: str = "auto", dtype: str | None = None,
           lang: str | None = None, progress: bool = False, prefix: str | None = None) -> np.ndarray:
    """Pooled embeddings of `texts` at every hidden state: float32 [N, K, H] (K = layers + 1,
    0 = embedding output), rows in input order; a single string gives [K, H].

    model: a checkpoint folder, None for the embedded default, or a LoadedModel. layers: the
    hidden states to keep (list; negative counts from the end; an int drops that axis).
    pooling: the family's default when None (`mean` for encoders). dtype: forward precision
    (float32 when None; bfloat16, float16). lang: our language id, for tokenizers that take
    a source language (NLLB). prefix: text prepended (default: the model's, `query: ` for
    the default E5). Batches hold `batch_size` texts of similar length."""
    single = isinstance(texts, str)
    items = [texts] if single else list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise BabelmapError(f"encode: text {i} is a {type(t).__name__}, not a string")
    if batch_size < 1:
        raise BabelmapError(f"batch_size must be at least 1, got {batch_size}")
    if hasattr(model, "embed") and hasattr(model, "tokenize"):
        lm = model
    else:
        lm = cached_model(model, device=device, dtype=dtype, prefix=prefix)
    pos = _layer_positions(layers, int(lm.num_hidden_states))
    out = np.empty((len(items), len(pos), int(lm.hidden_size)), dtype=np.float32)
    if items:
        _fill(lm, items, out, pos, pooling, batch_size, lang, progress)
    if isinstance(layers, (int, np.integer)):
        out = out[:, 0]
    return out[0] if single else out


def _fill(lm, items: list[str], out: np.ndarray, pos: list[int], pooling: str | None, batch_size: int,
          lang: str | None, progress: bool) -> None:
    """Embed `items` longest first in batches of `batch_size` and write each row to its place."""
    import torch
    from tqdm.auto import tqdm

    lengths = np.asarray(lm.token_counts(items, lang), dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    all_layers = pos == list(range(int(lm.num_hidden_states)))
    with tqdm(total=len(items), unit="text", desc="encode", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            idx = order[start:start + batch_size]
            pooled = lm.embed(lm.tokenize([items[i] for i in idx], lang), pooling)
            if not all_layers:
                pooled = pooled[:, pos]
            if isinstance(pooled, torch.Tensor):
                pooled = pooled.detach().to("cpu", torch.float32).numpy()
            out[idx] = np.asarray(pooled, dtype=np.float32)
            bar.update(len(idx))
