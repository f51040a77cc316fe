"""Cross-lingual adjustment of a model on aligned word pairs (Cao, Kitaev and Klein 2020;
Efimov et al. 2023); the objective itself is `babelmap.training.loss.AlignmentLoss`.

Why: adjustment pulls the contextual embeddings of translated words together, so a model
transfers better across the adjusted languages; the word-alignment analysis then shows how
much closeness was gained (and later forgotten by task fine-tuning).

`adjust(...)` trains with `accelerate` (plain or under `accelerate launch`; `bf16=True` for
bf16 mixed precision) and saves a Hugging Face checkpoint directory (weights, config,
tokenizer, `babelmap_model.json` with the text prefix and the provenance) that
`babelmap extract --model DIR` and `babelmap words --model DIR` read. Without an alignment it
aligns the pair itself (the model's mutual-argmax links at `layer`, `kernels.align`); a layer
the model does not have is refused before any work.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from babelmap.engine.errors import BabelmapError, ModelError
from babelmap.training.loss import AlignmentLoss, Collator, PairExample, build_examples, word_states

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_alignment(model: nn.Module, examples: Sequence[PairExample], collate: Collator,
                       reference: nn.Module | None = None, layer: int = -1, batch_size: int = 16) -> dict:
    """Mean squared distance of aligned word pairs (and of source words to the reference
    model's, when given) at `layer`, dropout off. The numbers adjustment moves."""
    was = model.training
    model.eval()
    tot = {"aligned_sq": 0.0, "n_links": 0, "drift_sq": 0.0, "n_src": 0, "unrelated_sq": 0.0}
    dev = next(model.parameters()).device
    try:
        for a in range(0, len(examples), batch_size):
            batch = collate(list(examples[a:a + batch_size])).to(dev)
            fs = word_states(model, batch.src, batch.src_pool, layer)
            ft = word_states(model, batch.tgt, batch.tgt_pool, layer)
            b, i, j = batch.links[:, 0], batch.links[:, 1], batch.links[:, 2]
            tot["aligned_sq"] += float(((fs[b, i] - ft[b, j]) ** 2).sum())
            # unrelated: the aligned target of the next pair in the batch (another sentence)
            if len(batch.src_valid) > 1:
                bn = (b + 1) % len(batch.src_valid)
                jn = torch.minimum(j, batch.tgt_valid[bn].sum(1) - 1)
                tot["unrelated_sq"] += float(((fs[b, i] - ft[bn, jn]) ** 2).sum())
            tot["n_links"] += len(b)
            if reference is not None:
                f0 = word_states(reference.to(dev).eval(), batch.src, batch.src_pool, layer)
                tot["drift_sq"] += float(((fs - f0) ** 2).sum(-1)[batch.src_valid].sum())
                tot["n_src"] += int(batch.src_valid.sum())
    finally:
        model.train(was)
    n = max(1, tot["n_links"])
    res = {"aligned_msd": tot["aligned_sq"] / n, "unrelated_msd": tot["unrelated_sq"] / n, "n_links": tot["n_links"]}
    if reference is not None:
        res["source_drift_msd"] = tot["drift_sq"] / max(1, tot["n_src"])
    return res


def sentence_similarity(lm, texts_a: Sequence[str], texts_b: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """[K] mean cosine, per hidden state, between mean-pooled sentence embeddings of
    translation pairs (texts_a[i], texts_b[i]) under a `LoadedModel` (dropout off)."""
    if len(texts_a) != len(texts_b) or not texts_a:
        raise ValueError("texts_a and texts_b must be non-empty translation pairs of equal length")
    sums = None
    was = lm.model.training
    lm.model.eval()
    try:
        for i in range(0, len(texts_a), batch_size):
            ea = lm.embed(lm.tokenize(texts_a[i:i + batch_size]), "mean").double()
            eb = lm.embed(lm.tokenize(texts_b[i:i + batch_size]), "mean").double()
            cos = torch.nn.functional.cosine_similarity(ea, eb, dim=-1).sum(0).cpu().numpy()
            sums = cos if sums is None else sums + cos
    finally:
        lm.model.train(was)
    return sums / len(texts_a)


@dataclass
class AdjustResult:
    out: Path
    steps: int
    history: list[dict] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    seconds: float = 0.0
    sentence_sim: dict = field(default_factory=dict)


def adjust(model, corpus, src: str, tgt: str, out: str | os.PathLike, *, alignment=None, layer: int = 8,
           epochs: float = 1.0, max_steps: int | None = None, batch_size: int = 8, lr: float = 2e-5,
           reg_weight: float = 1.0, bf16: bool = False, seed: int = 0, device: str = "auto",
           pooling: str = "mean", segmentation: str = "unicode", freeze_embeddings: bool = False,
           dropout: bool = False, max_length: int = 256, prefix: str | None = None,
           eval_examples: Sequence[PairExample] | None = None, eval_corpus=None, overwrite: bool = False,
           progress: bool = True) -> AdjustResult:
    """Fine-tune `model` (a checkpoint directory, None = the embedded default, or a
    `LoadedModel`) so aligned words of `src` and `tgt` in `corpus` move together; save a
    Hugging Face checkpoint to `out`.

    `alignment`: an `Alignment` over the corpus's sentences (e.g. a Pharaoh file read with
    `read_pharaoh`); None computes the model's own mutual-argmax alignment at `layer`.
    `freeze_embeddings` keeps the (large) input embedding matrix fixed: faster on a CPU.
    `eval_corpus` (e.g. held-out sentences): the mean sentence-level cosine of the pair per
    layer before and after is measured on it (default: the training sentences).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from babelmap.engine.models import load_model
    from babelmap.engine.words import model_prefix

    out = Path(out)
    if alignment is None and isinstance(model, (str, os.PathLike)) and (Path(model) / "config.json").is_file():
        check_layer(layer, _hidden_states_of_checkpoint(Path(model)), str(model))   # before any loading
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelError(f"{out} exists and is not empty; choose another --out or pass overwrite")
    t0 = time.time()
    torch.manual_seed(seed)
    from accelerate.state import AcceleratorState
    if AcceleratorState._shared_state:  # a second run in one process may change precision
        AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=device == "cpu")
    if hasattr(model, "model"):
        lm = model
    else:
        lm = load_model(model, device=str(acc.device) if device != "cpu" else "cpu",
                        prefix=prefix if prefix is not None else model_prefix(model))
    if prefix is None:
        prefix = lm.prefix
    if alignment is None:
        check_layer(layer, lm.num_hidden_states, lm.name)
    corpus = corpus.select(languages=[src, tgt])
    if alignment is None:
        import tempfile

        from babelmap.engine.words import extract_words, open_words
        from babelmap.kernels.align import align_store
        with tempfile.TemporaryDirectory() as tmp:
            ws_path = extract_words(corpus, Path(tmp) / "words.h5", lm, pooling=pooling, segmentation=segmentation,
                                    prefix=prefix, progress=progress)
            with open_words(ws_path) as ws:
                alignment = align_store(ws, src, tgt, layer=layer)
    examples = build_examples(corpus, src, tgt, alignment, segmentation)
    if not examples:
        raise BabelmapError(f"no aligned sentence pairs for {src}-{tgt} in corpus {corpus.name}")
    collate = Collator(lm.tokenizer, prefix, min(max_length, int(getattr(lm, "max_length", max_length))), pooling)
    net = lm.model
    net.train(dropout)
    loss_fn = AlignmentLoss.from_model(net, reg_weight)
    evals = list(eval_examples) if eval_examples is not None else examples[: min(len(examples), 64)]
    before = evaluate_alignment(net, evals, collate, loss_fn.reference)
    ec = (eval_corpus if eval_corpus is not None else corpus).select(languages=[src, tgt])
    both = [j for j in range(len(ec.sentence_ids)) if ec.text(src)[j] is not None and ec.text(tgt)[j] is not None]
    sa, sb = [ec.text(src)[j] for j in both], [ec.text(tgt)[j] for j in both]
    sim_before = sentence_similarity(lm, sa, sb) if both else None
    if freeze_embeddings:
        net.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loader = torch.utils.data.DataLoader(examples, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    net, opt, loader = acc.prepare(net, opt, loader)
    steps_total = max_steps or int(np.ceil(epochs * len(loader)))
    history: list[dict] = []
    step = 0
    bar = tqdm(total=steps_total, desc=f"adjust {src}-{tgt}", disable=not progress or not acc.is_main_process)
    while step < steps_total:
        for batch in loader:
            net.train(dropout)
            with acc.autocast():
                loss = loss_fn(net, batch)
            acc.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            history.append({"step": step, **loss_fn.parts})
            bar.set_postfix(align=f"{loss_fn.parts['align']:.3g}", reg=f"{loss_fn.parts['reg']:.3g}")
            bar.update(1)
            if step >= steps_total:
                break
    bar.close()
    net = acc.unwrap_model(net)
    after = evaluate_alignment(net, evals, collate, loss_fn.reference)
    sent = {}
    if sim_before is not None:
        lm.model = net
        sent = {"n_pairs": len(both), "before": sim_before.tolist(), "after": sentence_similarity(lm, sa, sb).tolist()}
    acc.wait_for_everyone()
    if acc.is_main_process:
        _save(net, lm, out, overwrite, {
            "prefix": prefix, "base_model": str(lm.name), "base_fingerprint": str(lm.fingerprint),
            "method": "cross-lingual adjustment (Cao et al. 2020)", "src": src, "tgt": tgt,
            "corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(),
            "alignment": {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                          for k, v in alignment.attrs.items()},
            "n_pairs": len(examples), "n_links": int(sum(len(e.links) for e in examples)),
            "steps": step, "batch_size": batch_size, "lr": lr, "reg_weight": reg_weight, "bf16": bf16,
            "pooling": pooling, "segmentation": segmentation, "freeze_embeddings": freeze_embeddings,
            "dropout": dropout, "seed": seed, "before": before, "after": after, "sentence_similarity": sent,
            "loss_first": history[0] if history else None, "loss_last": history[-1] if history else None})
    return AdjustResult(out, step, history, before, after, time.time() - t0, sent)


def _hidden_states_of_checkpoint(folder: Path) -> int:
    """K hidden states of a checkpoint folder, from its config alone (no weights loaded)."""
    from transformers import AutoConfig

    from babelmap.engine.models.families import family_of, num_hidden_states
    config = AutoConfig.from_pretrained(str(folder))
    return num_hidden_states(config, family_of(config))


def check_layer(layer: int, num_hidden_states: int, model_name: str = "the model") -> None:
    """Refuse a hidden state the model does not have (0..K-1)."""
    if not 0 <= layer < num_hidden_states:
        raise ModelError(f"--layer {layer}: {model_name} has {num_hidden_states} hidden states "
                         f"(0..{num_hidden_states - 1}, 0 = embedding output); choose one of them")


def _save(net: nn.Module, lm, out: Path, overwrite: bool, meta: dict) -> None:
    """Checkpoint through a temporary sibling directory, then renamed into place."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    net.save_pretrained(str(tmp))
    lm.tokenizer.save_pretrained(str(tmp))
    (tmp / "babelmap_model.json").write_text(json.dumps(meta, indent=1, default=str))
    if out.exists():
        if not overwrite:
            raise ModelError(f"{out} appeared while training; not replacing it")
        shutil.rmtree(out)
    os.replace(tmp, out)
