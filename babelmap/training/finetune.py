"""Fine-tune a model for sequence classification on a labelled text file, offline, with
`accelerate`, and save a Hugging Face checkpoint directory that `babelmap extract --model DIR`
reads (the representation-change study, issue 11: base model vs fine-tuned copy).

Input: a UTF-8 file with one example per line, `text<TAB>label` (an optional first line
`text<TAB>label` is a header). Output directory: the model (config + safetensors, loadable
by `AutoModel` for its encoder and by `AutoModelForSequenceClassification` with its head),
the tokenizer, and `babelmap_finetune.json` (settings, label map, loss per epoch). Works as one
process and under `accelerate launch` (data-parallel; the main process saves).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from babelmap.engine.errors import BabelmapError, CorpusError, ModelError

RECORD = "babelmap_finetune.json"


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


def finetune(model_dir: str | os.PathLike, train: str | os.PathLike, out: str | os.PathLike, *,
             epochs: int = 3, lr: float = 2e-5, batch_size: int = 16, bf16: bool = False,
             max_length: int = 128, weight_decay: float = 0.01, warmup: float = 0.1, seed: int = 0,
             device: str = "auto", progress: bool = True, overwrite: bool = False,
             freeze_embeddings: bool = False, extra_loss=None) -> FinetuneResult:
    """Fine-tune `model_dir` for sequence classification on `train` (`text<TAB>label`) and
    save the checkpoint to `out` (through a temporary directory, renamed when complete).

    AdamW with linear warm-up (`warmup` = fraction of steps) and decay; `bf16` = bfloat16
    mixed precision (accelerate); `device` auto|cpu|cuda. `freeze_embeddings` keeps the input
    embedding matrix fixed; `extra_loss(model) -> tensor`, when given, is added to the task loss
    at every step (continual learning: `babelmap.training.continual`). Returns a FinetuneResult."""
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    t0 = time.perf_counter()
    from babelmap.engine.models.loading import resolve_model_dir
    out = Path(out)
    model_dir, _ = resolve_model_dir(str(model_dir))  # a checkpoint folder, or a hub id as transformers resolves it
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BabelmapError(f"{out} exists and is not empty; pass --overwrite to replace it")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise BabelmapError("epochs and batch size must be >= 1 and the learning rate > 0")
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
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot load {model_dir} for sequence classification: {e}") from e
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id

    def collate(rows):
        enc = tok([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        enc["labels"] = torch.tensor([y[i] for i in rows])
        return enc

    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(list(range(len(texts))), batch_size=batch_size, shuffle=True, collate_fn=collate,
                        generator=g)
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if not any(k in n for k in no_decay)],
               "weight_decay": weight_decay},
              {"params": [p for n, p in trained if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
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
            loss = outputs.loss if extra_loss is None else outputs.loss + extra_loss(model)
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
                "lr": lr, "batch_size": batch_size, "bf16": bf16, "max_length": max_length,
                "weight_decay": weight_decay, "warmup": warmup, "seed": seed, "processes": acc.num_processes,
                "freeze_embeddings": freeze_embeddings, "extra_loss": repr(extra_loss) if extra_loss else None}
    result = FinetuneResult(out, names, epoch_loss, accuracy, settings, time.perf_counter() - t0)
    acc.wait_for_everyone()
    if acc.is_main_process:
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped = acc.unwrap_model(model)
        unwrapped.to(torch.float32).save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        record = asdict(result)
        record["path"] = str(out)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    acc.wait_for_everyone()
    return result


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
    """The label names a fine-tuned checkpoint was trained on (from its config)."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    return [cfg["id2label"][str(i)] for i in range(len(cfg.get("id2label", {})))]
