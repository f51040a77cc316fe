"""compute_similarity against a plain float64 NumPy reference (a loop over pairs and sentences)."""
import numpy as np
import pytest

import babelmap.engine.store as store_mod
from babelmap.engine.store import open_store, write_store
from babelmap.errors import BabelmapError
from babelmap.kernels.result import SimilarityResult
from babelmap.kernels.similarity import compute_similarity, plan_blocks, select_sentences, similarity_from_arrays

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover
    HAS_CUDA = False


def reference(E, M, center=False):
    """mPLM-Sim by definition: for each pair, mean over shared sentences of the cosine (float64)."""
    E = E.astype(np.float64)
    L, K, S, H = E.shape
    if center:
        mu = np.einsum("ls,lksh->kh", M.astype(float), E) / M.sum()
        E = E - mu[None, :, None, :]
    sim = np.full((K, L, L), np.nan)
    cnt = np.zeros((L, L), int)
    for a in range(L):
        for b in range(L):
            P = np.flatnonzero(M[a] & M[b])
            cnt[a, b] = len(P)
            for k in range(K if len(P) else 0):
                x, y = E[a, k, P], E[b, k, P]
                cos = np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
                sim[k, a, b] = 1.0 if a == b else cos.mean()
    return sim, cnt


def data(seed=0, L=7, K=3, S=90, H=16, dtype=np.float16):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(1, K, S, H))            # a common component so sims are far from 0
    E = (shared + 0.8 * rng.normal(size=(L, K, S, H))).astype(dtype)
    M = rng.random((L, S)) > 0.25
    M[5] = False
    M[5, :30] = True            # language 5 only has sentences 0..29
    M[6] = False
    M[6, 60:] = True            # language 6 only has 60..89: shares nothing with language 5
    return E, M


LANGS = [f"l{i}_Latn" for i in range(7)]


def check(r, sim, cnt, atol):
    np.testing.assert_array_equal(r.count, cnt)
    np.testing.assert_array_equal(np.isnan(r.sim), np.isnan(sim))
    np.testing.assert_allclose(r.sim, sim, atol=atol, rtol=0, equal_nan=True)


@pytest.mark.parametrize("backend", ["numpy", "hybrid", "torch-all"])
@pytest.mark.parametrize("precision,atol", [("float32", 2e-6), ("float64", 1e-7)])
def test_arrays_match_reference(backend, precision, atol):
    E, M = data()
    sim, cnt = reference(E, M)
    r = similarity_from_arrays(E, M, LANGS, backend=backend, precision=precision, device="cpu")
    check(r, sim, cnt, atol)
    assert cnt[5, 6] == 0 and np.isnan(r.get("l5_Latn", "l6_Latn", 2))
    assert r.sim[0, 3, 3] == 1.0 and r.count[3, 3] == M[3].sum()


