"""babelmap.encode: length-sorted batches (what encode does) against batches in input order (the
naive loop), same model, same texts, same batch size; interleaved A B B A. Also the largest
difference between the two outputs (padding must not change the numbers).

    python benchmarks/bench_encode.py [--n 256] [--batch-size 32] [--model DIR]

Texts: the first n/4 FLORES-200 dev sentences of four languages of different scripts and
lengths (eng_Latn, deu_Latn, zho_Hans, tam_Taml), interleaved, so input order mixes lengths.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import SHARED_DATA, write_json

LANGS = ("eng_Latn", "deu_Latn", "zho_Hans", "tam_Taml")


def texts(n: int) -> list[str]:
    per = n // len(LANGS)
    rows = [(SHARED_DATA / "flores200" / "dev" / f"{l}.dev").read_text(encoding="utf-8").splitlines()[:per]
            for l in LANGS]
    return [r[i] for i in range(per) for r in rows]


def padded_tokens(lengths: np.ndarray, batch_size: int) -> int:
    """Tokens the model runs over: each batch padded to its longest text."""
    return int(sum(len(b) * b.max() for b in np.split(lengths, range(batch_size, len(lengths), batch_size))))


def input_order(lm, items: list[str], batch_size: int) -> np.ndarray:
    """The naive loop: batches in the order given."""
    out = []
    for s in range(0, len(items), batch_size):
        out.append(lm.embed(lm.tokenize(items[s:s + batch_size])).cpu().numpy())
    return np.concatenate(out)


def main() -> None:
    import torch

    import babelmap
    from babelmap.encoding import cached_model
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    items = texts(args.n)
    lm = cached_model(args.model, device="cpu")
    babelmap.encode(items[:8], model=lm)                          # warm-up
    runs = {"sorted": [], "input_order": []}
    outs = {}
    for name in ("sorted", "input_order", "input_order", "sorted"):
        t = time.perf_counter()
        if name == "sorted":
            outs[name] = babelmap.encode(items, model=lm, batch_size=args.batch_size)
        else:
            outs[name] = input_order(lm, items, args.batch_size)
        runs[name].append(time.perf_counter() - t)
    tok = np.asarray(lm.token_counts(items))
    padded = {"sorted": padded_tokens(np.sort(tok)[::-1], args.batch_size),
              "input_order": padded_tokens(tok, args.batch_size)}
    diff = float(np.abs(outs["sorted"] - outs["input_order"]).max())
    load = os.getloadavg()[0]
    best = {k: min(v) for k, v in runs.items()}
    ratio = best["input_order"] / best["sorted"]
    print(f"{'batching':<12} {'best s':>8} {'runs s':>18}  texts/s")
    for k, v in runs.items():
        print(f"{k:<12} {best[k]:8.2f} {', '.join(f'{x:.2f}' for x in v):>18}  {len(items) / best[k]:7.1f}")
    print(f"padded tokens: sorted {padded['sorted']}, input order {padded['input_order']} "
          f"({padded['input_order'] / padded['sorted']:.2f}x)")
    print(f"input order / sorted = {ratio:.2f}x; max |difference| = {diff:.2e}; {len(items)} texts, "
          f"{sum(tok)} tokens, batch {args.batch_size}; torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f} (other jobs share this machine)")
    write_json("encode", {"n": len(items), "batch_size": args.batch_size, "model": lm.name,
                          "tokens": int(sum(tok)), "padded_tokens": padded, "seconds": runs, "best": best, "ratio_input_over_sorted": ratio,
                          "max_abs_difference": diff, "load_average": load})


if __name__ == "__main__":
    main()
