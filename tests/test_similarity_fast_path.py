"""The pieces of the fast similarity path against independent references: the float16 decode
(every bit pattern against NumPy), the fused normalisation with a column subset, syrk into a
reused buffer (in place, same values as X X^T), and the per-layer store reader."""
import numpy as np
import pytest

import babelmap.engine.store as store_mod
from babelmap.engine.store import open_store, write_store


def test_half_to_float_matches_numpy_for_every_bit_pattern():
    from babelmap.kernels.numba_kernels import _halves_to_float
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    got = np.empty(65536, np.float32)
    _halves_to_float(bits, got)
    ref = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(ref)
    assert nan.sum() == 2046 and np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), ref[~nan].view(np.uint32))   # bit-exact, -0 and inf too


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_normalise_layer_columns_gather_kept_sentences(dtype):
    from babelmap.kernels.numba_kernels import normalise_layer
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(4, 2, 30, 24)).astype(dtype)
    raw[2, 1, 7] = 0                                          # present but zero -> stays zero
    cols = np.array([1, 7, 8, 20, 29])
    present = rng.random((4, 5)) > 0.3
    present[2, 1] = True
    mean = rng.normal(size=24)
    for mu in (None, mean):
        x = raw[:, 1][:, cols].astype(np.float64) - (0 if mu is None else mu)
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        ref = np.where(n > 0, x / np.where(n > 0, n, 1), 0) * present[..., None]
        out = np.full((4, 5, 24), np.nan, np.float32)
        got = normalise_layer(raw, 1, present, np.float32, mu, out, cols)
        assert got is out
        np.testing.assert_allclose(got, ref, atol=1e-6)
        np.testing.assert_allclose(normalise_layer(raw, 1, present, np.float64, mu, columns=cols), ref, atol=1e-14)
        if mu is None:
            assert np.all(got[2, 1] == 0)


def test_syrk_into_a_reused_buffer_is_in_place():
    import tracemalloc

    from babelmap.kernels.similarity import syrk_upper
    rng = np.random.default_rng(6)
    for dtype, atol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        out = np.zeros((300, 300), dtype)
        for n in (70, 50):                                   # reused with another width
            X = rng.normal(size=(300, n)).astype(dtype)
            full = X.astype(np.float64) @ X.T.astype(np.float64)
            tracemalloc.start()
            got = syrk_upper(X, out=out)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert got is out and peak < 300 * 300 * 4 / 2          # no [L, L] temporary
            iu = np.triu_indices(300)
            np.testing.assert_allclose(out[iu], full[iu], atol=atol)
            assert np.all(np.tril(out, -1) == 0)


def test_reader_reads_each_layer_once_into_two_buffers(tmp_path, monkeypatch):
    """Every (block, layer) is read once, in order, the values those of the store; the prefetch
    alternates two buffers; a consumer that skips layers stays in step."""
    from babelmap.kernels.similarity import _Reader, plan_blocks
    monkeypatch.setattr(store_mod, "CHUNK_BYTES", 3 * 8 * 2 * 5)    # 5 sentences per chunk
    rng = np.random.default_rng(7)
    E = rng.normal(size=(4, 3, 23, 8)).astype(np.float16)
    M = rng.random((4, 23)) > 0.2
    path = write_store(tmp_path / "s.h5", [f"l{i}" for i in range(4)], [f"s{i}" for i in range(23)], E, mask=M)
    sel = np.r_[0:12, 14, 20:23]
    with open_store(path) as st:
        assert st.chunk_sentences == 5
        plan = plan_blocks(sel, 5, 10)
        reader = _Reader(st, plan, ["l3", "l0", "l1"], [2, 0])
        addrs, seen = [], []
        for i, cols, m, layers in reader:
            start, stop, local = plan[i]
            keep = np.arange(start, stop) if local is None else start + local
            np.testing.assert_array_equal(m, M[[3, 0, 1]][:, keep])
            for k, raw in zip([2, 0], layers):
                got = raw[:, 0] if cols is None else raw[:, 0][:, cols]
                want = (E * M[:, None, :, None])[[3, 0, 1]][:, k][:, keep]
                np.testing.assert_array_equal(got, want)
                addrs.append(raw.__array_interface__["data"][0])
                seen.append((i, k))
                if i == 1:
                    break                                    # skip the second layer of block 1
        assert seen == [(0, 2), (0, 0), (1, 2), (2, 2), (2, 0)]
        assert len(set(addrs)) == 2 and addrs[0] != addrs[1] and addrs[0] == addrs[2]
        assert reader.file is None                           # the extra handle is closed


