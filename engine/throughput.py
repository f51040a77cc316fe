"""Throughput accounting: model FLOPs, device peaks, and the reference method's loop.

Used by `babelmap bench` and the benchmark scripts. Model FLOPs per sentence of n tokens:
2 * P * n (P = non-embedding parameters) + 4 * layers * n^2 * H (attention scores and
weighted sum), forward only; padded positions are not counted (they are not useful work).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

# Dense peak FLOP/s by (device name fragment, dtype), from the vendors' data sheets (no sparsity).
GPU_PEAKS = {
    ("H200", "bfloat16"): 989e12, ("H200", "float16"): 989e12, ("H200", "float32"): 67e12,
    ("H100", "bfloat16"): 989e12, ("H100", "float16"): 989e12, ("H100", "float32"): 67e12,
    ("A100", "bfloat16"): 312e12, ("A100", "float16"): 312e12, ("A100", "float32"): 19.5e12,
}


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables (what a token's forward pass multiplies by)."""
    emb = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in emb))


def model_flops(model: torch.nn.Module, token_counts: Sequence[int]) -> float:
    """Forward FLOPs of the useful (unpadded) tokens of the given sentences."""
    cfg = model.config
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "num_layers", 0))
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model", 0))
    n = np.asarray(token_counts, dtype=np.float64)
    return float(2.0 * non_embedding_parameters(model) * n.sum() + 4.0 * layers * hidden * (n ** 2).sum())


