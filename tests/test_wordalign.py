"""Aligned vs unrelated word distances, retrieval and the report, against NumPy/SciPy references."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import distance

from babelmap.analysis.wordalign import analyse, build_pairs, cosine_distance, l2_distance, write_report
from babelmap.engine.errors import StoreError
from babelmap.engine.words import open_words, write_word_store
from babelmap.engine.alignments import Alignment
from babelmap.kernels.align import align_numpy


def _store(path, seed=0, K=3, H=8, S=20, noise=0.3):
    """English words random, German = the same words permuted plus noise (stronger in layer 0)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 7, S)
    lens[5] = 0  # an empty sentence
    off = np.r_[0, np.cumsum(lens)]
    N = off[-1]
    base = rng.standard_normal((N, H))
    eng = np.stack([base + 0.1 * k for k in range(K)])
    deu = np.empty_like(eng)
    perms = []
    for s in range(S):
        p = rng.permutation(lens[s])
        perms.append(p)
        for k in range(K):
            deu[k, off[s]:off[s + 1]] = eng[k, off[s]:off[s + 1]][p] + noise * (K - k) * rng.standard_normal((lens[s], H))
    toks = [f"w{i}" for i in range(N)]
    write_word_store(path, [str(i) for i in range(S)], {"eng_Latn": (off, toks, eng), "deu_Latn": (off, toks, deu)},
                     dtype="float32")
    truth = Alignment.from_lists([sorted((int(p[j]), j) for j in range(len(p))) for p in perms])
    return path, truth


def test_row_distances_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 7)), rng.standard_normal((50, 7))
    np.testing.assert_allclose(cosine_distance(a, b), [distance.cosine(x, y) for x, y in zip(a, b)], rtol=1e-12)
    np.testing.assert_allclose(l2_distance(a, b), [distance.euclidean(x, y) for x, y in zip(a, b)], rtol=1e-12)


def test_unrelated_pairs_are_from_other_sentences(tmp_path):
    path, truth = _store(tmp_path / "w.h5")
    ws = open_words(path)
    off = ws.offsets("deu_Latn")
    p = build_pairs(truth, ws.offsets("eng_Latn"), off, seed=3)
    sent_of = np.searchsorted(off, np.arange(off[-1]), side="right") - 1
    assert len(p.src) == len(truth)
    assert (sent_of[p.unrelated] != sent_of[p.tgt]).all()
    assert len(set(sent_of[p.unrelated].tolist())) > 10  # spread over many sentences
    q = build_pairs(truth, ws.offsets("eng_Latn"), off, seed=3)
    assert np.array_equal(p.unrelated, q.unrelated)  # fixed seed
    assert not np.array_equal(p.unrelated, build_pairs(truth, ws.offsets("eng_Latn"), off, seed=4).unrelated)


def test_measures_match_numpy_reference(tmp_path):
    path, truth = _store(tmp_path / "w.h5")
    rep = analyse(path, truth, "eng_Latn", "deu_Latn", seed=1, progress=False)
    ws = open_words(path)
    so, to = ws.offsets("eng_Latn"), ws.offsets("deu_Latn")
    p = build_pairs(truth, so, to, seed=1)
    for k in range(3):
        E, D = ws.embeddings("eng_Latn", k).astype(np.float64), ws.embeddings("deu_Latn", k).astype(np.float64)
        ca = np.array([distance.cosine(E[i], D[j]) for i, j in zip(p.src, p.tgt)])
        cu = np.array([distance.cosine(E[i], D[j]) for i, j in zip(p.src, p.unrelated)])
        la = np.array([distance.euclidean(E[i], D[j]) for i, j in zip(p.src, p.tgt)])
        lu = np.array([distance.euclidean(E[i], D[j]) for i, j in zip(p.src, p.unrelated)])
        assert rep.get("model", k, "cos_aligned") == pytest.approx(ca.mean(), rel=1e-6)
        assert rep.get("model", k, "cos_unrelated") == pytest.approx(cu.mean(), rel=1e-6)
        assert rep.get("model", k, "cos_diff") == pytest.approx((cu - ca).mean(), rel=1e-6)
        assert rep.get("model", k, "cos_diff_se") == pytest.approx((cu - ca).std(ddof=1) / np.sqrt(len(ca)), rel=1e-6)
        assert rep.get("model", k, "l2_aligned") == pytest.approx(la.mean(), rel=1e-6)
        assert rep.get("model", k, "l2_diff") == pytest.approx((lu - la).mean(), rel=1e-6)
        assert rep.get("model", k, "cos_closer") == pytest.approx((ca < cu).mean())
        # retrieval by brute force
        hits, chance = [], []
        for s in range(truth.n_sentences):
            for i, j in truth.sentence(s):
                sims = [1 - distance.cosine(E[so[s] + i], D[t]) for t in range(to[s], to[s + 1])]
                hits.append(int(np.argmax(sims)) == j)
                chance.append(1 / (to[s + 1] - to[s]))
        assert rep.get("model", k, "retrieval") == pytest.approx(np.mean(hits))
        assert rep.get("model", k, "chance") == pytest.approx(np.mean(chance))
    # the synthetic data: noise shrinks with depth, so alignment improves with the layer
    assert rep.get("model", 2, "retrieval") > rep.get("model", 0, "retrieval")
    assert rep.get("model", 2, "cos_aligned") < rep.get("model", 0, "cos_aligned")


