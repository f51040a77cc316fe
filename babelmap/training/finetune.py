"""Fine-tune a model for sentence classification on a labelled text file, offline, with
`accelerate`, and save a checkpoint directory that `babelmap extract --model DIR` reads (the
representation-change and forgetting studies: base model vs fine-tuned copy).

The classifier is a plain linear head on the pooled last hidden state: `mean` (masked mean over
tokens, what E5 and the store's default pooling use) or `cls` (the first token); no BERT pooler
(the converted default model has a zero one). The head has its own, larger learning rate. Output
directory: the encoder (config + safetensors, loadable by `AutoModel`), the tokenizer,
`head.safetensors` (weight [C, H], bias [C]: a store's last-layer embeddings with the same
pooling times the head give the model's logits), `babelmap_finetune.json` (settings, labels,
pooling, loss per epoch) and `babelmap_model.json` (the text prefix, read by extract). Works as
one process and under `accelerate launch` (data-parallel; the main process saves).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from babelmap.engine.errors import BabelmapError, CorpusError, ModelError

RECORD = "babelmap_finetune.json"
HEAD = "head.safetensors"
POOLINGS = ("mean", "cls")


@dataclass
class FinetuneResult:
    """What a fine-tuning run did: where it saved, the labels, mean training loss per epoch,
    accuracy on the training set after the last epoch, and the settings."""

    path: Path
    labels: list[str]
    epoch_loss: list[float]
    train_accuracy: float
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


class ClassifierOutput(NamedTuple):
    loss: torch.Tensor | None
    logits: torch.Tensor
    pooled: torch.Tensor
    hidden_states: tuple | None


def pool_last_hidden(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[B, H] sentence vectors from the last hidden state [B, T, H]: the masked mean over the
    tokens where mask [B, T] is 1 (`mean`, the store's mean pooling) or the first token (`cls`)."""
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class PooledClassifier(nn.Module):
    """An encoder and a linear head on its pooled last hidden state (`pooling` mean|cls).
    `base_model` is the bare encoder (what the continual alignment loss runs)."""

    def __init__(self, encoder: nn.Module, n_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise BabelmapError(f"pooling {pooling!r} for the classifier head; choose one of {', '.join(POOLINGS)}")
        self.encoder, self.pooling = encoder, pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    @property
    def config(self):
        return self.encoder.config

    def forward(self, input_ids=None, attention_mask=None, labels=None, output_hidden_states: bool = False,
                **inputs) -> ClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=output_hidden_states, **inputs)
        pooled = pool_last_hidden(out.last_hidden_state, attention_mask, self.pooling)
        logits = self.head(self.dropout(pooled))
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels)
        return ClassifierOutput(loss, logits, pooled, out.hidden_states if output_hidden_states else None)


