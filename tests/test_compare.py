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
    # stores that must be refused: copies of the tuned store relabelled as mean-pooled, or as
    # extracted from another corpus (the refusal reads the provenance attributes)
    import shutil

    import h5py
    for tag, key, value in (("base_mean", "pooling", "mean"),
                            ("other_corpus", "corpus_fingerprint", synthetic_corpus(seed=7).fingerprint())):
        shutil.copy(out["tuned"], d / f"{tag}.h5")
        with h5py.File(d / f"{tag}.h5", "a") as f:
            f.attrs[key] = value
        out[tag] = d / f"{tag}.h5"
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


# ---- analysis: correlation of the change with distance and transfer -------------------------
def synthetic_result(seed: int = 0):
    """CKAResult whose change at layer k is k * 0.05 * distance(target, source) + noise."""
    from babelmap.kernels.matrix import LanguageMatrix

    rng = np.random.default_rng(seed)
    langs = ["deu_Latn", "eng_Latn", "fra_Latn", "arb_Arab", "zho_Hans", "rus_Cyrl", "hin_Deva",
             "spa_Latn", "jpn_Jpan", "tur_Latn", "fin_Latn", "pes_Arab"]
    L, K = len(langs), 4
    sim = rng.uniform(0, 1, size=(L, L))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    matrix = LanguageMatrix(langs, sim, "toy")
    dist = -sim[langs.index("eng_Latn")]
    change = np.array([k * 0.05 * dist + 0.5 + 0.002 * rng.normal(size=L) for k in range(K)])
    change[0] = 0.01 * rng.normal(size=L)  # layer 0: unrelated noise
    cka = 1 - change
    res = CKAResult(langs, list(range(K)), cka, cka, np.ones((K, L)), np.full(L, 100))
    return res, matrix, dist


def test_correlations_match_scipy_and_bootstrap_loop():
    from scipy.stats import pearsonr, spearmanr

    from babelmap.analysis.change import correlate_change, distance_row

    res, matrix, dist = synthetic_result()
    values = distance_row(matrix, "eng_Latn", res.languages)
    assert values["deu_Latn"] == pytest.approx(-matrix.get("eng_Latn", "deu_Latn"))
    c = correlate_change(res, values, source="eng_Latn", name="toy", bootstrap=200, seed=3)
    assert "eng_Latn" not in c.languages and len(c.languages) == 11
    keep = [i for i, l in enumerate(res.languages) if l != "eng_Latn"]
    for k in range(4):
        x, y = 1 - res.cka_linear[k, keep], dist[keep]
        assert c.pearson[k] == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
        assert c.pearson_p[k] == pytest.approx(pearsonr(x, y)[1], rel=1e-9)
        assert c.spearman[k] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
        assert c.spearman_p[k] == pytest.approx(spearmanr(x, y)[1], rel=1e-9)
        # bootstrap: the same resamples through SciPy one by one
        idx = np.random.default_rng([3, k]).integers(0, len(x), size=(200, len(x)))
        pb = [pearsonr(x[i], y[i])[0] for i in idx]
        sb = [spearmanr(x[i], y[i])[0] for i in idx]
        assert c.pearson_low[k] == pytest.approx(np.nanquantile(pb, 0.025), abs=1e-10)
        assert c.spearman_high[k] == pytest.approx(np.nanquantile(sb, 0.975), abs=1e-10)
    # the constructed dependence: strong at layers 1..3, none at layer 0
    assert np.all(c.pearson[1:] > 0.9) and np.all(c.pearson_p[1:] < 1e-3)
    assert abs(c.pearson[0]) < 0.8 and c.pearson_low[0] < 0 < c.pearson_high[0] or c.pearson_p[0] > 0.01
    df = c.to_pandas()
    assert list(df.layer) == [0, 1, 2, 3] and df.loc[2, "pearson"] == c.pearson[2]


