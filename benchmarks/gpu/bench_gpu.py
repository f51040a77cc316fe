"""GPU extraction and similarity benchmark (run by benchmarks/gpu/run.sh; fits 8 minutes on one H200).

For two models, over FLORES-200 dev (204 languages x 997 sentences; --small: 6 x 40):
- `xlmr-base-random`: an XLM-R-base-size encoder (12 layers, 768 dims, 12 heads, 3072 FFN)
  with RANDOM weights, built from `XLMRobertaConfig` (no download; speed does not depend on
  the weight values), with the embedded default model's XLM-R sentencepiece tokenizer;
- `default`: the embedded multilingual-e5-small-q4 (12 layers, 384 dims).
Measured in one run: `babelmap extract` (bf16 forward by default on CUDA, float16 store
written) with sentences/s, real tokens/s, the useful share of padded tokens, the fraction of
the model-FLOPs limit, host (model-thread CPU) time per batch; and the plain sorted loop
(per language, sorted by length, batches of 32, output_hidden_states, masked mean of all
layers, to the host) as the peer on the same device. Then `babelmap similarity --device
cuda` on the default model's store against one bare torch Gram per layer.

Model FLOPs of a sentence of n real tokens: 2 * P * n + 4 * layers * hidden * n^2 (P =
non-embedding parameters; forward only; padding not counted); limit = FLOPs / seconds /
peak, with the H200 bf16 dense peak 989 TFLOP/s (engine.throughput.GPU_PEAKS).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


@torch.inference_mode()
def plain_loop(lm, texts: dict[str, list[str]], dev: torch.device) -> int:
    """The peer: per language, sorted by length, batches of 32, masked mean of all layers."""
    n = 0
    for lang, ts in texts.items():
        ts = sorted(ts, key=len, reverse=True)
        for i in range(0, len(ts), 32):
            enc = lm.tokenizer([lm.prefix + t for t in ts[i:i + 32]], padding=True, truncation=True,
                               max_length=lm.max_length, return_tensors="pt").to(dev)
            hs = lm.model(**enc, output_hidden_states=True).hidden_states
            m = enc["attention_mask"].unsqueeze(-1).to(hs[0].dtype)
            pooled = torch.stack([(h * m).sum(1) / m.sum(1) for h in hs], 1)
            pooled.float().cpu().numpy()
            n += len(ts[i:i + 32])
    return n


def bench_model(label: str, model, corpus, dev: torch.device, dtype: str, work: Path) -> dict:
    from babelmap.engine import extract as ex
    from babelmap.engine.models import load_model
    from babelmap.engine.throughput import device_peak, model_flops, non_embedding_parameters

    lm = load_model(model, device=str(dev), dtype=dtype)
    texts = {l: [t for t in corpus.text(l) if t is not None] for l in corpus.languages}
    warm = corpus.select(languages=corpus.languages[:2], first=64)
    ex.extract(warm, work / f"warm-{label}.h5", lm, device=str(dev), progress=False, overwrite=True)
    out = work / f"{label}.h5"
    sync(dev)
    t = time.perf_counter()
    ex.extract(corpus, out, lm, device=str(dev), progress=False, overwrite=True)
    sync(dev)
    secs = time.perf_counter() - t
    st = dict(ex.LAST_RUN)
    counts = [len(x) for l, ts in texts.items() for x in lm.tokenizer([lm.prefix + s for s in ts], truncation=True,
                                                                        max_length=lm.max_length)["input_ids"]]
    flops = model_flops(lm.model, counts)
    peak, source = device_peak(dev, lm.dtype)
    plain_loop(lm, {l: ts[:32] for l, ts in list(texts.items())[:2]}, dev)  # warm-up
    sync(dev)
    t = time.perf_counter()
    n_plain = plain_loop(lm, texts, dev)
    sync(dev)
    plain_s = time.perf_counter() - t
    tokens = int(sum(counts))
    res = {
        "model": label, "name": lm.name, "dtype": str(lm.dtype).replace("torch.", ""),
        "non_embedding_parameters": non_embedding_parameters(lm.model),
        "layers": lm.num_hidden_states - 1, "hidden": lm.hidden_size,
        "languages": len(corpus.languages), "sentences": len(counts), "tokens": tokens,
        "extract": {"seconds": secs, "sentences_per_s": len(counts) / secs, "tokens_per_s": tokens / secs,
                    "useful_token_share": st.get("tokens", 0) / max(1, st.get("padded_tokens", 1)),
                    "flops_fraction": flops / secs / peak if peak == peak else None,
                    "batches": st.get("batches"), "units": st.get("units"),
                    "host_seconds_per_batch": st.get("model_thread_cpu", 0) / max(1, st.get("batches", 1)),
                    "stage_seconds": {k: st.get(k) for k in ("tokenize_wait", "model", "writer", "writer_wait")},
                    "tokenizer_threads": st.get("tokenizer_threads")},
        "plain_sorted_loop": {"seconds": plain_s, "sentences_per_s": n_plain / plain_s,
                              "tokens_per_s": tokens / plain_s,
                              "flops_fraction": flops / plain_s / peak if peak == peak else None},
        "speedup_vs_plain_loop": plain_s / secs, "model_flops": flops, "peak_flops": peak, "peak_source": source,
        "store": str(out),
    }
    del lm
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def bench_similarity(store: Path, dev: torch.device, work: Path) -> dict:
    """`babelmap similarity --device` (a real subprocess, as a user runs it) vs one bare torch
    Gram per layer of the L2-normalised rows (mean cosine over the shared sentences)."""
    import h5py
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "babelmap", "similarity", str(store), "--device", dev.type,
                        "--out", str(work / "sim.h5"), "--no-progress"], env=env, capture_output=True, text=True)
    cli_s = time.perf_counter() - t
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
    return {"cli_seconds": cli_s, "cli_returncode": r.returncode, "cli_stderr_tail": r.stderr[-500:],
            "bare_read_seconds": read_s, "bare_gram_seconds": gram_s,
            "cli_over_bare_read_plus_gram": cli_s / (read_s + gram_s), "shape": [L, K, S, H]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="6 languages x 40 sentences, a 2-layer model (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import resolve_compute_dtype

    dev = torch.device(args.device)
    dtype = resolve_compute_dtype("auto", str(dev))
    t = time.perf_counter()
    corpus = read_corpus(SHARED_DATA / "flores200" / "dev", "flores")
    if args.small:
        corpus = corpus.select(languages=corpus.languages[:6], first=40)
    read_s = time.perf_counter() - t
    name = torch.cuda.get_device_name(dev).replace(" ", "-") if dev.type == "cuda" else "cpu"
    work = Path(tempfile.mkdtemp(prefix="babelmap-gpu-bench-"))
    results = {"device": name, "compute_dtype": dtype, "corpus": f"FLORES-200 dev {len(corpus.languages)} x "
               f"{len(corpus.sentence_ids)}", "read_corpus_seconds": read_s, "small": args.small,
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "models": []}
    models = [("default", None),
              ("xlmr-base-random" if not args.small else "xlmr-tiny-random", str(random_xlmr(work / "xlmr", args.small)))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_{name}{'_small' if args.small else ''}.json"

    def save() -> None:  # after every stage, so a run cut short still leaves what it measured
        path.write_text(json.dumps(results, indent=2, default=float))

    for label, model in models:
        r = bench_model(label, model, corpus, dev, dtype, work)
        results["models"].append(r)
        save()
        e = r["extract"]
        print(f"{label:18s} extract {e['sentences_per_s']:9.0f} sent/s {e['tokens_per_s']:11.0f} tok/s "
              f"useful {e['useful_token_share']:.3f} FLOPs {100 * (e['flops_fraction'] or float('nan')):5.1f}% "
              f"host/batch {1e3 * e['host_seconds_per_batch']:.2f} ms | plain loop "
              f"{r['plain_sorted_loop']['sentences_per_s']:9.0f} sent/s | {r['speedup_vs_plain_loop']:.2f}x", flush=True)
        if label == "default":  # similarity on the default model's store
            results["similarity"] = sim = bench_similarity(Path(r["store"]), dev, work)
            save()
            print(f"similarity: CLI {sim['cli_seconds']:.2f} s (exit {sim['cli_returncode']}), bare read "
                  f"{sim['bare_read_seconds']:.2f} s + Gram {sim['bare_gram_seconds']:.3f} s", flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