def read_labelled(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Texts and labels from `text<TAB>label` lines (the label is after the last tab).

    Blank lines are skipped; a line without a tab, an empty text or an empty label stops with
    the file and line number."""
    path = Path(path)
    if not path.exists():
        raise CorpusError("labelled training file not found", file=str(path))
    texts, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            if n == 1 and line.lower() == "text\tlabel":
                continue
            if "\t" not in line:
                raise CorpusError("expected `text<TAB>label`, found no tab", file=str(path), line=n,
                                  hint="separate the text and its label with one tab character")
            text, label = line.rsplit("\t", 1)
            if not text.strip() or not label.strip():
                raise CorpusError("empty text or label", file=str(path), line=n)
            texts.append(text)
            labels.append(label.strip())
    if not texts:
        raise CorpusError("no examples in the labelled file", file=str(path))
    if len(set(labels)) < 2:
        raise CorpusError(f"only one label ({labels[0]!r}); classification needs at least two", file=str(path))
    return texts, labels


def resolve_base(model: str | os.PathLike | None) -> tuple[Path, str, str]:
    """(folder, the model's text prefix, its natural head pooling) for a model name: the
    embedded default (`None`/"default": `query: `, mean), a checkpoint babelmap wrote (the
    prefix and pooling it records; mean when it descends from the default), a sentence-transformers
    folder (its recorded pooling), a hub id or any other folder (no prefix, cls)."""
    from babelmap.engine.models.loading import DEFAULT_NAMES, default_prefix, resolve_model_dir
    if model in DEFAULT_NAMES:
        from babelmap.engine.models.default_e5 import ensure_default_model
        return Path(ensure_default_model()), "query: ", "mean"
    path, _ = resolve_model_dir(str(model))
    pooling = "cls"
    for name in (RECORD, "babelmap_model.json"):
        meta = path / name
        if meta.is_file():
            rec = json.loads(meta.read_text(encoding="utf-8"))
            rec = rec.get("settings", rec)
            if rec.get("head_pooling") in POOLINGS:
                pooling = rec["head_pooling"]
                break
            if str(rec.get("base_model", "")) in [str(n) for n in DEFAULT_NAMES if n]:
                pooling = "mean"
                break
    st = path / "1_Pooling" / "config.json"
    if st.is_file():
        cfg = json.loads(st.read_text())
        pooling = "mean" if cfg.get("pooling_mode_mean_tokens") else "cls" if cfg.get("pooling_mode_cls_token") else pooling
    return path, default_prefix(str(model), path), pooling


def finetune(model_dir: str | os.PathLike | None, train: str | os.PathLike, out: str | os.PathLike, *,
             epochs: int = 3, lr: float = 2e-5, head_lr: float = 1e-3, pooling: str | None = None,
             prefix: str | None = None, batch_size: int = 16, bf16: bool = False, max_length: int = 128,
             weight_decay: float = 0.01, warmup: float = 0.1, dropout: float = 0.1, seed: int = 0,
             device: str = "auto", progress: bool = True, overwrite: bool = False,
             freeze_embeddings: bool = False, extra_loss=None) -> FinetuneResult:
    """Fine-tune `model_dir` (None = the default model) for sentence classification on `train`
    (`text<TAB>label`) and save the checkpoint to `out` (through a temporary directory, renamed
    when complete).

    A linear head on the `pooling` (mean|cls; None = the model's own: mean for the E5 default and
    its descendants) of the last hidden state; AdamW, encoder at `lr`, head at `head_lr`, linear
    warm-up (`warmup` = fraction of steps) and decay; `prefix` (None = the model's, `query: ` for
    E5) is prepended to every text; `bf16` = bfloat16 mixed precision (accelerate); `device`
    auto|cpu|cuda. `freeze_embeddings` keeps the input embedding matrix fixed; `extra_loss(model)
    -> tensor`, when given, is added to the task loss at every step (continual learning:
    `babelmap.training.continual`). Returns a FinetuneResult."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    t0 = time.perf_counter()
    out = Path(out)
    model_dir, model_prefix, natural = resolve_base(model_dir)
    pooling = natural if pooling is None else pooling
    prefix = model_prefix if prefix is None else prefix
    if pooling not in POOLINGS:
        raise BabelmapError(f"pooling {pooling!r} for the classifier head; choose one of {', '.join(POOLINGS)}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BabelmapError(f"{out} exists and is not empty; pass --overwrite to replace it")
    if epochs < 1 or batch_size < 1 or lr <= 0 or head_lr <= 0:
        raise BabelmapError("epochs and batch size must be >= 1 and the learning rates > 0")
    texts, labels = read_labelled(train)
    names = sorted(set(labels))
    label2id = {l: i for i, l in enumerate(names)}
    y = [label2id[l] for l in labels]

    acc = _accelerator("bf16" if bf16 else "no", device == "cpu")
    set_seed(seed)
    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        encoder = AutoModel.from_pretrained(str(model_dir))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load {model_dir} for sequence classification: {e}") from e
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):  # unused by the head; kept (unchanged) so the checkpoint is complete
        pooler.requires_grad_(False)
    encoder.config.id2label, encoder.config.label2id = dict(enumerate(names)), label2id
    model = PooledClassifier(encoder, len(names), pooling, dropout)

    def collate(rows):
        enc = tok([prefix + texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        enc["labels"] = torch.tensor([y[i] for i in rows])
        return enc

    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(list(range(len(texts))), batch_size=batch_size, shuffle=True, collate_fn=collate,
                        generator=g)
    if freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    trained = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if not any(k in n for k in no_decay)],
               "weight_decay": weight_decay},
              {"params": [p for n, p in trained if any(k in n for k in no_decay)],
               "weight_decay": 0.0},
              {"params": list(model.head.parameters()), "weight_decay": 0.0, "lr": head_lr}]
    opt = torch.optim.AdamW(groups, lr=lr)
    steps = epochs * math.ceil(len(texts) / (batch_size * acc.num_processes))
    sched = get_linear_schedule_with_warmup(opt, int(warmup * steps), steps)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)

    epoch_loss: list[float] = []
    bar = tqdm(total=steps, desc="finetune", unit="step", disable=not (progress and acc.is_main_process))
    for epoch in range(epochs):
        model.train()
        total, count = torch.zeros((), device=acc.device), torch.zeros((), device=acc.device)
        for batch in loader:
            outputs = model(**batch)
            loss = outputs.loss if extra_loss is None else outputs.loss + extra_loss(acc.unwrap_model(model))
            acc.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
            n = batch["labels"].shape[0]
            total += outputs.loss.detach().float() * n
            count += n
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{outputs.loss.item():.4f}")
        total, count = acc.reduce(total, "sum"), acc.reduce(count, "sum")
        epoch_loss.append(float(total / count))
    bar.close()

    # accuracy on the training set (a sanity check that the task was learnt)
    model.eval()
    correct, seen = torch.zeros((), device=acc.device), torch.zeros((), device=acc.device)
    with torch.no_grad():
        for batch in loader:
            pred = model(**batch).logits.argmax(-1)
            correct += (pred == batch["labels"]).sum()
            seen += batch["labels"].shape[0]
    correct, seen = acc.reduce(correct, "sum"), acc.reduce(seen, "sum")
    accuracy = float(correct / seen)

    settings = {"base_model": str(model_dir), "train": str(train), "examples": len(texts), "epochs": epochs,
                "lr": lr, "head_lr": head_lr, "head_pooling": pooling, "prefix": prefix, "dropout": dropout,
                "batch_size": batch_size, "bf16": bf16, "max_length": max_length,
                "weight_decay": weight_decay, "warmup": warmup, "seed": seed, "processes": acc.num_processes,
                "freeze_embeddings": freeze_embeddings, "extra_loss": repr(extra_loss) if extra_loss else None}
    result = FinetuneResult(out, names, epoch_loss, accuracy, settings, time.perf_counter() - t0)
    acc.wait_for_everyone()
    if acc.is_main_process:
        _save(acc.unwrap_model(model), tok, out, result)
    acc.wait_for_everyone()
    return result