def test_add_upper_touches_only_the_upper_triangle():
    from babelmap.kernels.numba_kernels import add_upper
    rng = np.random.default_rng(8)
    acc = rng.normal(size=(37, 37))
    tri = rng.normal(size=(37, 37)).astype(np.float32)
    want = acc + np.triu(tri.astype(np.float64))
    add_upper(acc, tri)
    np.testing.assert_array_equal(acc, want)


def test_sim_from_upper_mirrors_divides_and_marks_missing():
    from babelmap.kernels.numba_kernels import sim_from_upper
    rng = np.random.default_rng(9)
    L, K = 6, 3
    C = rng.integers(0, 5, size=(L, L))
    C = np.triu(C) + np.triu(C, 1).T
    C[2, 2] = 0                                                  # a language without sentences
    G = rng.normal(size=(K, L, L))
    G_lower_garbage = G + np.tril(np.full((L, L), 1e9), -1)     # the strict lower part is not read
    got = sim_from_upper(G_lower_garbage, C)
    iu = np.triu_indices(L, 1)
    want = np.full((K, L, L), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        up = np.where(C[iu] > 0, G[:, iu[0], iu[1]] / C[iu], np.nan)
    want[:, iu[0], iu[1]] = up
    want[:, iu[1], iu[0]] = up
    d = np.arange(L)
    want[:, d, d] = np.where(C[d, d] > 0, 1.0, np.nan)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_syrk_without_the_gil_from_two_threads():
    from concurrent.futures import ThreadPoolExecutor

    from babelmap.kernels.numba_kernels import syrk_upper_nogil
    rng = np.random.default_rng(10)
    for dtype, rtol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        Xs = [rng.normal(size=(120, 700)).astype(dtype) for _ in range(4)]
        outs = [np.zeros((120, 120), dtype) for _ in range(4)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(syrk_upper_nogil, Xs, outs))
        iu = np.triu_indices(120)
        for X, out in zip(Xs, outs):
            full = X.astype(np.float64) @ X.T.astype(np.float64)
            np.testing.assert_allclose(out[iu], full[iu], rtol=rtol, atol=rtol * 700)
            assert np.all(np.tril(out, -1) == 0)
    with pytest.raises(ValueError):
        syrk_upper_nogil(Xs[0][:, ::2], outs[0])                 # not C-ordered


def test_hybrid_parts_run_on_their_threads_with_one_blas_thread(monkeypatch):
    """The default backend: one part of the sentences per thread, BLAS on one thread meanwhile
    (restored afterwards); same values with 1, 2 and 3 threads, and as the NumPy backend."""
    import threading

    from threadpoolctl import threadpool_info

    from babelmap.kernels import similarity as sim_mod
    from babelmap.kernels.similarity import HybridGram, similarity_from_arrays
    rng = np.random.default_rng(11)
    E = (rng.normal(size=(1, 2, 50, 16)) + rng.normal(size=(6, 2, 50, 16))).astype(np.float16)
    M = rng.random((6, 50)) > 0.2
    ref = similarity_from_arrays(E, M, backend="numpy", device="cpu")
    before = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    seen = []
    real = HybridGram._part

    def spy(self, t, raw, kpos, cols, present):
        # SciPy's BLAS is the one the kernel calls (numpy may load a second OpenBLAS whose
        # thread count, under OpenMP, is per thread and not what the syrk uses)
        seen.append((threading.current_thread().name, len(cols),
                     {d["num_threads"] for d in threadpool_info()
                      if d["user_api"] == "blas" and "scipy.libs" in d["filepath"]}))
        return real(self, t, raw, kpos, cols, present)

    monkeypatch.setattr(HybridGram, "_part", spy)
    for threads in (1, 2, 3):
        monkeypatch.setattr(sim_mod, "HybridGram", lambda *a, **k: HybridGram(*a, threads=threads, **k))
        seen.clear()
        r = similarity_from_arrays(E, M, device="cpu", block_sentences=50)
        np.testing.assert_allclose(r.sim, ref.sim, atol=2e-6, equal_nan=True)
        assert len(seen) == 2 * threads and all(blas == {1} for _, _, blas in seen)
        assert sorted(n for _, n, _ in seen) == sorted([len(p) for p in np.array_split(np.arange(50), threads)] * 2)
        if threads > 1:                                # on the pool's threads, not the caller's
            assert {name for name, _, _ in seen} <= {f"babelmap-gram_{i}" for i in range(threads)}
    assert [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"] == before
