"""URIEL measures (analysis/linguistic/uriel.py): the vectorised all-pairs computation equals
urielplus's own pairwise `new_distance` on sampled pairs, works when the urielplus package
folder is read-only, caches, and agrees with the released mPLM-Sim tables where it should."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared
from scipy.stats import pearsonr, spearmanr

pytest.importorskip("urielplus")

from babelmap.analysis.linguistic.uriel import KINDS, distances, load_urielplus, uriel_matrix  # noqa: E402
from babelmap.kernels.matrix import LanguageMatrix  # noqa: E402

WELL_KNOWN = ["eng", "deu", "fra", "rus", "jpn", "eus", "cmn", "hin", "swh", "yor", "fin", "tur",
              "arb", "kor", "tam", "zul", "que", "ell", "heb", "ind"]


@pytest.fixture(scope="module")
def up():
    u = load_urielplus()
    logging.getLogger().setLevel(logging.WARNING)    # urielplus logs every call at INFO
    return u


def urielplus_distance(u, kind: str, a: str, b: str) -> float:
    try:
        return float(u.new_distance(kind, a, b))
    except ValueError as e:
        assert "No shared" in str(e)
        return np.nan


@pytest.mark.parametrize("kind", KINDS)
def test_matrix_equals_urielplus_pairwise(up, kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    others = [str(x) for x in rng.choice(up.langs[1], 14, replace=False) if x not in WELL_KNOWN][:12]
    pool = WELL_KNOWN + others
    ids = [f"{c}_Latn" for c in pool]
    m = uriel_matrix(kind, ids, cache=False, fallback=False)
    n_pairs = 6 if kind == "genetic" else 25          # genetic pairwise calls take ~1 s each
    pairs = [tuple(rng.choice(len(pool), 2, replace=False)) for _ in range(n_pairs)]
    pairs += [(0, 1), (0, 5), (len(WELL_KNOWN), len(WELL_KNOWN) + 1)]
    exact = compared = 0
    for i, j in pairs:
        ref = urielplus_distance(up, kind, pool[i], pool[j])
        got = 1.0 - m.get(ids[i], ids[j])
        if np.isnan(ref):
            assert np.isnan(got) or ids[i] in m.missing or ids[j] in m.missing, (pool[i], pool[j])
            continue
        assert abs(got - ref) <= 1.0001e-4, (kind, pool[i], pool[j], got, ref)
        exact += abs(got - ref) < 1e-6                 # urielplus rounds float32 values
        compared += 1
    assert compared >= 3
    assert exact >= compared - 1      # float32 vs float64 may flip the 4th decimal, rarely


def test_distances_function_against_urielplus_angular(up):
    """Random vectors with missing features (has=False) and all-zero vectors, against
    urielplus's `_angular_distance` applied to each pair's shared features."""
    rng = np.random.default_rng(1)
    L, F = 9, 15
    vals = rng.choice([0.0, 1.0], size=(L, F))
    vals[2] = 0.0                                   # zero vector: urielplus's 1e-10 placeholder
    vals[3] = 0.0
    has = rng.random((L, F)) < 0.6
    has[4] = False                                  # no data at all
    has[5] = ~has[6]                                # 5 and 6 share no feature
    for metric in ("angular", "cosine"):
        up.set_distance_metric(metric)
        try:
            d = distances(vals, has, metric=metric)
            for i in range(L):
                for j in range(L):
                    shared_f = has[i] & has[j]
                    if not shared_f.any():
                        assert np.isnan(d[i, j])
                        continue
                    ref = up._angular_distance(vals[i, shared_f], vals[j, shared_f])
                    assert d[i, j] == pytest.approx(ref, abs=1e-12), (metric, i, j)
        finally:
            up.set_distance_metric("angular")


def test_script_variants_missing_and_notes():
    m = uriel_matrix("genetic", ["eng_Latn", "zho_Hans", "zho_Hant", "xqq_Latn"], cache=False)
    assert m.get("zho_Hans", "zho_Hant") == 1.0
    assert m.get("zho_Hans", "zho_Hans") == 1.0
    assert m.missing == ["xqq_Latn"] and "not in URIEL" in m.notes["xqq_Latn"]
    assert np.isnan(m.row("xqq_Latn")).all()
    s = uriel_matrix("syntactic", ["eng_Latn", "lvs_Latn"], cache=False, fallback=False)
    assert s.missing == ["lvs_Latn"] and "no syntactic features" in s.notes["lvs_Latn"]
    # with the fallback, Standard Latvian (lvs) gets the data URIEL files under Latvian (lav)
    f = uriel_matrix("syntactic", ["eng_Latn", "lvs_Latn", "lav_Latn"], cache=False)
    assert not f.missing and "lav" in f.notes["lvs_Latn"]
    assert f.get("lvs_Latn", "lav_Latn") == 1.0 and f.get("eng_Latn", "lvs_Latn") == f.get("eng_Latn", "lav_Latn")


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("BABELMAP_CACHE", str(tmp_path))
    ids = ["eng_Latn", "deu_Latn", "jpn_Jpan", "xqq_Latn"]
    m1 = uriel_matrix("featural", ids)
    files = list((tmp_path / "uriel").glob("featural-*.h5"))
    assert len(files) == 1
    m2 = uriel_matrix("featural", ids)
    np.testing.assert_array_equal(m1.values, m2.values)
    assert m2.missing == m1.missing and m2.notes["xqq_Latn"] == m1.notes["xqq_Latn"]
    import h5py
    with h5py.File(files[0], "a") as f:          # the cache is what is read back
        f["values"][0, 1] = 0.123
    assert uriel_matrix("featural", ids).get("eng_Latn", "deu_Latn") == 0.123


def test_works_with_read_only_package_folder(tmp_path):
    """A copy of the urielplus package in a read-only folder: our loader must never write
    there (urielplus itself would copy its npz files into <package>/database)."""
    import urielplus
    src = Path(urielplus.__file__).resolve().parent
    site = tmp_path / "site"
    shutil.copytree(src, site / "urielplus", ignore=shutil.ignore_patterns("__pycache__"))
    db = site / "urielplus" / "database"
    for f in db.glob("*.npz"):
        f.unlink()                                  # the state of a fresh install
    before = sorted(p.name for p in db.iterdir())
    for p in [site, *site.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    code = ("import urielplus, sys; assert urielplus.__file__.startswith(sys.argv[1]), urielplus.__file__\n"
            "from babelmap.analysis.linguistic.uriel import uriel_matrix\n"
            "m = uriel_matrix('genetic', ['eng_Latn', 'deu_Latn'], cache=False)\n"
            "print(m.get('eng_Latn', 'deu_Latn'))\n")
    env = dict(os.environ, PYTHONPATH=str(site), BABELMAP_CACHE=str(tmp_path / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert float(r.stdout.split()[-1]) == pytest.approx(1 - 0.6336)
        assert sorted(p.name for p in db.iterdir()) == before
        made = sorted(p.name for p in (tmp_path / "cache" / "urielplus").rglob("*.npz") if p.parent.name == "database")
        assert made == ["family_features.npz", "features.npz", "geocoord_features.npz", "script_features.npz"]
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


RENAMES = {"cmn_Hani": "zho_Hans", "ekk_Latn": "est_Latn", "gug_Latn": "grn_Latn",
           "kng_Latn": "kon_Latn", "sro_Latn": "srd_Latn", "yue_Hani": "yue_Hant"}


def _agreement(kind: str):
    ref = LanguageMatrix.from_tsv(shared("mplm_sim_linguistic", f"{kind}.tsv")).rename(RENAMES)
    ours = uriel_matrix(kind, ref.languages, cache=False, fallback=False)   # the release has none
    a, b = ours.values, ref.values
    off = ~np.eye(len(a), dtype=bool)
    # released rows that are 0 (or NaN) to everyone encode missing data: leave them out
    zero = np.array([np.all((r[o] == 0) | np.isnan(r[o])) for r, o in zip(b, off)])
    ok = off & ~np.isnan(a) & ~np.isnan(b) & ~zero[:, None] & ~zero[None, :]
    x, y = a[ok], b[ok]
    return x, y, zero


def test_agrees_with_released_inventory_exactly_on_most_pairs():
    x, y, _ = _agreement("inventory")
    assert len(x) // 2 > 30000
    assert np.mean(np.abs(x - y) <= 1.0001e-4) > 0.9        # measured: 0.93 of 39,621 pairs
    eng_deu = uriel_matrix("inventory", ["eng_Latn", "deu_Latn"], cache=False).get("eng_Latn", "deu_Latn")
    assert eng_deu == pytest.approx(0.5636, abs=1e-12)     # the released value


def test_correlates_with_released_genetic_and_geographic():
    x, y, zero = _agreement("genetic")
    assert pearsonr(x, y)[0] > 0.95                        # measured 0.973 (133,903 pairs)
    assert zero.sum() >= 40                                # released: missing encoded as 0
    x, y, _ = _agreement("geographic")
    assert spearmanr(x, y)[0] > 0.95                       # measured 0.966 (143,380 pairs)
