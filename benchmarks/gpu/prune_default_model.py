"""Write a copy of the default model's `E5S1` file whose word-embedding rows of tokens that
never occur in a corpus are zeroed, so that it compresses to fit the GPU runner's 64 MiB
transfer (the original is 68 MiB). Every sentence of that corpus gets exactly the original
model's output (checked by `--check`); the store records a different fingerprint.

    python benchmarks/gpu/prune_default_model.py FLORES_DEV_DIR OUT.bin [--check 40]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def used_token_ids(corpus_dir: str) -> set[int]:
    """Every token id the default model's tokenizer gives the corpus (prefix and specials in)."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.models import load_model
    lm = load_model(None, device="cpu")
    corpus = read_corpus(corpus_dir, "flores")
    ids: set[int] = set(lm.tokenizer.all_special_ids)
    for lang in corpus.languages:
        texts = [t for t in corpus.text(lang) if t is not None]
        for row in lm.tokenizer([lm.prefix + t for t in texts], truncation=True, max_length=lm.max_length)["input_ids"]:
            ids.update(row)
    return ids


def prune(src: Path, dst: Path, keep: set[int]) -> tuple[int, int]:
    """Copy `src` to `dst` with the Q4_0 blocks of emb.word rows not in `keep` zeroed."""
    from babelmap.engine.models.default_e5 import QK, read_e5
    e5 = read_e5(src)
    dtype, count, raw = e5.tensors["emb.word"]
    assert dtype == 1 and count == e5.vocab * e5.hidden, (dtype, count)
    data = bytearray(src.read_bytes())
    start = raw.obj is not None and (np.frombuffer(raw, np.uint8).ctypes.data - np.frombuffer(raw.obj, np.uint8).ctypes.data)
    row_bytes = e5.hidden // QK * 18
    dropped = 0
    for tok in range(e5.vocab):
        if tok not in keep:
            data[start + tok * row_bytes:start + (tok + 1) * row_bytes] = bytes(row_bytes)
            dropped += 1
    dst.write_bytes(bytes(data))
    return e5.vocab - dropped, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--check", type=int, default=0, help="compare N sentences per 5 languages with the original")
    a = ap.parse_args()
    from babelmap.engine.models.default_e5 import source_path
    keep = used_token_ids(a.corpus)
    kept, dropped = prune(source_path(), Path(a.out), keep)
    print(f"kept {kept} rows, zeroed {dropped}")
    if a.check:
        import tempfile

        from babelmap.encoding import encode
        from babelmap.engine.corpora import read_corpus
        from babelmap.engine.models import load_model
        from babelmap.engine.models.default_e5 import convert
        tmp = Path(tempfile.mkdtemp()) / "pruned"
        convert(Path(a.out), tmp, progress=False)
        orig, pruned = load_model(None, device="cpu"), load_model(str(tmp), device="cpu")
        pruned.prefix = orig.prefix
        corpus = read_corpus(a.corpus, "flores")
        worst = 0.0
        for lang in corpus.languages[:: len(corpus.languages) // 5][:5]:
            texts = [t for t in corpus.text(lang)[:a.check] if t is not None]
            worst = max(worst, float(np.abs(encode(texts, orig) - encode(texts, pruned)).max()))
        print(f"max |original - pruned| over {a.check} sentences x 5 languages: {worst:.3g}")


if __name__ == "__main__":
    main()
