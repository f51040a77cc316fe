"""Extraction throughput of the default model on FLORES-200 dev against the reference method.

In one run, on the same sentences: (1) the bare model forward over our length-sorted batches
(the CPU limit), (2) `babelmap.engine.extract.extract` writing a real store, (3) the reference
implementation, PyPI `mplm-sim`'s own `mplm_sim.executor.get_emb` (batch size 1, float32, model
reloaded per language, pooling on the host), or its line-for-line equivalent
(`babelmap.engine.throughput.reference_loop`, model loaded once) when `mplm-sim` is absent.

    python benchmarks/bench_extract.py [--langs 10] [--sentences 200] [--device cpu] [--dtype float32]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import SHARED_DATA, peak_rss, write_json

LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "arb_Arab", "hin_Deva", "jpn_Jpan",
         "swh_Latn", "tur_Latn", "ell_Grek", "kor_Hang", "tha_Thai", "heb_Hebr", "amh_Ethi", "vie_Latn"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--langs", type=int, default=10)
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the embedded model)")
    ap.add_argument("--name", default=None, help="results file name (default: extract_<device>)")
    args = ap.parse_args()

    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.models import load_model
    from babelmap.engine.throughput import format_table, run_bench

    corpus = read_corpus(SHARED_DATA / "flores200", "flores").select(languages=LANGS[:args.langs],
                                                                    first=args.sentences)
    print(f"{len(corpus.languages)} languages x {len(corpus.sentence_ids)} sentences from FLORES-200 dev")
    with peak_rss() as mem_ours:
        res = run_bench(corpus, args.model, dtype=args.dtype, device=args.device, prefix="", reference=False)
    print(format_table(res))

    # The reference implementation, measured in the same run on the same sentences.
    lm = load_model(args.model, device=args.device, dtype="float32", prefix="")
    model_dir = str(Path(lm.tokenizer.name_or_path))
    texts = {l: [t for t in corpus.text(l) if t is not None] for l in corpus.languages}
    try:
        from mplm_sim.executor import get_emb
        how = "mplm_sim.executor.get_emb (PyPI mplm-sim 0.1.0): batch 1, fp32, model reloaded per language"

        def reference():
            for lang, ts in texts.items():
                get_emb(ts, model_dir, lang, torch.device(args.device))
    except ImportError as e:
        from babelmap.engine.throughput import reference_loop
        how = f"line-for-line equivalent (mplm-sim not importable: {e})"

        def reference():
            for ts in texts.values():
                reference_loop(lm.model, lm.tokenizer, ts, lm.device)
    del lm
    with peak_rss() as mem_ref:
        t = time.perf_counter()
        reference()
        ref_s = time.perf_counter() - t
    n = res["sentences"]
    ours = next(r for r in res["runs"] if r["label"].startswith("babelmap extract"))
    bare = next(r for r in res["runs"] if r["label"].startswith("bare"))
    ref_rate = n / ref_s
    summary = {
        "reference": how, "reference_seconds": ref_s, "reference_sentences_per_s": ref_rate,
        "reference_tokens_per_s": res["tokens"] / ref_s,
        "speedup_vs_reference": ours["sentences_per_s"] / ref_rate,
        "extract_over_bare_time": ours["seconds"] / bare["seconds"],
        "peak_rss_mib_ours": mem_ours["peak_mib"], "peak_rss_mib_reference": mem_ref["peak_mib"],
        "targets": {"speedup_vs_reference": ">= 2", "extract_over_bare_time": "<= 1.2"},
    }
    print(f"{'reference (' + how.split(':')[0] + ')':40s} {ref_rate:9.1f} {res['tokens'] / ref_s:10.0f} {ref_s:9.2f}")
    print(f"speed-up of extraction over the reference: {summary['speedup_vs_reference']:.2f}x (target >= 2)")
    print(f"extraction time / bare forward time:       {summary['extract_over_bare_time']:.2f}x (target <= 1.2)")
    print(f"peak RSS: ours {mem_ours['peak_mib']:.0f} MiB, reference {mem_ref['peak_mib']:.0f} MiB")
    write_json(args.name or f"extract_{args.device}", {"bench": res, **summary,
                                                      "command": "python benchmarks/bench_extract.py " +
                                                      " ".join(f"--{k} {v}" for k, v in vars(args).items() if v)})


if __name__ == "__main__":
    main()