def test_transfer_table_codes_and_figures(tmp_path):
    from babelmap.analysis.change import (correlate_all, plot_change_by_layer, plot_correlation_by_layer,
                                          read_transfer, table)

    res, matrix, dist = synthetic_result()
    codes = {"deu_Latn": "de", "eng_Latn": "en", "fra_Latn": "fr", "arb_Arab": "ar", "zho_Hans": "zh",
             "rus_Cyrl": "ru", "hin_Deva": "hi", "spa_Latn": "es", "jpn_Jpan": "ja", "tur_Latn": "tr",
             "fin_Latn": "fi", "pes_Arab": "fa"}
    rng = np.random.default_rng(1)
    score = {l: 30 + 60 * sim_i + rng.normal() for l, sim_i in zip(res.languages, -dist)}
    with open(tmp_path / "xpos.csv", "w") as fh:
        fh.write(",task_type,lang_train,lang_pred,score\n")
        for i, (l, c) in enumerate(codes.items()):
            fh.write(f"{i},tc,en,{c},{score[l]}\n")
            fh.write(f"{i + 100},tc,de,{c},1.0\n")  # another source: ignored
        fh.write("999,tc,en,xx9,50\n")  # unknown code: reported, not fatal
    transfer, unmatched = read_transfer(tmp_path / "xpos.csv", "eng_Latn", res.languages)
    assert unmatched == ["xx9"]
    assert set(transfer) == set(res.languages)  # ar -> arb_Arab, fa -> pes_Arab via macrolanguages
    assert transfer["pes_Arab"] == pytest.approx(score["pes_Arab"])
    corrs = correlate_all(res, "eng_Latn", measures={"toy": matrix}, transfer=transfer, bootstrap=100)
    assert set(corrs) == {"toy", "transfer"}
    # transfer is high where the distance is small: change correlates negatively with it
    assert np.all(corrs["transfer"].spearman[1:] < -0.8)
    assert len(table(corrs)) == 8
    files = plot_change_by_layer(res, tmp_path / "change", color_by=transfer, color_label="transfer",
                                 source="eng_Latn")
    files += plot_correlation_by_layer(corrs, tmp_path / "corr.png")
    for f in files:
        assert f.exists() and f.stat().st_size > 5000


def test_real_xpos_table():
    from conftest import shared

    from babelmap.analysis.change import read_transfer

    path = shared("xpos", "udpos-ft-10000.csv")
    langs = ["deu_Latn", "eng_Latn", "fra_Latn", "arb_Arab", "zho_Hans", "pes_Arab", "nob_Latn"]
    transfer, unmatched = read_transfer(path, "eng_Latn", langs)
    assert set(transfer) == set(langs)
    import pandas as pd
    df = pd.read_csv(path)
    en = df[df.lang_train == "en"].set_index("lang_pred").score
    assert transfer["deu_Latn"] == pytest.approx(en["de"])
    assert transfer["pes_Arab"] == pytest.approx(en["fa"])
    assert transfer["nob_Latn"] == pytest.approx(en["no"])
    assert len(unmatched) == 105 - 7 and "af" in unmatched  # targets the result does not have


def test_cli_correlates_a_saved_result(tmp_path, capsys):
    import pandas as pd

    res, matrix, dist = synthetic_result()
    res.save(tmp_path / "change.h5")
    matrix.to_tsv(tmp_path / "toy.tsv")
    with open(tmp_path / "transfer.tsv", "w") as fh:
        fh.write("source\ttarget\tscore\n")
        for l, s in zip(res.languages, -dist):
            fh.write(f"eng_Latn\t{l}\t{30 + 60 * s}\n")
    rc = main(["compare", str(tmp_path / "change.h5"), "--source", "eng_Latn", "--measure", str(tmp_path / "toy.tsv"),
               "--transfer", str(tmp_path / "transfer.tsv"), "--bootstrap", "50", "--figures", str(tmp_path / "figs"),
               "--correlations", str(tmp_path / "corr.tsv")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Spearman by layer" in out and "transfer" in out
    corr = pd.read_csv(tmp_path / "corr.tsv", sep="\t")
    assert set(corr.measure) == {"toy", "transfer"} and len(corr) == 8
    from scipy.stats import spearmanr
    keep = [i for i, l in enumerate(res.languages) if l != "eng_Latn"]
    row = corr[(corr.measure == "toy") & (corr.layer == 2)].iloc[0]
    assert row.spearman == pytest.approx(spearmanr(1 - res.cka_linear[2, keep], dist[keep])[0], abs=1e-12)
    for f in ("change_by_layer.png", "change_by_layer.pdf", "correlation_by_layer.png"):
        assert (tmp_path / "figs" / f).stat().st_size > 5000
    # correlation options without a source are refused
    assert main(["compare", str(tmp_path / "change.h5"), "--transfer", str(tmp_path / "transfer.tsv")]) == 1
    assert "--source" in capsys.readouterr().err