def test_float32_inputs_and_near_one_values():
    """Values crowding near 1 (as in top layers) keep their differences at float32."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 1, 200, 64))
    E = base + 0.02 * rng.normal(size=(5, 1, 200, 64))
    M = np.ones((5, 200), bool)
    sim, cnt = reference(E, M)
    r = similarity_from_arrays(E.astype(np.float32), M, device="cpu")
    off = ~np.eye(5, dtype=bool)
    assert sim[0][off].min() > 0.999            # crowded near 1
    np.testing.assert_allclose(r.sim[0][off], sim[0][off], atol=1e-6, rtol=0)   # float32 products
    r64 = similarity_from_arrays(E.astype(np.float32), M, device="cpu", precision="float64")
    np.testing.assert_allclose(r64.sim[0][off], sim[0][off], atol=1e-7, rtol=0)  # float32 storage only


def test_store_streamed_equals_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", 3 * 16 * 2 * 8)   # 8 sentences per chunk
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M,
                       attrs={"model": "tiny", "pooling": "mean"})
    with open_store(path) as st:
        assert st.chunk_sentences == 8
    sim, cnt = reference(E, M)
    # blocks of 16 sentences: many blocks, a ragged last one, prefetch in between
    r = compute_similarity(path, device="cpu", block_sentences=16, progress=False)
    check(r, sim, cnt, 2e-6)
    assert r.attrs["model"] == "tiny" and r.attrs["measure"] == "cosine-mean" and r.attrs["n_sentences"] == 90
    r.save(tmp_path / "r.h5")
    np.testing.assert_array_equal(SimilarityResult.load(tmp_path / "r.h5").sim, r.sim)


def test_selection_of_layers_languages_sentences(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", 3 * 16 * 2 * 8)
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    sel = np.r_[3:20, 41, 55:77]
    langs = ["l6_Latn", "l0_Latn", "l5_Latn", "l2_Latn"]
    li = [6, 0, 5, 2]
    sim, cnt = reference(E[li][:, [2, 0]][:, :, sel], M[li][:, sel])
    r = compute_similarity(path, layers=[2, 0], languages=langs, sentences=[f"s{i}" for i in sel],
                           device="cpu", block_sentences=8, progress=False)
    assert r.languages == langs and r.layers == [2, 0]
    check(r, sim, cnt, 2e-6)
    r2 = compute_similarity(path, layers=[2, 0], languages=langs, sentences=sel, device="cpu", progress=False)
    np.testing.assert_allclose(r2.sim, r.sim, atol=1e-6, equal_nan=True)


def test_center_matches_reference():
    E, M = data(seed=3)
    E = (E + 2.0 * np.random.default_rng(9).normal(size=(1, 3, 1, 16))).astype(np.float16)  # common offset
    sim, cnt = reference(E, M, center=True)
    for backend in ("numpy", "hybrid", "torch", "torch-all"):
        r = similarity_from_arrays(E, M, center=True, backend=backend, device="cpu")
        check(r, sim, cnt, 3e-6)
        assert r.attrs["center"] is True
    plain = similarity_from_arrays(E, M, device="cpu")
    assert np.nanmax(np.abs(plain.sim - r.sim)) > 0.05         # centering changes the values


def test_bad_requests(tmp_path):
    E, M = data()
    with pytest.raises(BabelmapError, match="layers \\[7\\]"):
        similarity_from_arrays(E, M, layers=[7])
    with pytest.raises(BabelmapError, match="precision"):
        similarity_from_arrays(E, M, precision="bfloat16")
    with pytest.raises(BabelmapError, match="not in the store"):
        select_sentences(["a", "b"], ["c"])


def test_plan_blocks_cover_selection_once():
    sel = np.r_[0:5, 17, 30:64, 99]
    plan = plan_blocks(sel, chunk=8, block_sentences=16)
    got = np.concatenate([np.arange(a, b) if loc is None else a + loc for a, b, loc in plan])
    np.testing.assert_array_equal(got, sel)
    assert all(a % 16 == 0 for a, _, _ in plan)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU")
@pytest.mark.parametrize("precision,atol", [("float32", 2e-6), ("float64", 1e-7)])
def test_gpu_matches_cpu(precision, atol):
    E, M = data()
    sim, cnt = reference(E, M)
    g = similarity_from_arrays(E, M, device="cuda", precision=precision, bootstrap=20, bootstrap_block=10)
    c = similarity_from_arrays(E, M, device="cpu", precision=precision, bootstrap=20, bootstrap_block=10)
    check(g, sim, cnt, atol)
    np.testing.assert_allclose(g.sim, c.sim, atol=atol, equal_nan=True)
    np.testing.assert_allclose(g.stderr, c.stderr, atol=1e-5, equal_nan=True)


def test_real_tiny_extraction(tmp_path, tiny_bert):
    """Streamed result over a real extraction equals the in-memory reference on its arrays."""
    import babelmap.engine.extract as extract_mod       # our own module: a broken import must fail
    from babelmap.engine.corpora.base import ParallelCorpus
    texts = {
        "deu_Latn": ["Der Hund schläft.", "Ich trinke Wasser.", None, "Das Haus ist groß.", "Guten Morgen!"],
        "eng_Latn": ["The dog sleeps.", "I drink water.", "It rains today.", "The house is big.", None],
        "fra_Latn": [None, "Je bois de l'eau.", "Il pleut.", "La maison est grande.", "Bonjour !"],
    }
    corpus = ParallelCorpus("tiny", list(texts), [f"s{i}" for i in range(5)], list(texts.values()))
    out = extract_mod.extract(corpus, tmp_path / "store.h5", str(tiny_bert), device="cpu", progress=False)
    with open_store(out) as st:
        E = np.stack([np.stack([st.embeddings(l, k) for k in st.layers]) for l in st.languages])
        M = st.mask
    sim, cnt = reference(E, M)
    r = compute_similarity(out, device="cpu", progress=False)
    check(r, sim, cnt, 2e-6)


def test_cli_writes_result_and_tsv(tmp_path, capsys):
    from babelmap.cli import main
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    rc = main(["similarity", str(path), "--out", str(tmp_path / "sims.h5"), "--layers", "0,2",
               "--langs", "l1_*", "l5_*", "l6_*", "--tsv", str(tmp_path / "tsv"), "--no-progress"])
    assert rc == 0
    r = SimilarityResult.load(tmp_path / "sims.h5")
    sim, cnt = reference(E[[1, 5, 6]][:, [0, 2]], M[[1, 5, 6]])
    check(r, sim, cnt, 2e-6)
    out = capsys.readouterr().out
    assert "3 languages x 2 layers" in out and "pairs without a shared sentence: 1" in out
    assert sorted(p.name for p in (tmp_path / "tsv").iterdir()) == ["sents_layer0.tsv", "sents_layer2.tsv"]
    assert main(["similarity", str(path), "--out", str(tmp_path / "x.h5"), "--langs", "zz_*"]) == 1


def test_sentence_similarities_average_to_the_cell(tmp_path):
    from babelmap.kernels.similarity import sentence_similarities
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    ids, cos = sentence_similarities(path, "l1_Latn", "l5_Latn", 2)
    assert ids[0] == "s0" and len(cos) == 90
    shared = M[1] & M[5]
    assert np.array_equal(~np.isnan(cos), shared)
    x, y = E[1, 2, shared].astype(np.float64), E[5, 2, shared].astype(np.float64)
    ref = np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    np.testing.assert_allclose(cos[shared], ref, atol=1e-12)
    r = compute_similarity(path, device="cpu", progress=False)
    assert np.nanmean(cos) == pytest.approx(r.get("l1_Latn", "l5_Latn", 2), abs=2e-6)


def test_syrk_triangles_match_the_full_product():
    """One triangle through BLAS syrk (SciPy) and through torch's blocked halves equals X X^T."""
    import torch

    from babelmap.kernels.similarity import symmetrise_upper, syrk_upper
    from babelmap.kernels.torch_kernels import syrk_upper_torch
    rng = np.random.default_rng(4)
    for L in (1, 5, 300):
        X = rng.normal(size=(L, 70))
        full = X @ X.T
        for dtype, atol in ((np.float64, 1e-12), (np.float32, 1e-4)):
            up = syrk_upper(X.astype(dtype))
            assert np.all(np.tril(up, -1) == 0)
            np.testing.assert_allclose(symmetrise_upper(up), full, atol=atol)
        t = syrk_upper_torch(torch.from_numpy(X), min_rows=64).numpy()
        iu = np.triu_indices(L)
        np.testing.assert_allclose(t[iu], full[iu], atol=1e-12)
        np.testing.assert_allclose(symmetrise_upper(t), full, atol=1e-12)


