"""Every model family on a tiny random checkpoint: family detection, poolings allowed, K hidden
states, encoder-only runs of encoder-decoders, NLLB source language, and batched (padded,
length-sorted; fp32 and bf16) `embed` against batch-size-1 float32.

Tolerances: fp32 batched vs batch-1: |diff| <= 1e-5 (abs) + 1e-5 (rel) for every family except
CANINE, whose forward itself depends on the padded length: it max-pools the padded char mask
(a sentence whose length is not a multiple of the rate gets one extra, attended molecule) and
its upsampling repeats molecules by the padded length (the last chars see another molecule).
For CANINE: initial char layers exact (1e-5); molecule layers cosine >= 0.999 (measured
0.99997); final, upsampled char layers cosine >= 0.85 (measured 0.889 with mean pooling on
this random model; only the trailing < 2*rate chars differ). Extract CANINE with batch size 1
where exactness matters.
bf16 batched vs fp32 batch-1 (CANINE: fp32 batched): cosine >= 0.99 per sentence and layer.
Decoders (tiny Llama, Qwen2, Gemma: GQA, RoPE; GPT-2; BLOOM: ALiBi): batched with right AND left padding vs
batch-1, every pooling, |diff| <= 1e-5 abs + 1e-5 rel; `last` also against the hidden state of
the sentence's last token indexed by hand from an unpadded forward.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babelmap.engine.errors import LanguageError, ModelError
from babelmap.engine.models import load_model
from tiny import FAMILIES, LLM_FAMILIES, make_tiny_family



LAYERS = 2
TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Быстрая коричневая лиса прыгает.",
         "敏捷的棕色狐狸跳过了懒狗。", "In the beginning was the Word, and the Word was with God.",
         "Der Fuchs.", "الثعلب البني السريع يقفز فوق الكلب الكسول."]
EXPECTED = {  # family, default pooling, K
    "bert": ("encoder", "mean", LAYERS + 1), "xlm-roberta": ("encoder", "mean", LAYERS + 1),
    "mt5": ("encoder-decoder", "mean", LAYERS + 1), "nllb": ("encoder-decoder", "mean", LAYERS + 1),
    "gpt2": ("decoder", "weighted", LAYERS + 1), "bloom": ("decoder", "weighted", LAYERS + 1),
    "canine": ("canine", "mean", LAYERS + 5),
    "llama": ("decoder", "weighted", LAYERS + 1), "qwen2": ("decoder", "weighted", LAYERS + 1),
    "gemma": ("decoder", "weighted", LAYERS + 1),
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    return {fam: make_tiny_family(tmp_path_factory.mktemp(fam), fam, layers=LAYERS) for fam in FAMILIES}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _batched(lm, texts, pooling, lang, batch_size=3):
    """Length-sorted, padded batches, returned in the original order."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), lm.num_hidden_states, lm.hidden_size), np.float32)
    for i in range(0, len(texts), batch_size):
        idx = order[i:i + batch_size]
        out[idx] = lm.embed(lm.tokenize([texts[j] for j in idx], lang), pooling).float().cpu().numpy()
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_family_detection_and_hidden_states(tiny_dirs, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu")
    fam, pooling, k = EXPECTED[family]
    assert (lm.family, lm.default_pooling, lm.num_hidden_states) == (fam, pooling, k)
    batch = lm.tokenize(TEXTS[:2], "deu_Latn")
    keys = {"input_ids", "attention_mask"} | ({"token_type_ids"} if fam in ("encoder", "canine") else set())
    with torch.inference_mode():
        hs = lm.model(**{k_: v for k_, v in batch.items() if k_ in keys}, output_hidden_states=True).hidden_states
    assert len(hs) == k
    assert lm.embed(batch).shape == (2, k, lm.hidden_size)
    if fam == "encoder-decoder":  # the encoder only: no decoder weights in memory
        assert not any("decoder" in n for n, _ in lm.model.named_parameters())
    with pytest.raises(ModelError, match="does not apply"):
        lm.embed(batch, "weighted" if fam != "decoder" else "cls")


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_equals_single_fp32_and_bf16(tiny_dirs, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu", dtype="float32")
    lm16 = load_model(str(tiny_dirs[family]), device="cpu", dtype="bfloat16")
    lang = "deu_Latn"
    for pooling in lm.poolings:
        single = np.concatenate([lm.embed(lm.tokenize([t], lang), pooling).numpy() for t in TEXTS])
        batched = _batched(lm, TEXTS, pooling, lang)
        if family == "canine":
            cos = _cos(batched, single).min(0)
            np.testing.assert_allclose(batched[:, :2], single[:, :2], rtol=1e-5, atol=1e-5)  # char layers
            assert cos[2:-2].min() >= 0.999, (pooling, cos)  # molecule layers: one extra molecule attended
            assert cos[-2:].min() >= 0.85, (pooling, cos)  # upsampled char layers (see module docstring)
        else:
            np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5, err_msg=pooling)
        low = _batched(lm16, TEXTS, pooling, lang)
        # CANINE: against fp32 of the same batches, so only precision is measured
        cos = _cos(low, batched if family == "canine" else single)
        assert cos.min() >= 0.99, (pooling, cos.min())


def test_nllb_source_language(tiny_dirs):
    lm = load_model(str(tiny_dirs["nllb"]), device="cpu")
    tok = lm.tokenizer
    de = lm.tokenize(["Der Fuchs."], "deu_Latn")["input_ids"][0].tolist()
    fr = lm.tokenize(["Der Fuchs."], "fra_Latn-variant1")["input_ids"][0].tolist()
    assert de[0] == tok.convert_tokens_to_ids("deu_Latn") and fr[0] == tok.convert_tokens_to_ids("fra_Latn")
    assert de[1:] == fr[1:] and de[-1] == tok.eos_token_id
    assert lm.token_counts(["Der Fuchs."], "deu_Latn") == [len(de)]
    # the language token changes the encoder's output
    a = lm.embed(lm.tokenize(["Der Fuchs."], "deu_Latn")).numpy()
    b = lm.embed(lm.tokenize(["Der Fuchs."], "fra_Latn")).numpy()
    assert np.abs(a - b).max() > 1e-4
    with pytest.raises(LanguageError, match="xyz_Latn"):
        lm.tokenize(["x"], "xyz_Latn")


def test_decoder_gets_pad_token_and_right_padding(tiny_dirs):
    lm = load_model(str(tiny_dirs["gpt2"]), device="cpu")
    assert lm.tokenizer.pad_token is not None and lm.tokenizer.padding_side == "right"


@pytest.mark.parametrize("family", LLM_FAMILIES + ("gpt2", "bloom"))
def test_llm_poolings_left_and_right_padding(tiny_dirs, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu", dtype="float32")
    assert lm.poolings == ("weighted", "weighted-reference", "mean", "last")
    tok = lm.tokenizer
    assert tok.pad_token is not None and tok.pad_token_id != tok.bos_token_id
    if family in ("llama", "gemma"):  # their tokenizers have no pad token: eos pads
        assert tok.pad_token == tok.eos_token
    ids = [tok([t])["input_ids"][0] for t in TEXTS]
    with torch.inference_mode():  # by hand: the last token's state of each sentence run alone
        alone = [lm.model(input_ids=torch.tensor([i]), output_hidden_states=True).hidden_states for i in ids]
    by_hand = np.stack([np.stack([h[0, len(i) - 1].numpy() for h in hs]) for hs, i in zip(alone, ids)])
    single = {p: np.concatenate([lm.embed(lm.tokenize([t]), p).numpy() for t in TEXTS]) for p in lm.poolings}
    np.testing.assert_allclose(single["last"], by_hand, rtol=1e-6, atol=1e-6)
    for side in ("right", "left"):
        tok.padding_side = side
        batch = lm.tokenize(TEXTS[:3])
        col = 0 if side == "left" else -1
        assert (batch["attention_mask"][:, col] == 0).any()  # really padded on that side
        for pooling in lm.poolings:
            batched = _batched(lm, TEXTS, pooling, None)
            np.testing.assert_allclose(batched, single[pooling], rtol=1e-5, atol=1e-5, err_msg=f"{side} {pooling}")
        np.testing.assert_allclose(_batched(lm, TEXTS, "last", None), by_hand, rtol=1e-5, atol=1e-5)
    tok.padding_side = "right"


def test_family_of_configs_by_type_and_architecture():
    from transformers import PretrainedConfig

    from babelmap.engine.models.families import family_of

    def cfg(model_type, **kw):
        c = PretrainedConfig(**kw)
        c.model_type = model_type
        return c
    assert family_of(cfg("llama")) == family_of(cfg("qwen2")) == family_of(cfg("gemma")) == "decoder"
    assert family_of(cfg("starcoder2", architectures=["Starcoder2ForCausalLM"])) == "decoder"  # not listed
    assert family_of(cfg("newbert", architectures=["NewBertForMaskedLM"])) == "encoder"
    assert family_of(cfg("newseq", is_encoder_decoder=True)) == "encoder-decoder"
    assert family_of(cfg("canine")) == "canine"


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a local checkpoint directory"):
        load_model(str(tmp_path / "nope"), device="cpu")
