"""Pooling against float64 NumPy references written here, on real hidden states of tiny models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babelmap.engine.models import load_model
from babelmap.engine.models.pooling import canine_downsampled_mask, pool, pooling_weights
from tiny import make_tiny_family



TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Быстрая лиса.",
         "敏捷的棕色狐狸跳过了懒狗。", "In the beginning was the Word, and the Word was with God, amen."]


def _reference(h: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """float64 pooling of one layer [B, T, H], row by row over the kept positions only."""
    out = np.zeros((h.shape[0], h.shape[2]))
    for b in range(h.shape[0]):
        kept = np.flatnonzero(mask[b])
        x = h[b, kept].astype(np.float64)
        n = len(kept)
        if method == "mean":
            w = np.full(n, 1.0 / n)
        elif method == "cls":
            w = np.eye(n)[0]
        elif method == "last":
            w = np.eye(n)[-1]
        elif method == "weighted":  # SGPT: w_i = i / sum_{j=1..n} j
            w = np.arange(1, n + 1) / (n * (n + 1) / 2)
        elif method == "weighted-reference":  # mPLM-Sim: torch.arange(seq_len, 0, -1.0), normalised
            w = np.arange(n, 0, -1.0)
            w = w / w.sum()
        out[b] = w @ x
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {fam: load_model(str(make_tiny_family(tmp_path_factory.mktemp(fam), fam)), device="cpu")
            for fam in ("bert", "gpt2", "canine")}


def _hidden(lm, texts):
    batch = lm.tokenize(texts)
    with torch.inference_mode():
        hs = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      output_hidden_states=True).hidden_states
    return batch, hs


@pytest.mark.parametrize("family,method", [("bert", "mean"), ("bert", "cls"), ("gpt2", "weighted"),
                                           ("gpt2", "weighted-reference"), ("gpt2", "mean"),
                                           ("gpt2", "last")])
def test_pool_matches_numpy_reference(models, family, method):
    lm = models[family]
    batch, hs = _hidden(lm, TEXTS)
    mask = batch["attention_mask"].numpy()
    assert mask.min() == 0  # the batch really is padded
    pooled = pool(hs, batch["attention_mask"], method).numpy()
    assert pooled.shape == (len(TEXTS), len(hs), lm.hidden_size) and pooled.dtype == np.float32
    for k, h in enumerate(hs):
        np.testing.assert_allclose(pooled[:, k], _reference(h.numpy(), mask, method), rtol=1e-5, atol=1e-6)
    # embed() = the same pooling on the device
    np.testing.assert_allclose(lm.embed(batch, method).numpy(), pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["mean", "cls", "weighted", "weighted-reference", "last"])
def test_padding_side_does_not_matter(models, method):
    """Moving each row's padding to the left (hidden states and mask alike) changes nothing:
    positions are counted over kept tokens only."""
    batch, hs = _hidden(models["gpt2"], TEXTS)
    mask = batch["attention_mask"]
    n = mask.sum(1)
    T = mask.shape[1]
    left_mask = torch.stack([torch.roll(m, int(T - k)) for m, k in zip(mask, n)])
    left_hs = [torch.stack([torch.roll(h[b], int(T - n[b]), 0) for b in range(len(n))]) for h in hs]
    assert left_mask[:, -1].all() and not left_mask[:, 0].all()
    np.testing.assert_allclose(pool(left_hs, left_mask, method).numpy(), pool(hs, mask, method).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_weights_sum_to_one_and_differ():
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    w = {m: pooling_weights(mask, m).numpy() for m in ("mean", "cls", "weighted", "weighted-reference", "last")}
    for m, v in w.items():
        np.testing.assert_allclose(v.sum(1), 1.0, rtol=1e-6)
        assert (v[mask.numpy() == 0] == 0).all(), m
    np.testing.assert_allclose(w["weighted"][0, :4], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(w["weighted-reference"][0, :4], [0.4, 0.3, 0.2, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown pooling"):
        pooling_weights(mask, "max")


def test_last_and_cls_pick_the_kept_ends_on_either_side():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for method, expected in (("last", [2, 4, 2, 4]), ("cls", [0, 2, 1, 0])):
        w = pooling_weights(mask, method).numpy()
        np.testing.assert_array_equal(w.argmax(1), expected)
        np.testing.assert_array_equal(w.sum(1), 1.0)
        assert (w > 0).sum() == 4


def test_nan_in_padding_never_reaches_the_pooled_vector():
    """Fully masked attention rows (left padding) can leave NaN at padding positions."""
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    h[0, :2] = float("nan")
    for method in ("mean", "cls", "weighted", "weighted-reference", "last"):
        out = pool([h], mask, method).numpy()
        assert np.isfinite(out).all(), method
        np.testing.assert_allclose(out[0, 0], _reference(h[:1].numpy(), mask[:1].numpy(), method)[0], rtol=1e-6)


def test_canine_downsampled_layers(models):
    """CANINE: char layers pooled with the char mask, molecule layers with the downsampled mask
    (floor(n / rate) molecules per sentence, as CANINE computes it for the sentence alone)."""
    lm = models["canine"]
    rate = lm.model.config.downsampling_rate
    batch, hs = _hidden(lm, TEXTS)
    mask = batch["attention_mask"].numpy()
    n = mask.sum(1)
    down_len = mask.shape[1] // rate
    assert sorted({h.shape[1] for h in hs}) == [down_len, mask.shape[1]]
    down = canine_downsampled_mask(batch["attention_mask"], rate, down_len).numpy()
    for b in range(len(n)):  # CANINE's own MaxPool1d mask of the sentence alone
        alone = lm.model._downsample_attention_mask(torch.ones(1, int(n[b])), rate).numpy()[0]
        np.testing.assert_array_equal(down[b, :len(alone)], alone)
        assert down[b, len(alone):].sum() == 0
    pooled = lm.embed(batch, "mean").numpy()
    for k, h in enumerate(hs):
        m = mask if h.shape[1] == mask.shape[1] else down
        np.testing.assert_allclose(pooled[:, k], _reference(h.numpy(), m, "mean"), rtol=1e-5, atol=1e-6)
