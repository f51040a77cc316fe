"""End to end: a tiny model and a copy whose upper layers are perturbed more than the lower
ones -> `extract` both -> `babelmap compare` -> change grows with depth; refusals through the CLI."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from babelmap.cli import main
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.store import open_store
from babelmap.kernels.cka import CKAResult

LETTERS = {"aaa_Latn": "abcdefghij", "bbb_Latn": "klmnopqrst", "ccc_Cyrl": "абвгдежзик"}


def synthetic_corpus(n: int = 48, seed: int = 0, name: str = "synthetic") -> ParallelCorpus:
    """Random 'words' over a per-language alphabet; a few sentences missing in one language."""
    rng = random.Random(seed)
    langs = sorted(LETTERS)
    texts = []
    for lang in langs:
        row = []
        for j in range(n):
            if lang == "bbb_Latn" and j % 11 == 5:
                row.append(None)
                continue
            words = ["".join(rng.choice(LETTERS[lang]) for _ in range(rng.randint(2, 7)))
                     for _ in range(rng.randint(3, 12))]
            row.append(" ".join(words) + ".")
        texts.append(row)
    return ParallelCorpus(name, langs, [f"s{j}" for j in range(n)], texts)


def perturbed_copy(src: Path, dst: Path, scale: float = 0.005, seed: int = 1) -> Path:
    """Copy of a tiny BERT whose encoder layer i >= 1 gets Gaussian weight noise of std scale * i."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(src))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, layer in enumerate(model.encoder.layer):
            if i >= 1:
                for p in layer.parameters():
                    p.add_(torch.randn(p.shape, generator=g) * scale * i)
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dst))
    return dst


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a loaded 2-core machine spend their time in thread hand-offs."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, one_torch_thread):
    from babelmap.engine.extract import extract
    from tiny import make_tiny_model

    d = tmp_path_factory.mktemp("compare")
    base = make_tiny_model(d / "base", "bert", layers=4, hidden=32)
    tuned = perturbed_copy(base, d / "tuned")
    corpus = synthetic_corpus()
    out = {}
    for tag, model in (("base", base), ("tuned", tuned)):
        out[tag] = extract(corpus, d / f"{tag}.h5", str(model), pooling="cls", device="cpu",
                           store_dtype="float32", progress=False)
    out["base_mean"] = extract(corpus, d / "base_mean.h5", str(base), pooling="mean", device="cpu",
                               store_dtype="float32", progress=False)
    out["other_corpus"] = extract(synthetic_corpus(seed=7), d / "other.h5", str(tuned), pooling="cls",
                                  device="cpu", store_dtype="float32", progress=False)
    out["dir"] = d
    return out


def test_change_grows_with_depth(stores, capsys):
    d = stores["dir"]
    rc = main(["compare", str(stores["base"]), str(stores["tuned"]), "--out", str(d / "change.h5"),
               "--rbf", "--device", "cpu", "--tsv", str(d / "change.tsv"), "--no-progress"])
    assert rc == 0
    assert "change(linear)" in capsys.readouterr().out
    res = CKAResult.load(d / "change.h5")
    assert res.layers == [0, 1, 2, 3, 4]
    assert res.attrs["base_pooling"] == "cls" and res.attrs["tuned_pooling"] == "cls"
    with open_store(stores["base"]) as s:
        np.testing.assert_array_equal(res.count, s.mask.sum(1))
    for measure in ("cka_linear", "cka_debiased", "cka_rbf"):
        change = res.change(measure)  # [layers, languages]
        # CLS pooling: hidden state 0 is the same vector for every sentence (token, position 0,
        # type embedding), so CKA is undefined there (zero variance) and reported as NaN
        assert np.all(np.isnan(change[0])), measure
        # hidden state 1 (encoder layer 0) is untouched: no change
        np.testing.assert_allclose(change[1], 0.0, atol=1e-5, err_msg=measure)
        # every perturbed layer adds noise: change strictly grows from layer 1 to 4 for every language
        assert np.all(np.diff(change[1:], axis=0) > 1e-4), (measure, change)
    np.testing.assert_allclose(res.cosine[:2], 1.0, atol=1e-5)
    # the matched cosine moves too, but far less visibly (a large shared component)
    assert np.all(res.cosine[4] < res.cosine[2]) and np.all(res.cosine[2] < 1 - 1e-6)
    import pandas as pd
    tsv = pd.read_csv(d / "change.tsv", sep="\t")
    assert len(tsv) == 5 * 3
    row = tsv[(tsv.language == "ccc_Cyrl") & (tsv.layer == 4)].iloc[0]
    assert row.cka_linear == pytest.approx(res.get("ccc_Cyrl", 4), rel=1e-12)


@pytest.mark.parametrize("other,message", [("base_mean", "pooled differently"),
                                           ("other_corpus", "not from the same corpus")])
def test_cli_refuses_mismatched_stores(stores, capsys, other, message):
    out = stores["dir"] / "refused.h5"
    rc = main(["compare", str(stores["base"]), str(stores[other]), "--out", str(out), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
