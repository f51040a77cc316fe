"""Extraction speed and padding on CPU: babelmap extract against its peers, in one run.

On each workload (FLORES-200 dev 10 languages x 100 sentences; eBible translations x their
first 32 verses), the same model (default: the embedded one), the same sentences and tokens,
timed interleaved A B B A (each method twice, the mean reported), in wall seconds and in CPU
seconds of the process (all threads: on a shared, loaded machine the steadier measure):
- `babelmap extract`: the real thing, store written (units, mixed-language padding-capped
  batches, writer thread);
- `plain sorted loop`: what a user writes: per language, sort by length, batches of 32,
  `output_hidden_states`, masked mean of all layers, to NumPy;
- `per-language budget batches`: the previous scheme (each language alone, longest first,
  4,096 padded tokens per batch), forward + the same pooling, no writing;
- `bare forward`: the model alone over babelmap's own batches (no pooling, no writing).
Also the useful-token share (real / padded) of each batching, at the CPU budget and, for
the per-language scheme, at the GPU one: on the timed sentences, and (tokenization only) on
FLORES 10 x 100 and on every eBible translation with all of its first 32 verses.

    python benchmarks/bench_extract.py [--flores-sentences 50] [--ebible-langs 10] [--threads 1]

The two workloads run as two single-threaded processes side by side (each its own A B B A
series), and their results are merged into benchmarks/results/extract_cpu.json.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import SHARED_DATA, write_json

FLORES_LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "arb_Arab", "hin_Deva", "jpn_Jpan",
                "swh_Latn", "tur_Latn"]


# -- the previous scheme, reimplemented here as the baseline ---------------------------------
def old_make_batches(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """One language: longest first, as many as fit `budget` padded tokens (the old make_batches)."""
    order = np.argsort(-lengths, kind="stable")
    out, i = [], 0
    while i < len(order):
        m = max(1, budget // max(1, int(lengths[order[i]])))
        out.append(order[i:i + m])
        i += m
    return out


def plain_batches(lengths: np.ndarray, size: int = 32) -> list[np.ndarray]:
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + size] for i in range(0, len(order), size)]


def share(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Real / padded tokens over (lengths, batches-of-rows) per language."""
    real = padded = 0
    for lengths, batches in groups:
        for b in batches:
            real += int(lengths[b].sum())
            padded += len(b) * int(lengths[b].max())
    return real / padded


def padding_shares(lm, corpus) -> dict[str, float]:
    """Useful-token shares of babelmap's batching and of the peers' on `corpus` (no forward)."""
    from babelmap.engine.batching import min_useful, sort_batches, token_ids
    from babelmap.engine.plan import plan_units, unit_sizes
    ids = {l: token_ids(lm, [t for t in corpus.text(l) if t is not None], l) for l in corpus.languages}
    lengths = {l: np.array([len(x) for x in v]) for l, v in ids.items()}
    out = {}
    for budget in (4096, 65536):
        target, cap = unit_sizes(budget, lm.num_hidden_states * lm.hidden_size * 2)
        real = padded = 0
        for u in plan_units(corpus.languages, corpus.mask, target=target, cap=cap):
            # every sentence is present here (FLORES; eBible translations with all 32 verses)
            u_len = np.concatenate([lengths[b.lang][b.sentences] for b in u.blocks])
            for b in sort_batches(u_len, budget, min_useful("cpu" if budget == 4096 else "cuda")):
                real, padded = real + b.tokens, padded + b.cost
        out[f"babelmap {budget}"] = real / padded
    out["plain loop 32"] = share([(v, plain_batches(v)) for v in lengths.values()])
    out["per-language 4096 (previous)"] = share([(v, old_make_batches(v, 4096)) for v in lengths.values()])
    out["per-language 65536 (previous)"] = share([(v, old_make_batches(v, 65536)) for v in lengths.values()])
    return out


