"""The word aligners against a brute-force reference, Pharaoh reading and one-to-one filtering."""
from __future__ import annotations

import numpy as np
import pytest

from babelmap.engine.errors import CorpusError
from babelmap.engine.alignments import Alignment, drop_identical_links, one_to_one, read_pharaoh
from babelmap.kernels.align import align_numba, align_numpy, align_torch, nearest_in_sentence


def _ragged(rng, S, H, lo=0, hi=12):
    lens = rng.integers(lo, hi, S)
    off = np.zeros(S + 1, np.int64)
    off[1:] = np.cumsum(lens)
    return rng.standard_normal((off[-1], H)).astype(np.float32), off


def brute_force(a, a_off, b, b_off, va=None, vb=None):
    """Mutual argmax by definition, float64, pure Python loops."""
    va = np.ones(len(a), bool) if va is None else va
    vb = np.ones(len(b), bool) if vb is None else vb
    out = []
    for s in range(len(a_off) - 1):
        A = [a[i].astype(np.float64) for i in range(a_off[s], a_off[s + 1])]
        B = [b[j].astype(np.float64) for j in range(b_off[s], b_off[s + 1])]
        cos = lambda x, y: float(x @ y / (np.sqrt(x @ x) * np.sqrt(y @ y)))  # noqa: E731
        okA = [va[a_off[s] + i] for i in range(len(A))]
        okB = [vb[b_off[s] + j] for j in range(len(B))]
        links = []
        for i in range(len(A)):
            if not okA[i]:
                continue
            cands = [j for j in range(len(B)) if okB[j]]
            if not cands:
                continue
            j = max(cands, key=lambda j: cos(A[i], B[j]))
            back = max([k for k in range(len(A)) if okA[k]], key=lambda k: cos(A[k], B[j]))
            if back == i:
                links.append((i, j))
        out.append(links)
    return out


@pytest.mark.parametrize("kernel", [align_numba, align_numpy, align_torch])
def test_aligner_matches_brute_force(kernel):
    rng = np.random.default_rng(1)
    a, a_off = _ragged(rng, 60, 16)
    b, b_off = _ragged(rng, 60, 16)
    ref = brute_force(a, a_off, b, b_off)
    got = kernel(a, a_off, b, b_off)
    assert [got.sentence(s) for s in range(60)] == ref
    assert sum(map(len, ref)) > 100  # the test exercises many links, empty sentences too
    assert any(a_off[s] == a_off[s + 1] for s in range(60))


@pytest.mark.parametrize("kernel", [align_numba, align_numpy, align_torch])
def test_aligner_respects_valid_mask(kernel):
    rng = np.random.default_rng(2)
    a, a_off = _ragged(rng, 40, 8, lo=1)
    b, b_off = _ragged(rng, 40, 8, lo=1)
    va = rng.random(len(a)) > 0.3
    vb = rng.random(len(b)) > 0.3
    ref = brute_force(a, a_off, b, b_off, va, vb)
    got = kernel(a, a_off, b, b_off, va, vb)
    assert [got.sentence(s) for s in range(40)] == ref


def test_translated_words_are_found():
    """Target = a permutation of source words plus small noise: the aligner recovers it."""
    rng = np.random.default_rng(3)
    a, a_off = _ragged(rng, 30, 32, lo=2)
    b = np.empty_like(a)
    truth = []
    for s in range(30):
        x0, x1 = a_off[s], a_off[s + 1]
        perm = rng.permutation(x1 - x0)
        b[x0:x1] = a[x0:x1][perm] + 0.05 * rng.standard_normal((x1 - x0, 32))
        truth.append(sorted((int(perm[j]), j) for j in range(x1 - x0)))
    got = align_numba(a, a_off, b, a_off.copy())
    assert [got.sentence(s) for s in range(30)] == truth
    near = nearest_in_sentence(a, a_off, b, a_off)
    for s in range(30):
        for i, j in truth[s]:
            assert near[a_off[s] + i] == j


def test_nearest_in_sentence_matches_numpy():
    rng = np.random.default_rng(4)
    a, a_off = _ragged(rng, 25, 8)
    b, b_off = _ragged(rng, 25, 8)
    got = nearest_in_sentence(a, a_off, b, b_off)
    for s in range(25):
        for i in range(a_off[s], a_off[s + 1]):
            if b_off[s] == b_off[s + 1]:
                assert got[i] == -1
            else:
                sims = [float(a[i].astype(np.float64) @ b[j] / np.linalg.norm(b[j])) for j in range(b_off[s], b_off[s + 1])]
                assert got[i] == int(np.argmax(sims))


def test_one_to_one_filter():
    links = [(0, 0), (1, 1), (1, 2), (2, 3), (3, 3), (4, 5), (5, 4)]
    assert one_to_one(links) == [(0, 0), (4, 5), (5, 4)]


def test_read_pharaoh_filters_and_checks(tmp_path):
    p = tmp_path / "al.txt"
    p.write_text("0-0 1-1 1-2 2-3\n\n0-1 1-0 2-2\n")
    src = [["a", "b", "c"], [], ["x", "y", "Berlin"]]
    tgt = [["a", "b", "c", "d"], [], ["u", "v", "Berlin"]]
    al = read_pharaoh(p, src, tgt)
    assert [al.sentence(s) for s in range(3)] == [[(0, 0), (2, 3)], [], [(0, 1), (1, 0), (2, 2)]]
    al2 = read_pharaoh(p, src, tgt, drop_identical=True)
    assert [al2.sentence(s) for s in range(3)] == [[(2, 3)], [], [(0, 1), (1, 0)]]
    assert [drop_identical_links(al, src, tgt).sentence(s) for s in range(3)] == [al2.sentence(s) for s in range(3)]
    al3 = read_pharaoh(p, keep_one_to_one=False)
    assert al3.sentence(0) == [(0, 0), (1, 1), (1, 2), (2, 3)]
    # round trip through save
    back = read_pharaoh(al.save(tmp_path / "out.txt"), src, tgt)
    assert np.array_equal(back.offsets, al.offsets) and np.array_equal(back.tgt, al.tgt)


def test_read_pharaoh_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("0-0\n0-x\n")
    with pytest.raises(CorpusError, match=r"bad link '0-x'.*line 2"):
        read_pharaoh(p)
    p.write_text("0-0\n5-0\n")
    with pytest.raises(CorpusError, match=r"outside the sentence.*line 2"):
        read_pharaoh(p, [["a"], ["b"]], [["c"], ["d"]])
    with pytest.raises(CorpusError, match="2 alignment lines but 3 sentences"):
        read_pharaoh(p, [["a"]] * 3, [["b"]] * 3)


def test_global_indices():
    al = Alignment.from_lists([[(0, 1)], [], [(1, 0), (2, 2)]])
    gs, gt = al.global_indices(np.array([0, 3, 5, 8]), np.array([0, 2, 2, 6]))
    assert gs.tolist() == [0, 6, 7] and gt.tolist() == [1, 2, 4]
