"""Bootstrap over sentence blocks: SE against the analytic SE of a mean; summaries vs NumPy."""
import numpy as np
import pytest

from babelmap.kernels.bootstrap import replicate_summary
from babelmap.kernels.similarity import similarity_from_arrays


def pair_with_cosines(c, H, rng):
    """Two [S, H] arrays whose per-sentence cosines are exactly c (random directions)."""
    S = len(c)
    q, _ = np.linalg.qr(rng.normal(size=(S, H, 2)))       # two orthonormal directions per sentence
    u, v = q[..., 0], q[..., 1]
    a = u * rng.uniform(0.5, 2.0, size=(S, 1))             # lengths must not matter
    b = (c[:, None] * u + np.sqrt(1 - c[:, None] ** 2) * v) * rng.uniform(0.5, 2.0, size=(S, 1))
    return a, b


def test_bootstrap_se_matches_analytic_se_of_a_mean():
    rng = np.random.default_rng(0)
    S, H, sigma, mu = 2400, 16, 0.15, 0.6
    c = np.clip(rng.normal(mu, sigma, S), -0.99, 0.99)
    a, b = pair_with_cosines(c, H, rng)
    E = np.stack([a, b, a])[:, None].astype(np.float32)   # [3, 1, S, H]; language 2 = copy of 0
    M = np.ones((3, S), bool)
    M[2, rng.permutation(S)[: S // 2]] = False             # language 2: half the sentences
    r = similarity_from_arrays(E, M, bootstrap=400, bootstrap_block=8, seed=1, device="cpu")
    assert r.sim[0, 0, 1] == pytest.approx(c.mean(), abs=1e-6)
    se_01 = sigma / np.sqrt(S)                              # analytic SE of a mean of S cosines
    assert r.stderr[0, 0, 1] == pytest.approx(se_01, rel=0.15)
    present = M[2]
    se_12 = sigma / np.sqrt(present.sum())                  # pair (1, 2): only the shared half
    assert r.count[1, 2] == present.sum()
    assert r.stderr[0, 1, 2] == pytest.approx(se_12, rel=0.15)
    # 95% percentile interval ~ mean +- 1.96 SE
    assert r.ci_high[0, 0, 1] - r.ci_low[0, 0, 1] == pytest.approx(2 * 1.96 * se_01, rel=0.2)
    assert r.ci_low[0, 0, 1] < r.sim[0, 0, 1] < r.ci_high[0, 0, 1]
    # identical languages: every replicate is 1 -> SE 0; diagonal by definition
    assert r.stderr[0, 0, 2] == pytest.approx(0, abs=1e-6) and r.stderr[0, 1, 1] == 0
    assert r.attrs["bootstrap"] == 400 and r.attrs["bootstrap_block"] == 8 and r.attrs["bootstrap_blocks"] == 300


def test_bootstrap_is_reproducible_and_nan_without_support():
    rng = np.random.default_rng(5)
    E = rng.normal(size=(3, 2, 60, 8)).astype(np.float16)
    M = np.ones((3, 60), bool)
    M[0, 30:] = False
    M[2, :30] = False                                       # 0 and 2 share nothing
    r1 = similarity_from_arrays(E, M, bootstrap=30, bootstrap_block=10, seed=7)
    r2 = similarity_from_arrays(E, M, bootstrap=30, bootstrap_block=10, seed=7)
    np.testing.assert_array_equal(r1.stderr, r2.stderr)
    assert np.isnan(r1.stderr[:, 0, 2]).all() and np.isnan(r1.ci_low[:, 2, 0]).all()
    assert np.isfinite(r1.stderr[:, 0, 1]).all()


def test_replicate_summary_matches_numpy():
    rng = np.random.default_rng(3)
    rep = rng.normal(size=(101, 40))
    rep[rng.random(rep.shape) < 0.2] = np.nan
    rep[:, 7] = np.nan                                      # no support at all
    rep[1:, 8] = np.nan                                     # a single replicate
    sd, lo, hi = replicate_summary(rep, (0.025, 0.975))
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        ref_sd = np.nanstd(rep, axis=0, ddof=1)
        ref_q = np.nanquantile(rep, [0.025, 0.975], axis=0)
    ok = np.sum(~np.isnan(rep), 0) >= 2
    np.testing.assert_allclose(sd[ok], ref_sd[ok], rtol=1e-12)
    np.testing.assert_allclose(lo[ok], ref_q[0][ok], rtol=1e-12)
    np.testing.assert_allclose(hi[ok], ref_q[1][ok], rtol=1e-12)
    assert np.isnan(sd[7]) and np.isnan(lo[8]) and np.isnan(hi[8])