def test_only_the_asked_layers_are_read(tmp_path, monkeypatch):
    """Asking for one hidden state reads only that one from disk (HDF5 selection), same values;
    blocks go straight into reused buffers (read_direct), whole chunk rows at a time."""
    import h5py
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", 3 * 16 * 2 * 8)   # 8 sentences per chunk
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    seen = []
    real = h5py.Dataset.read_direct

    def spy(self, dest, source_sel=None, dest_sel=None):
        seen.append((dest.shape, source_sel, dest.__array_interface__["data"][0]))
        return real(self, dest, source_sel, dest_sel)

    monkeypatch.setattr(h5py.Dataset, "read_direct", spy)
    r = compute_similarity(path, layers=[1], device="cpu", progress=False, block_sentences=16)
    sim, cnt = reference(E[:, [1]], M)
    check(r, sim, cnt, 2e-6)
    assert len(seen) == 6 and all(shape[1] == 1 and sel[1] == slice(1, 2) for shape, sel, _ in seen)
    assert [sel[2] for _, sel, _ in seen] == [slice(a, min(a + 16, 90)) for a in range(0, 90, 16)]
    assert len({addr for _, _, addr in seen}) == 2               # two buffers, reused in turn
    seen.clear()
    r = compute_similarity(path, layers=[2, 0], languages=["l3_Latn", "l4_Latn", "l1_Latn"], device="cpu",
                           progress=False)
    sim, cnt = reference(E[[3, 4, 1]][:, [2, 0]], M[[3, 4, 1]])
    check(r, sim, cnt, 2e-6)
    # one read per run of consecutive store rows (3-4, then 1) and hidden state, in the order asked
    assert [(sel[0], sel[1]) for _, sel, _ in seen] == [(slice(3, 5), slice(2, 3)), (slice(1, 2), slice(2, 3)),
                                                       (slice(3, 5), slice(0, 1)), (slice(1, 2), slice(0, 1))]
    with open_store(path) as st:                 # the store reads the layers asked, in that order
        np.testing.assert_array_equal(st.block(slice(0, 5), [2, 0]), E[:, [2, 0], :5] * M[:, None, :5, None])