def test_checkpoint_comparison_and_report(tmp_path):
    base, truth = _store(tmp_path / "base.h5", noise=0.6)
    adj, _ = _store(tmp_path / "adj.h5", noise=0.1)  # same words and permutations (seed), less noise
    rep = analyse({"base": base, "adjusted": adj}, truth, "eng_Latn", "deu_Latn", progress=False)
    assert rep.checkpoints == ["base", "adjusted"]
    for k in range(3):
        assert rep.get("adjusted", k, "cos_aligned") < rep.get("base", k, "cos_aligned")
    files = write_report(rep, tmp_path / "rep", hist_layer=1)
    names = sorted(f.name for f in files)
    assert names == sorted(["wordalign_table.csv", "wordalign_table.md", "wordalign_distances.png",
                            "wordalign_distances.pdf", "wordalign_retrieval.png", "wordalign_retrieval.pdf",
                            "wordalign_hist.png", "wordalign_hist.pdf"])
    import pandas as pd
    df = pd.read_csv(tmp_path / "rep" / "wordalign_table.csv")
    assert len(df) == 6 and df.retrieval.between(0, 1).all()
    # the model's own alignment at a layer reaches retrieval 1 there by construction
    ws = open_words(base)
    own = align_numpy(ws.embeddings("eng_Latn", 2), ws.offsets("eng_Latn"), ws.embeddings("deu_Latn", 2),
                      ws.offsets("deu_Latn"))
    assert analyse(base, own, "eng_Latn", "deu_Latn", layers=[2], progress=False).get("model", 2, "retrieval") == 1.0


def test_mismatched_checkpoints_are_refused(tmp_path):
    a, truth = _store(tmp_path / "a.h5", seed=0)
    b, _ = _store(tmp_path / "b.h5", seed=1)
    with pytest.raises(StoreError, match="other sentences or words"):
        analyse({"a": a, "b": b}, truth, "eng_Latn", "deu_Latn", progress=False)


@pytest.mark.slow
def test_cli_words_align_report(tiny_bert, tmp_path, flores_dir, capsys):
    """`babelmap words` then `babelmap align --report` on 12 real FLORES sentences, tiny model."""
    import torch

    from babelmap.cli import main
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        w = tmp_path / "w.h5"
        assert main(["words", "--corpus", str(flores_dir / "dev"), "--format", "flores", "--langs", "eng_Latn",
                     "deu_Latn", "--max-sentences", "12", "--model", str(tiny_bert), "--device", "cpu",
                     "--no-progress", "--out", str(w)]) == 0
        assert main(["align", str(w), "--src", "eng_Latn", "--tgt", "deu_Latn", "--layer", "2",
                     "--out", str(tmp_path / "a.txt"), "--report", str(tmp_path / "rep"), "--no-pdf"]) == 0
    finally:
        torch.set_num_threads(n)
    out = capsys.readouterr().out
    assert "links over 12 sentence pairs" in out
    lines = (tmp_path / "a.txt").read_text().splitlines()
    assert len(lines) == 12
    ws = open_words(w)
    assert len(ws.sentence_ids) == 12 and ws.languages == ["deu_Latn", "eng_Latn"]
    # the written alignment is the model's own: retrieval at its layer is 1 by construction
    import pandas as pd
    df = pd.read_csv(tmp_path / "rep" / "wordalign_table.csv")
    assert df[df.layer == 2].retrieval.iloc[0] == 1.0
    assert (df.cos_aligned < df.cos_unrelated).all() and df.n_links.iloc[0] == sum(len(l.split()) for l in lines)
    assert main(["align", str(w), "--src", "eng_Latn", "--tgt", "fra_Latn"]) == 1  # unknown language: error, no traceback


def test_align_layer_beyond_the_store_is_one_line(tiny_bert, tmp_path, capsys):
    """`babelmap align` with its default --layer 8 on a 3-hidden-state word store: exit 1, one line."""
    from babelmap.cli import main
    from babelmap.engine.corpora import ParallelCorpus
    from babelmap.engine.words import extract_words
    corpus = ParallelCorpus.from_dict({"eng_Latn": ["the dog sleeps", "a red house"],
                                       "deu_Latn": ["der Hund schläft", "ein rotes Haus"]})
    w = extract_words(corpus, tmp_path / "w.h5", str(tiny_bert), device="cpu", progress=False)
    capsys.readouterr()
    assert main(["align", str(w), "--src", "eng_Latn", "--tgt", "deu_Latn"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--layer 8" in err[0] and "3 hidden states (0..2)" in err[0], err
    assert main(["align", str(w), "--src", "eng_Latn", "--tgt", "deu_Latn", "--layer", "2"]) == 0
    assert "links over 2 sentence pairs" in capsys.readouterr().out
