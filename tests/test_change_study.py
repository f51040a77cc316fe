"""The pieces of the 204-language change study (benchmarks/run_change_study.py): a fine-tuned
head applied to a store (vs a direct loop), the matched-cosine change, joining chunked CKA
results, the scatter figure, and the held-out split (vs the forgetting study's own split)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from babelmap.engine.errors import BabelmapError
from babelmap.engine.store import write_store
from babelmap.kernels.cka import CKAResult

ROOT = Path(__file__).resolve().parents[1]


def _store(tmp_path, L=3, K=2, S=20, H=8, seed=0):
    rng = np.random.default_rng(seed)
    langs = [f"l{i}_Latn" for i in range(L)]
    ids = [f"dev:{j + 1}" for j in range(S)]
    E = rng.normal(size=(L, K, S, H)).astype(np.float32)
    mask = np.ones((L, S), bool)
    mask[1, [2, 7, 11]] = False  # sentences missing in one language
    path = write_store(tmp_path / "s.h5", langs, ids, E, mask=mask, dtype="float32")
    return path, langs, ids, E, mask


def test_head_accuracy_matches_a_direct_loop(tmp_path):
    from babelmap.analysis.change import head_accuracy

    path, langs, ids, E, mask = _store(tmp_path)
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 8)), rng.normal(size=4)
    labels = {s: int(rng.integers(0, 4)) for s in ids[::2] + ids[3::4]}  # a labelled subset
    for layer in (None, 0):
        acc, count = head_accuracy(path, W, b, labels, layer=layer)
        k = 1 if layer is None else 0
        for i, lang in enumerate(langs):
            right = seen = 0
            for j, s in enumerate(ids):
                if s not in labels or not mask[i, j]:
                    continue
                scores = [sum(float(E[i, k, j, h]) * W[c, h] for h in range(8)) + b[c] for c in range(4)]
                right += int(np.argmax(scores) == labels[s])
                seen += 1
            assert count[lang] == seen
            assert acc[lang] == pytest.approx(right / seen, abs=1e-12)
    assert count["l1_Latn"] < count["l0_Latn"]  # the missing sentences are not scored
    # a head that learns the labels exactly scores 1 (labels planted from the embeddings)
    planted = {s: int(np.argmax(E[0, 1, j] @ W.T + b)) for j, s in enumerate(ids)}
    assert head_accuracy(path, W, b, planted, languages=["l0_Latn"])[0] == {"l0_Latn": 1.0}
    with pytest.raises(BabelmapError, match="do not fit"):
        head_accuracy(path, W[:, :5], b, labels)
    with pytest.raises(BabelmapError, match="none of the labelled"):
        head_accuracy(path, W, b, {"dev:999": 0})


def _synthetic(langs, K=3, seed=0):
    rng = np.random.default_rng(seed)
    L = len(langs)
    return CKAResult(langs, list(range(K)), rng.uniform(0.2, 1, (K, L)), rng.uniform(0.1, 1, (K, L)),
                     rng.uniform(0.5, 1, (K, L)), rng.integers(50, 100, L))


def test_cosine_change_and_join():
    from scipy.stats import spearmanr

    from babelmap.analysis.change import correlate_change

    langs = [f"x{i:02d}_Latn" for i in range(12)]
    res = _synthetic(langs)
    np.testing.assert_array_equal(res.change("cosine"), 1 - res.cosine)
    assert "change_cosine" in res.to_pandas()
    with pytest.raises(ValueError, match="not 'count'"):
        res.change("count")
    vals = {l: float(i) ** 1.5 for i, l in enumerate(langs)}
    c = correlate_change(res, vals, source=langs[0], change="cosine", bootstrap=0)
    keep = list(range(1, 12))
    assert c.spearman[2] == pytest.approx(spearmanr(1 - res.cosine[2, keep], [vals[langs[i]] for i in keep])[0],
                                          abs=1e-12)
    # two halves joined give the whole back
    a, b = (CKAResult(ls, res.layers, res.cka_linear[:, sl], res.cka_debiased[:, sl], res.cosine[:, sl],
                      res.count[sl], attrs={"base_model": "m"})
            for ls, sl in ((langs[:5], slice(0, 5)), (langs[5:], slice(5, 12))))
    joined = CKAResult.concat([a, b])
    assert joined.languages == langs and joined.attrs == {"base_model": "m", "parts": 2}
    for name in ("cka_linear", "cka_debiased", "cosine", "count"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(res, name))
    with pytest.raises(ValueError, match="more than one"):
        CKAResult.concat([a, a])
    with pytest.raises(ValueError, match="other layers"):
        CKAResult.concat([a, _synthetic(["zz_Latn"], K=2)])


def test_scatter_figure(tmp_path):
    from babelmap.analysis.change import plot_change_scatter

    langs = [f"x{i:02d}_Latn" for i in range(20)]
    res = _synthetic(langs)
    rng = np.random.default_rng(3)
    files = plot_change_scatter(res, 2, {"distance": {l: rng.normal() for l in langs},
                                         "loss": {l: rng.normal() for l in langs[3:]}},
                                tmp_path / "scatter", source=langs[0])
    assert [f.suffix for f in files] == [".png", ".pdf"]
    assert all(f.stat().st_size > 5000 for f in files)


def test_held_out_split_is_whole_articles_after_the_adjustment_pairs():
    from conftest import shared

    from babelmap.analysis.topics import read_flores_topics

    flores = shared("flores200")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_change_study import held_out_split

    sp = held_out_split(flores, 300, 0.3, 0)
    tr, te = sp["train"], sp["test"]
    lab = read_flores_topics(flores / "metadata_dev.tsv")
    after = [s for s, c in zip(lab.sentence_ids, lab.categories) if c is not None and int(s.split(":")[1]) > 300]
    assert sorted(tr + te, key=lambda s: int(s[4:])) == after  # every labelled sentence after dev:300, once
    art = dict(zip(lab.sentence_ids, lab.articles))
    assert sp["article"] == {s: art[s] for s in after}
    assert not {art[s] for s in tr} & {art[s] for s in te}  # no article on both sides
    n_art = len({art[s] for s in after})
    assert 0.2 < len({art[s] for s in te}) / n_art < 0.4  # about 30% of the articles held out
    assert sp["categories"][sp["label"][te[0]]] == lab.categories[lab.sentence_ids.index(te[0])]
    assert held_out_split(flores, 300, 0.3, 0)["test"] == te != held_out_split(flores, 300, 0.3, 1)["test"]


def test_cut_store_subsets_and_joins_sentence_sets(tmp_path):
    from babelmap.engine.corpora.base import ParallelCorpus
    from babelmap.engine.store import open_store

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_change_study import cut_store

    langs, ids = ["aaa_Latn", "bbb_Latn"], [f"dev:{j}" for j in range(1, 9)]
    corpus = ParallelCorpus("toy", langs, ids, [[f"{l} {j}" for j in ids] for l in langs])
    E = np.random.default_rng(0).normal(size=(2, 3, 8, 4)).astype(np.float16)
    mask = np.ones((2, 8), bool)
    mask[1, 5] = False

    def store(name, cols):
        sel = corpus.select(sentence_ids=[ids[c] for c in cols])
        return write_store(tmp_path / name, langs, sel.sentence_ids, E[:, :, cols], mask=mask[:, cols],
                           attrs={"corpus_fingerprint": sel.fingerprint(), "pooling": "mean", "model": "m"})

    full = store("full.h5", list(range(8)))
    pick = ["dev:2", "dev:6", "dev:7"]
    sel = corpus.select(sentence_ids=pick)
    out = cut_store([full], tmp_path / "cut.h5", sel)
    with open_store(out) as st:
        assert st.sentence_ids == pick and st.languages == langs
        assert st.attrs["corpus_fingerprint"] == sel.fingerprint() != corpus.fingerprint()
        assert st.attrs["pooling"] == "mean" and st.attrs["model"] == "m"
        np.testing.assert_array_equal(st.mask, mask[:, [1, 5, 6]])
        np.testing.assert_array_equal(st.block()[0], E[0][:, [1, 5, 6]])
        np.testing.assert_array_equal(st.block()[1, :, 0], E[1, :, 1])
        assert not st.block()[1, :, 1].any()  # the missing sentence stays missing (zero row)
    # two disjoint sentence sets (a sample and its complement) joined give the whole store back
    a, b = store("a.h5", [0, 2, 5, 7]), store("b.h5", [1, 3, 4, 6])
    out = cut_store([a, b], tmp_path / "joined.h5", corpus)
    with open_store(out) as st, open_store(full) as ref:
        assert st.sentence_ids == ids and st.attrs["corpus_fingerprint"] == corpus.fingerprint()
        np.testing.assert_array_equal(st.block(), ref.block())
        np.testing.assert_array_equal(st.mask, ref.mask)
    with pytest.raises(SystemExit, match="in none of"):
        cut_store([a], tmp_path / "short.h5", corpus)


def test_partial_spearman_against_the_precision_matrix_and_a_loop():
    from scipy.stats import rankdata
    from scipy.stats import t as student_t

    from babelmap.analysis.change import partial_correlate_change, partial_spearman

    rng = np.random.default_rng(5)
    langs = [f"x{i:02d}_Latn" for i in range(40)]
    z = rng.normal(size=40)
    x = z + 0.5 * rng.normal(size=40)          # change driven by z ...
    y = z + 0.5 * rng.normal(size=40)          # ... and so is the measure: no link beyond z
    y2 = y + 2.0 * (x - z)                     # a measure that does follow x beyond z
    P = np.linalg.inv(np.corrcoef(np.vstack([rankdata(x), rankdata(y), rankdata(z)])))
    assert partial_spearman(x, y, z) == pytest.approx(-P[0, 1] / np.sqrt(P[0, 0] * P[1, 1]), abs=1e-12)
    K = 2
    res = CKAResult(langs, [0, 1], np.vstack([1 - x, 1 - x[::-1]]), np.ones((K, 40)), np.ones((K, 40)),
                    np.full(40, 50))
    vals, ctrl = dict(zip(langs, y)), dict(zip(langs, z))
    ctrl.pop(langs[7])  # a language without the control is left out
    pc = partial_correlate_change(res, vals, ctrl, source=langs[0], bootstrap=300, seed=2)
    keep = [i for i in range(40) if i not in (0, 7)]
    assert pc.n[0] == 38
    r = partial_spearman(x[keep], y[keep], z[keep])
    assert pc.rho[0] == pytest.approx(r, abs=1e-12)
    assert pc.p[0] == pytest.approx(2 * student_t.sf(abs(r) * np.sqrt(35 / (1 - r * r)), 35), rel=1e-9)
    idx = np.random.default_rng([2, 0]).integers(0, 38, size=(300, 38))
    xs, ys, zs = x[keep], y[keep], z[keep]
    boot = [partial_spearman(xs[i], ys[i], zs[i]) for i in idx]
    assert pc.low[0] == pytest.approx(np.nanquantile(boot, 0.025), abs=1e-9)
    assert pc.high[0] == pytest.approx(np.nanquantile(boot, 0.975), abs=1e-9)
    # plain Spearman of x and y is strong (both follow z); the partial one is not ...
    assert abs(pc.rho[0]) < 0.4 < np.corrcoef(rankdata(xs), rankdata(ys))[0, 1]
    # ... while a measure that follows x beyond z keeps a strong partial correlation
    pc2 = partial_correlate_change(res, dict(zip(langs, y2)), ctrl, source=langs[0], bootstrap=0)
    assert pc2.rho[0] > 0.6 and pc2.p[0] < 1e-4 and np.isnan(pc2.low[0])


def test_cli_correlates_the_cosine_change(tmp_path, capsys):
    import pandas as pd
    from scipy.stats import spearmanr

    from babelmap.cli import main

    langs = ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "por_Latn", "nld_Latn", "swe_Latn",
             "fin_Latn", "tur_Latn", "rus_Cyrl", "arb_Arab", "hin_Deva", "zho_Hans", "jpn_Jpan"]
    res = _synthetic(langs, seed=4)
    res.save(tmp_path / "change.h5")
    acc = np.random.default_rng(6).uniform(0.3, 0.8, 15)
    pd.DataFrame({"source": langs[0], "target": langs, "score": acc}).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    assert main(["compare", str(tmp_path / "change.h5"), "--source", langs[0], "--change", "cosine",
                 "--transfer", str(tmp_path / "t.tsv"), "--bootstrap", "20",
                 "--correlations", str(tmp_path / "corr.tsv")]) == 0
    assert "1 - cosine" in capsys.readouterr().out
    corr = pd.read_csv(tmp_path / "corr.tsv", sep="\t")
    assert set(corr.change) == {"cosine"}
    for k in range(3):
        assert corr.spearman[k] == pytest.approx(spearmanr(1 - res.cosine[k, 1:], acc[1:])[0], abs=1e-12)