def masked_mean(hidden, mask) -> np.ndarray:
    m = mask.unsqueeze(-1).to(torch.float32)
    return torch.stack([(h.float() * m).sum(1) / m.sum(1) for h in hidden], 1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flores-sentences", type=int, default=50, help="timed FLORES sentences per language")
    ap.add_argument("--ebible-langs", type=int, default=10, help="timed eBible translations")
    ap.add_argument("--verses", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the embedded model)")
    ap.add_argument("--workload", choices=("flores", "ebible"), default=None,
                    help="run one workload in this process (default: both, as two processes, merged)")
    args = ap.parse_args()
    if args.workload is None:
        return run_both(args)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from babelmap.engine.batching import min_useful, sort_batches, token_ids
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import extract
    from babelmap.engine.models import load_model
    from babelmap.engine.plan import plan_units, unit_sizes

    lm = load_model(args.model, device="cpu", dtype="float32")
    workloads = {}
    if args.workload == "flores":
        flores = read_corpus(SHARED_DATA / "flores200" / "dev", "flores").select(languages=FLORES_LANGS,
                                                                                first=args.flores_sentences)
        workloads[f"flores {len(flores.languages)}x{len(flores.sentence_ids)}"] = flores
    else:
        from bench_ebible import unpack_ebible
        eb = read_corpus(unpack_ebible(), "ebible").select(first=args.verses)
        keep = [l for i, l in enumerate(eb.languages) if eb.mask[i].all()][:args.ebible_langs]
        workloads[f"ebible {len(keep)}x{args.verses} verses"] = eb.select(languages=keep)

    results = {}
    padding_only = {}
    if args.workload == "flores":
        big = read_corpus(SHARED_DATA / "flores200" / "dev", "flores").select(languages=FLORES_LANGS, first=100)
        padding_only["flores 10x100"] = padding_shares(lm, big)
    else:
        full = read_corpus(unpack_ebible(), "ebible").select(first=args.verses)
        every = [l for i, l in enumerate(full.languages) if full.mask[i].all()]
        padding_only[f"ebible {len(every)}x{args.verses} verses"] = padding_shares(lm, full.select(languages=every))
    for k, v in padding_only.items():
        print(f"useful tokens on {k}: " + ", ".join(f"{a} {b:.3f}" for a, b in v.items()), flush=True)
    for name, corpus in workloads.items():
        texts = {l: [t for t in corpus.text(l) if t is not None] for l in corpus.languages}
        ids = {l: token_ids(lm, ts, l) for l, ts in texts.items()}
        lengths = {l: np.array([len(x) for x in v]) for l, v in ids.items()}
        n_sent = sum(len(v) for v in texts.values())
        n_tok = int(sum(v.sum() for v in lengths.values()))
        # babelmap's own units and batches (as extract forms them)
        K, H = lm.num_hidden_states, lm.hidden_size
        target, cap = unit_sizes(4096, K * H * 2)
        units = plan_units(corpus.languages, corpus.mask, target=target, cap=cap)
        ours = []
        for u in units:
            u_ids = [x for b in u.blocks for x in ids[b.lang]]
            u_len = np.array([len(x) for x in u_ids])
            ours.append((u_ids, u_len, sort_batches(u_len, 4096, min_useful("cpu"))))
        padding = {
            "babelmap (units, mixed, capped) 4096": sum(b.tokens for _, _, bs in ours for b in bs)
            / sum(b.cost for _, _, bs in ours for b in bs),
            "plain sorted loop (per language, 32)": share([(v, plain_batches(v)) for v in lengths.values()]),
            "per-language budget 4096 (previous)": share([(v, old_make_batches(v, 4096)) for v in lengths.values()]),
            "per-language budget 65536 (previous, GPU)": share([(v, old_make_batches(v, 65536))
                                                                for v in lengths.values()]),
        }
        pad_id = lm.tokenizer.pad_token_id

        def run_batches(groups, pool: bool):
            """Forward (and masked mean) over (ids, rows) batches, padded on the right."""
            with torch.inference_mode():
                for seqs, rows in groups:
                    w = max(len(seqs[j]) for j in rows)
                    x = torch.full((len(rows), w), pad_id, dtype=torch.long)
                    m = torch.zeros((len(rows), w), dtype=torch.long)
                    for r, j in enumerate(rows):
                        x[r, :len(seqs[j])] = torch.tensor(seqs[j])
                        m[r, :len(seqs[j])] = 1
                    out = lm.model(input_ids=x, attention_mask=m, output_hidden_states=True)
                    if pool:
                        masked_mean(out.hidden_states, m)

        def plain():
            # what a user writes: per language, sorted by length, batches of 32, masked mean
            run_batches([(ids[l], b) for l in corpus.languages for b in plain_batches(lengths[l])], True)

        def per_language():
            run_batches([(ids[l], b) for l in corpus.languages for b in old_make_batches(lengths[l], 4096)], True)

        def bare():
            run_batches([(u_ids, b.rows) for u_ids, _, bs in ours for b in bs], False)

        tmp = tempfile.mkdtemp(prefix="bench-extract-")

        def ours_run():
            out = Path(tmp) / "s.h5"
            extract(corpus, out, lm, device="cpu", token_budget=4096, progress=False, overwrite=True)

        methods = {"babelmap extract": ours_run, "plain sorted loop": plain,
                   "per-language budget batches": per_language, "bare forward": bare}
        ours_run()  # warm-up (allocator, thread pools, first-use conversions)
        times = {k: [] for k in methods}
        cpu = {k: [] for k in methods}
        loads = []
        names = list(methods)
        for order in (names, names[::-1]):  # A B C D D C B A
            for k in order:
                loads.append(os.getloadavg()[0])
                t, c = time.perf_counter(), time.process_time()
                methods[k]()
                times[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
        sec = {k: float(np.mean(v)) for k, v in times.items()}
        cpu_s = {k: float(np.mean(v)) for k, v in cpu.items()}
        res = {"sentences": n_sent, "tokens": n_tok, "units": len(units),
               "seconds": sec, "runs": times, "cpu_seconds": cpu_s, "cpu_runs": cpu,
               "tokens_per_s": {k: n_tok / v for k, v in sec.items()},
               "tokens_per_cpu_s": {k: n_tok / v for k, v in cpu_s.items()},
               "useful_token_share": padding,
               "speedup_vs_plain_loop": sec["plain sorted loop"] / sec["babelmap extract"],
               "speedup_vs_per_language_batches": sec["per-language budget batches"] / sec["babelmap extract"],
               "extract_over_bare_forward": sec["babelmap extract"] / sec["bare forward"],
               "cpu_speedup_vs_plain_loop": cpu_s["plain sorted loop"] / cpu_s["babelmap extract"],
               "cpu_speedup_vs_per_language_batches": cpu_s["per-language budget batches"] / cpu_s["babelmap extract"],
               "cpu_extract_over_bare_forward": cpu_s["babelmap extract"] / cpu_s["bare forward"],
               "load_average_during": [min(loads), max(loads)]}
        results[name] = res
        print(f"\n{name}: {n_sent} sentences, {n_tok} tokens, {len(units)} units "
              f"(load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs, "
              f"{torch.get_num_threads()} torch threads)")
        print(f"  {'method':32s} {'seconds':>8s} {'tok/s':>8s} {'CPU s':>8s} {'tok/CPU s':>9s}")
        for k in methods:
            print(f"  {k:32s} {sec[k]:8.2f} {n_tok / sec[k]:8.0f} {cpu_s[k]:8.2f} {n_tok / cpu_s[k]:9.0f}")
        for k, v in padding.items():
            print(f"  useful tokens, {k:44s} {v:.3f}")
        print(f"  wall time: extract vs plain loop {res['speedup_vs_plain_loop']:.2f}x, vs per-language batches "
              f"{res['speedup_vs_per_language_batches']:.2f}x, extract / bare forward "
              f"{res['extract_over_bare_forward']:.2f}x")
        print(f"  CPU time:  extract vs plain loop {res['cpu_speedup_vs_plain_loop']:.2f}x, vs per-language batches "
              f"{res['cpu_speedup_vs_per_language_batches']:.2f}x, extract / bare forward "
              f"{res['cpu_extract_over_bare_forward']:.2f}x")

    write_json(f"extract_cpu_{args.workload}", {
        "model": lm.name, "dtype": "float32", "token_budget": 4096, "torch_threads": torch.get_num_threads(),
        "workloads": results, "useful_token_share_tokenization_only": padding_only,
        "targets": {"useful_token_share": ">= 0.9", "speedup_vs_plain_loop": ">= 1.2 (FLORES)",
                    "speedup_vs_per_language_batches": ">= 1.8 (eBible 32-verse languages)"},
        "note": ("machine shared with other jobs (load average recorded per workload): wall times are noisy; "
                 "CPU seconds (process time, all threads) measure the work and are the steadier ratio"),
        "command": "python benchmarks/bench_extract.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
    })


def run_both(args) -> None:
    """Both workloads as two processes side by side, then one merged JSON."""
    import json
    import subprocess
    import sys
    from _common import RESULTS
    common = [f"--flores-sentences={args.flores_sentences}", f"--ebible-langs={args.ebible_langs}",
              f"--verses={args.verses}", f"--threads={args.threads}"] + (["--model", args.model] if args.model else [])
    procs = [subprocess.Popen([sys.executable, __file__, "--workload", w, *common]) for w in ("flores", "ebible")]
    if any(p.wait() for p in procs):
        raise SystemExit("a workload failed")
    merged: dict = {}
    for w in ("flores", "ebible"):
        part = json.loads((RESULTS / f"extract_cpu_{w}.json").read_text())
        merged.setdefault("runs", {})[w] = {k: part.pop(k) for k in ("machine", "command")}
        workloads = part.pop("workloads")
        merged.update(part)
        merged.setdefault("workloads", {}).update(workloads)
        (RESULTS / f"extract_cpu_{w}.json").unlink()
    write_json("extract_cpu", merged)


if __name__ == "__main__":
    main()