def test_document_bootstrap_groups_whole_documents():
    """With documents, the bootstrap resamples documents (recorded); without, sentence blocks."""
    from babelmap.kernels.bootstrap import bootstrap_groups
    from babelmap.kernels.similarity import ArraySource
    E, M = data()
    docs = [f"d{i // 7}" for i in range(90)]       # 13 documents of 7 sentences (the last one 6)
    r = similarity_from_arrays(E, M, bootstrap=50, documents=docs, seed=2)
    assert r.attrs["bootstrap_unit"] == "document" and r.attrs["bootstrap_groups"] == 13
    b = similarity_from_arrays(E, M, bootstrap=50, bootstrap_block=7, seed=2)
    assert b.attrs["bootstrap_unit"] == "sentence block" and b.attrs["bootstrap_groups"] == 13
    # documents of 7 consecutive sentences = blocks of 7: the same groups, the same intervals
    np.testing.assert_allclose(r.stderr, b.stderr, atol=1e-6, equal_nan=True)
    src = ArraySource(E, M)
    g, _ = bootstrap_groups(src, np.arange(0, 90, 2), "document", ["x", "y", "", None, "x"] * 18, 16)
    assert len(set(g[np.arange(0, 45, 5)])) == 1   # every 'x' is one group (not contiguous)
    assert g[0] == 0 and g[1] == 1                # numbered in order of first appearance
    assert g[1] != g[6]                           # two empty labels (sentences 2, 12): each its own group
    with pytest.raises(BabelmapError):
        bootstrap_groups(src, np.arange(90), "document", None, 16)


