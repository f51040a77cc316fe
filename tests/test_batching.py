"""Batching inside a unit and units from the corpus: padding-capped sorted batches checked
against a direct loop, units independent of the number of processes, `collate` equal to
the tokenizer's own padding (right and left), and the padding share on real FLORES."""
from __future__ import annotations

import numpy as np
import pytest

from babelmap.engine.batching import collate, padding_share, sort_batches, token_ids
from babelmap.engine.plan import assign, plan_units, unit_sizes


def test_sort_batches_budget_share_and_cover():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, 2000)
    lengths[5] = 900  # longer than the budget: alone
    batches = sort_batches(lengths, 1024, 0.9)
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(2000))  # every row once
    flat = lengths[rows]
    assert (np.diff(flat) <= 0).all()  # one length sort, longest first
    for b in batches:
        ls = lengths[b.rows]
        assert b.width == ls.max() and b.tokens == ls.sum()
        assert b.cost <= 1024 or len(b) == 1
        assert b.tokens / b.cost >= 0.9 or len(b) == 1
    # greedy: the next row would break the budget or the share (checked with a direct loop)
    for b, nxt in zip(batches, batches[1:]):
        extra = lengths[nxt.rows[0]]
        tokens, rows_n = b.tokens + extra, len(b) + 1
        assert rows_n * b.width > 1024 or tokens / (rows_n * b.width) < 0.9
    assert padding_share(batches) >= 0.9
    # ties keep unit order (stable): equal lengths come out ascending
    eq = sort_batches(np.full(10, 7), 1000)
    assert np.concatenate([b.rows for b in eq]).tolist() == list(range(10))
    with pytest.raises(ValueError):
        sort_batches(lengths, 0)


def test_units_do_not_depend_on_processes_and_tile_the_corpus():
    rng = np.random.default_rng(1)
    L, S = 30, 500
    mask = rng.random((L, S)) < 0.8
    mask[3] = True          # a big language...
    mask[7] = False         # ...and an absent one
    chars = rng.integers(5, 200, (L, S)) * mask
    langs = [f"l{i:02d}_Latn" for i in range(L)]
    units = plan_units(langs, mask, chars, target=1000, cap=1200)
    again = plan_units(langs, mask, chars, target=1000, cap=1200)
    assert [u.uid for u in units] == [u.uid for u in again]
    covered = np.zeros((L, S), int)
    for u in units:
        assert u.n_sentences <= 1200
        for b in u.blocks:
            assert (b.sentences >= b.start).all() and (b.sentences < b.stop).all()
            assert np.array_equal(b.sentences, np.flatnonzero(mask[b.lang_index, b.start:b.stop]) + b.start)
            covered[b.lang_index, b.sentences] += 1
        assert u.cost == sum(int(chars[b.lang_index, b.sentences].sum()) for b in u.blocks)
    np.testing.assert_array_equal(covered, mask.astype(int))  # every present sentence exactly once
    # a language above the cap is cut into pieces that tile [0, S)
    big = sorted([b for u in units for b in u.blocks if b.lang_index == 3], key=lambda b: b.start)
    assert len(big) == 1 or (big[0].start == 0 and big[-1].stop == S
                             and all(a.stop == b.start for a, b in zip(big, big[1:])))
    small = plan_units(langs, mask, chars, target=100, cap=120)
    big = sorted([b for u in small for b in u.blocks if b.lang_index == 3], key=lambda b: b.start)
    assert len(big) == 5 and big[0].start == 0 and big[-1].stop == S
    assert all(a.stop == b.start for a, b in zip(big, big[1:]))
    # all but the last unit reach the target or were closed by the cap
    for u, nxt in zip(units, units[1:]):
        assert u.n_sentences >= 1000 or u.n_sentences + len(nxt.blocks[0]) > 1200
    # assignment: every unit once, loads balanced by characters within the largest unit
    for n in (1, 2, 3):
        shares = assign(units, n)
        assert sorted(u.uid for s in shares for u in s) == sorted(u.uid for u in units)
        loads = [sum(u.cost for u in s) for s in shares]
        assert max(loads) - min(loads) <= max(u.cost for u in units)


def test_unit_sizes():
    assert unit_sizes(4096, 13 * 384 * 2) == (2048, (512 << 20) // (13 * 384 * 2))
    assert unit_sizes(65536, 13 * 384 * 2)[0] == 32768
    assert unit_sizes(65536, 25 * 1024 * 2)[0] == (512 << 20) // (25 * 1024 * 2)  # memory-bound
    assert unit_sizes(4096, 100, unit_sentences=7) == (7, 7)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_collate_equals_the_tokenizer_padding(tmp_path, family):
    """The one tokenization pass + collate gives exactly lm.tokenize's tensors (right padding
    for BERT, left for a decoder)."""
    from tiny import make_tiny_family

    from babelmap.engine.models import load_model
    lm = load_model(str(make_tiny_family(tmp_path / family, family)), device="cpu")
    if family == "gpt2":
        lm.tokenizer.padding_side = "left"
    texts = ["a b c d e f", "hello", "the quick brown fox jumps", "x y"]
    ids = token_ids(lm, texts, "eng_Latn")
    rows = np.array([2, 0, 3, 1])
    width = max(len(ids[j]) for j in rows)
    got = collate(ids, rows, width, lm.tokenizer)
    want = lm.tokenize([texts[j] for j in rows], "eng_Latn")
    assert set(got) == {k for k in want if k in ("input_ids", "attention_mask", "token_type_ids")}
    for k in got:
        np.testing.assert_array_equal(got[k].numpy(), want[k].numpy(), err_msg=k)
    assert [len(x) for x in ids] == lm.token_counts(texts, "eng_Latn")


def test_padding_share_on_flores(flores_dir):
    """10 FLORES languages x 100 sentences in one unit: >= 0.9 useful tokens at the CPU
    budget (per-language batches of the previous scheme: about 0.65)."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.models import load_model
    corpus = read_corpus(flores_dir / "dev" if (flores_dir / "dev").is_dir() else flores_dir, "flores")
    corpus = corpus.select(languages=corpus.languages[:10], first=100)
    lm = load_model(None, device="cpu")
    lengths = np.concatenate([[len(x) for x in token_ids(lm, [t for t in corpus.text(l) if t], l)]
                              for l in corpus.languages])
    assert lengths.size == 1000
    assert padding_share(sort_batches(lengths, 4096)) >= 0.9
    assert padding_share(sort_batches(lengths, 65536)) >= 0.9