def _save(model: PooledClassifier, tok, out: Path, result: FinetuneResult) -> None:
    """The encoder (float32), tokenizer, head, record and prefix, written to a temporary folder
    that replaces `out` when complete."""
    from safetensors.torch import save_file
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.encoder.to(torch.float32).save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    head = model.head.to(torch.float32)
    save_file({"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()},
              str(tmp / HEAD))
    record = asdict(result)
    record["path"] = str(out)
    record["pooling"] = result.settings["head_pooling"]
    record["head"] = HEAD
    (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (tmp / "babelmap_model.json").write_text(json.dumps(
        {"prefix": result.settings["prefix"], "head_pooling": result.settings["head_pooling"],
         "method": "babelmap finetune", "base_model": result.settings["base_model"]}, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _accelerator(mixed_precision: str, cpu: bool):
    """An Accelerator; in a single process, one left over from an earlier call with other
    settings (accelerate keeps global state) is reset instead of refused."""
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState
    try:
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu)
    except ValueError as e:
        if "already been initialized" not in str(e) or PartialState().num_processes != 1:
            raise BabelmapError(f"accelerate is already set up differently in this process ({e})") from e
        AcceleratorState._reset_state()
        return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def label_names(path: str | os.PathLike) -> Sequence[str]:
    """The label names a fine-tuned checkpoint was trained on (from its record)."""
    return list(json.loads((Path(path) / RECORD).read_text())["labels"])


def load_head(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """(weight [C, H], bias [C], label names, pooling) of a fine-tuned checkpoint's head, as
    float64 NumPy: `X @ weight.T + bias` on the checkpoint's last-layer embeddings pooled the
    same way are its logits."""
    from safetensors.numpy import load_file
    path = Path(path)
    if not (path / HEAD).is_file() or not (path / RECORD).is_file():
        raise ModelError(f"{path} has no classifier head ({HEAD} and {RECORD}): not written by babelmap finetune")
    w = load_file(str(path / HEAD))
    rec = json.loads((path / RECORD).read_text())
    return (w["weight"].astype(np.float64), w["bias"].astype(np.float64), list(rec["labels"]),
            rec.get("pooling", rec.get("settings", {}).get("head_pooling", "mean")))


def load_classifier(path: str | os.PathLike) -> tuple[PooledClassifier, object, str]:
    """(model in eval mode, tokenizer, text prefix) of a checkpoint `finetune` wrote."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer
    path = Path(path)
    rec = json.loads((path / RECORD).read_text())
    encoder = AutoModel.from_pretrained(str(path))
    model = PooledClassifier(encoder, len(rec["labels"]), rec.get("pooling", "mean"))
    model.head.load_state_dict(load_file(str(path / HEAD)))
    return model.eval(), AutoTokenizer.from_pretrained(str(path)), str(rec["settings"].get("prefix") or "")
