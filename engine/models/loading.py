"""Load a model + tokenizer and expose one method: pooled hidden states of every layer.

(First version: encoder models with masked mean pooling. Families and poolings are
extended in engine/models/families.py and engine/models/pooling.py.)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from babelmap.engine.errors import ModelError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; decided at run time, never at import."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device} asked for, but CUDA is not available here")
    return torch.device(device)


@dataclass
class LoadedModel:
    """A model ready for extraction. `embed` returns float32 [B, K, H] pooled on the device."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    family: str = "encoder"
    default_pooling: str = "mean"
    prefix: str = ""
    max_length: int = 512
    fingerprint: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32

    @property
    def num_hidden_states(self) -> int:
        return int(self.model.config.num_hidden_layers) + 1

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str], lang: str | None = None, max_length: int | None = None):
        return self.tokenizer([self.prefix + t for t in texts], padding=True, truncation=True,
                              max_length=max_length or self.max_length, return_tensors="pt")

    def token_counts(self, texts: Sequence[str], lang: str | None = None,
                     max_length: int | None = None) -> list[int]:
        enc = self.tokenizer([self.prefix + t for t in texts], truncation=True,
                             max_length=max_length or self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    @torch.inference_mode()
    def embed(self, batch, pooling: str | None = None) -> torch.Tensor:
        from babelmap.engine.models.pooling import pool
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = self.model(**batch, output_hidden_states=True)
        return pool(out.hidden_states, batch["attention_mask"], pooling or self.default_pooling)


def fingerprint_dir(path: Path) -> str:
    """sha256 of config.json and the weight files' names, sizes and first/last MiB."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.suffix in (".json", ".safetensors", ".bin") and f.is_file():
            h.update(f.name.encode())
            size = f.stat().st_size
            h.update(str(size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read())
    return h.hexdigest()


def _fingerprint(path: Path, name: str) -> str:
    if name == "multilingual-e5-small-q4":
        from babelmap.engine.models.default_e5 import default_fingerprint
        return default_fingerprint()
    return fingerprint_dir(path)


def load_model(name_or_dir: str | None = None, device: str = "auto", dtype: str = "float32",
               prefix: str | None = None) -> LoadedModel:
    """Load a model for extraction. `None` means the embedded default model."""
    from transformers import AutoModel, AutoTokenizer

    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    name = name_or_dir
    default_prefix = ""
    if name_or_dir is None or name_or_dir in ("default", "multilingual-e5-small-q4"):
        from babelmap.engine.models.default_e5 import ensure_default_model
        path = ensure_default_model()
        name = "multilingual-e5-small-q4"
        default_prefix = "query: "
    else:
        path = Path(name_or_dir)
        if not path.exists():
            raise ModelError(f"model {name_or_dir!r} is not a local directory; babelmap never "
                             "downloads at run time: pass a checkpoint directory")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModel.from_pretrained(str(path), dtype=DTYPES[dtype])
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load model from {path}: {e}") from e
    model.eval().to(dev)
    cfg = json.loads((path / "config.json").read_text())
    return LoadedModel(name=str(name), model=model, tokenizer=tok, prefix=default_prefix if prefix is None else prefix,
                       max_length=min(512, int(cfg.get("max_position_embeddings", 512))),
                       fingerprint=_fingerprint(path, name), device=dev, dtype=DTYPES[dtype])