def measured_cpu_peak(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of the best of `repeats` large square GEMMs with this torch build and thread
    count: the CPU's practical limit (no vendor figure applies to a shared VM). On a loaded
    machine this under-estimates the peak, so a fraction above 1 means the peak was measured
    while a neighbour ran."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * size ** 3 / best


def device_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from) for a device and dtype."""
    name = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        for (frag, dt), peak in GPU_PEAKS.items():
            if frag in gpu and dt == name:
                return peak, f"data sheet ({gpu}, dense {name})"
        return float("nan"), f"unknown peak for {gpu}"
    return measured_cpu_peak(dtype), f"measured {name} GEMM 2048^3 best of 10, {torch.get_num_threads()} threads"


@dataclass
class Timing:
    """One measured run: sentences, useful tokens, seconds, and model FLOPs."""

    label: str
    sentences: int
    tokens: int
    seconds: float
    flops: float

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def as_dict(self, peak: float | None = None) -> dict:
        d = {"label": self.label, "sentences": self.sentences, "tokens": self.tokens,
             "seconds": round(self.seconds, 4), "sentences_per_s": round(self.sentences_per_s, 2),
             "tokens_per_s": round(self.tokens_per_s, 1), "model_flops": self.flops}
        if peak:
            d["flops_fraction"] = self.flops / self.seconds / peak
        return d


def timed(label: str, fn: Callable[[], object], sentences: int, tokens: int, flops: float,
          sync: Callable[[], None] | None = None) -> Timing:
    """Run `fn` once and time it (with a device sync before reading the clock)."""
    t = time.perf_counter()
    fn()
    if sync:
        sync()
    return Timing(label, sentences, tokens, time.perf_counter() - t, flops)


@torch.inference_mode()
def reference_loop(model: torch.nn.Module, tokenizer, texts: Sequence[str], device: torch.device) -> np.ndarray:
    """The reference method's loop, line for line (mplm_sim.executor.EmbeddingLoader.
    get_embed_list_encoder): batch size 1, float32, masked mean of every hidden state, each
    moved to the host separately. Returns [N, K, H]."""
    out = []
    for text in texts:
        inputs = tokenizer([text], truncation=True, return_tensors="pt")
        hiddens = model(**inputs.to(device), output_hidden_states=True)["hidden_states"]
        mask = inputs["attention_mask"]
        emb = []
        for hidden in hiddens:
            emb.append(((hidden * mask.unsqueeze(2).float()).sum(1) / mask.sum(1).unsqueeze(-1).float())
                       .cpu().detach().numpy()[0])
        out.append(emb)
    return np.asarray(out, dtype=np.float32)


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def run_bench(corpus, model=None, *, dtype: str = "float32", device: str = "auto",
              token_budget: int | None = None, prefix: str | None = "", reference: bool = True,
              reference_sentences: int | None = None, workdir=None, progress: bool = False) -> dict:
    """Measure, in one run on one device: the full extraction (`extract`, store written),
    the bare forward over the same length-sorted batches, and the reference loop (batch size
    1, float32, host pooling), with tokens/s, sentences/s and the model-FLOPs fraction of each.

    `reference_sentences` times the reference on the first N sentences of each language only
    (its cost is linear in sentences, so per-sentence rates stay comparable).
    """
    import tempfile
    from pathlib import Path

    from babelmap.engine.batching import default_token_budget, make_batches
    from babelmap.engine.extract import extract
    from babelmap.engine.models import load_model

    lm = load_model(model, device=device, dtype=dtype, prefix=prefix)
    dev = lm.device
    budget = token_budget or default_token_budget(str(dev))
    texts_by_lang = {l: [t for t in corpus.text(l) if t is not None] for l in corpus.languages}
    counts = {l: lm.token_counts(ts, l) for l, ts in texts_by_lang.items()}
    n_sent = sum(len(v) for v in counts.values())
    n_tok = sum(sum(v) for v in counts.values())
    flops = model_flops(lm.model, [c for v in counts.values() for c in v])
    peak, peak_source = device_peak(dev, lm.dtype)
    sync = _sync(dev)
    rows: list[Timing] = []

    # 1. bare forward over the length-sorted batches extraction forms (no pooling, no writes)
    @torch.inference_mode()
    def bare():
        for lang, ts in texts_by_lang.items():
            for b in make_batches(np.arange(len(ts)), np.asarray(counts[lang]), budget):
                enc = lm.tokenize([ts[i] for i in b.sentences], lang)
                enc = {k: v.to(dev) for k, v in enc.items()}
                lm.model(**enc, output_hidden_states=True)
    bare()  # warm-up (allocator, kernels, thread pools)
    rows.append(timed("bare forward, length-sorted batches", bare, n_sent, n_tok, flops, sync))

    # 2. the full extraction, store written
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / "bench.h5"
        rows.append(timed("babelmap extract (store written)",
                          lambda: extract(corpus, out, lm, dtype=dtype, device=str(dev), token_budget=budget,
                                          prefix=prefix, progress=progress), n_sent, n_tok, flops, sync))

    # 3. the reference loop: batch size 1, float32, pooled on the host
    if reference:
        ref = load_model(model, device=str(dev), dtype="float32", prefix=prefix) if lm.dtype != torch.float32 else lm
        sub = {l: ts[:reference_sentences] if reference_sentences else ts for l, ts in texts_by_lang.items()}
        rc = [c for l in sub for c in counts[l][:len(sub[l])]]
        reftexts = [lm.prefix + t for ts in sub.values() for t in ts]
        rows.append(timed("reference loop (batch 1, fp32)",
                          lambda: reference_loop(ref.model, ref.tokenizer, reftexts, dev),
                          len(rc), int(sum(rc)), model_flops(ref.model, rc), sync))
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "model": lm.name, "dtype": str(lm.dtype).replace("torch.", ""), "token_budget": budget,
        "languages": len(corpus.languages), "sentences": n_sent, "tokens": n_tok,
        "non_embedding_parameters": non_embedding_parameters(lm.model),
        "peak_flops": peak, "peak_source": peak_source,
        "runs": [r.as_dict(peak) for r in rows],
    }
    by = {r.label: r for r in rows}
    ext = by["babelmap extract (store written)"]
    result["extract_over_bare_time"] = ext.seconds / by["bare forward, length-sorted batches"].seconds
    if reference:
        result["speedup_vs_reference"] = ext.sentences_per_s / by["reference loop (batch 1, fp32)"].sentences_per_s
    return result


def format_table(result: dict) -> str:
    """A plain-text table of a `run_bench` result."""
    lines = [f"device: {result['device']}   model: {result['model']}   dtype: {result['dtype']}   "
             f"{result['languages']} languages, {result['sentences']} sentences, {result['tokens']} tokens",
             f"peak: {result['peak_flops'] / 1e12:.3f} TFLOP/s ({result['peak_source']})",
             f"{'run':40s} {'sent/s':>9s} {'tok/s':>10s} {'seconds':>9s} {'FLOPs %':>8s}"]
    for r in result["runs"]:
        frac = r.get("flops_fraction")
        lines.append(f"{r['label']:40s} {r['sentences_per_s']:9.1f} {r['tokens_per_s']:10.0f} "
                     f"{r['seconds']:9.2f} {100 * frac if frac else float('nan'):7.1f}%")
    lines.append(f"extraction / bare forward time: {result['extract_over_bare_time']:.2f}x")
    if "speedup_vs_reference" in result:
        lines.append(f"extraction speed-up over the reference loop: {result['speedup_vs_reference']:.2f}x")
    return "\n".join(lines)