def test_command_messages_are_one_line(tmp_path, capsys):
    """Bad inputs to `babelmap similarity`: one line naming the problem, exit 1, no traceback."""
    import h5py

    from babelmap.cli import main
    E, M = data()
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    # --out is a folder: refused before any work
    (tmp_path / "outdir").mkdir()
    assert main(["similarity", str(path), "--out", str(tmp_path / "outdir"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # a store without /embeddings
    broken = write_store(tmp_path / "b.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M)
    with h5py.File(broken, "a") as f:
        del f["embeddings"]
    assert main(["similarity", str(broken), "--out", str(tmp_path / "x.h5"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "embeddings" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_nan_in_the_store_warns_with_language_and_layer(tmp_path, capsys):
    from babelmap.cli import main
    E, M = data()
    E = E.astype(np.float32)
    E[2, 1, 40, 3] = np.nan                       # language l2_Latn, hidden state 1, one sentence
    M[2, 40] = True
    path = write_store(tmp_path / "s.h5", LANGS, [f"s{i}" for i in range(90)], E, mask=M, dtype="float32")
    for measure in ("cosine-mean", "mexa"):
        assert main(["similarity", str(path), "--out", str(tmp_path / f"{measure}.h5"), "--measure", measure,
                     "--no-progress"]) == 0
        err = capsys.readouterr().err
        assert "NaN in l2_Latn at layer 1 (1 sentences)" in err
        r = SimilarityResult.load(tmp_path / f"{measure}.h5")
        assert np.isnan(r.sim[1, 2, [0, 1, 3]]).all() and np.isfinite(r.sim[0, 2, [0, 1, 3]]).all()


def test_tsv_export_is_atomic(tmp_path, monkeypatch):
    """A failure midway leaves the previous TSV folder as it was and no temporary behind."""
    E, M = data()
    r = similarity_from_arrays(E, M, LANGS, device="cpu")
    folder = tmp_path / "tsv"
    files = r.export_tsv(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["sents_layer0.tsv", "sents_layer1.tsv", "sents_layer2.tsv"]
    before = {p.name: p.read_bytes() for p in files}
    real = type(r.matrix(0)).to_tsv
    calls = []

    def failing(self, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, path, **kw)

    monkeypatch.setattr(type(r.matrix(0)), "to_tsv", failing)
    r2 = similarity_from_arrays(E[:, :2], M, LANGS, device="cpu")
    with pytest.raises(OSError):
        r2.export_tsv(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(type(r.matrix(0)), "to_tsv", real)
    r2.export_tsv(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["sents_layer0.tsv", "sents_layer1.tsv"]


def test_store_keeping_some_hidden_states():
    """A store with hidden states [0, 6, 12] only: layers are asked by id, read by position."""
    from babelmap.kernels.mexa import compute_alignment
    from babelmap.kernels.similarity import ArraySource
    E, M = data()
    src = ArraySource(E, M, LANGS, layers=[0, 6, 12])
    r = compute_similarity(src, layers=[12, 0], device="cpu", progress=False)
    sim, cnt = reference(E[:, [2, 0]], M)
    check(r, sim, cnt, 2e-6)
    assert r.layers == [12, 0]
    m = compute_alignment(src, measure="mexa", layers=[6], device="cpu", progress=False)
    m2 = compute_alignment(ArraySource(E[:, [1]], M, LANGS), measure="mexa", device="cpu", progress=False)
    np.testing.assert_array_equal(m.sim, m2.sim)
    with pytest.raises(BabelmapError, match="0, 6, 12"):
        compute_similarity(src, layers=[1], progress=False)


def test_measure_mexa_keeps_backend_and_block_sentences(tmp_path, monkeypatch):
    """compute_similarity(measure="mexa", backend="torch") runs kernels.mexa's torch path (it fell
    back to Numba) and passes block_sentences on (it was dropped): equal to a float64 double loop."""
    from test_mexa import reference as mexa_reference
    from test_mexa import tie_data

    import babelmap.kernels.mexa as mexa_mod
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", 2 * 8 * 4 * 8)   # 8 sentences per chunk
    E, M = tie_data()
    path = write_store(tmp_path / "t.h5", [f"lang{i}" for i in range(len(E))], [f"s{i}" for i in range(40)],
                       E, mask=M, dtype="float32")
    torch_calls, slices = [], []
    real_counts, real_block = mexa_mod.rank_counts_torch, store_mod.Store.block

    def counts_spy(*a):
        torch_calls.append(1)
        return real_counts(*a)

    def block_spy(self, sentences=None, layers=None, languages=None):
        slices.append(sentences)
        return real_block(self, sentences, layers, languages)

    monkeypatch.setattr(mexa_mod, "rank_counts_torch", counts_spy)
    monkeypatch.setattr(store_mod.Store, "block", block_spy)
    r = compute_similarity(path, measure="mexa", backend="torch", device="cpu", block_sentences=16,
                           progress=False)
    ref, cnt = mexa_reference(E, M, "mexa")
    np.testing.assert_array_equal(r.count, cnt)
    np.testing.assert_allclose(r.sim, ref, atol=1e-6, equal_nan=True)
    assert r.attrs["backend"] == "torch" and torch_calls
    assert {(s.start, s.stop) for s in slices} == {(0, 16), (16, 32), (32, 40)}
    for backend, expected in ((None, "numba"), ("hybrid", "numba"), ("numpy", "numpy"), ("torch-all", "torch")):
        r = compute_similarity(path, measure="mexa", backend=backend, device="cpu", progress=False)
        assert r.attrs["backend"] == expected
        np.testing.assert_allclose(r.sim, ref, atol=1e-6, equal_nan=True)
