"""LoadedModel options for the GPU-shaped loop, tested on CPU: the cast to the stored dtype and
the layer selection happen inside `embed` (exactly the slice and cast of the full result),
SDPA where the model has it, the compute dtype default per device, `max_length` refused when
0 or beyond the position table, and the hook that hands speech models to engine/models/speech."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from babelmap.engine.errors import ModelError
from babelmap.engine.models import default_compute_dtype, load_model
from tiny import make_tiny_family



TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Быстрая лиса."]


@pytest.fixture(scope="module")
def lm(tiny_bert):
    return load_model(str(tiny_bert), device="cpu")


def test_out_dtype_and_layers_are_the_slice_and_cast_of_the_full_result(lm):
    batch = lm.tokenize(TEXTS)
    full = lm.embed(batch)
    assert full.dtype == torch.float32 and full.shape == (3, lm.num_hidden_states, lm.hidden_size)
    half = lm.embed(batch, out_dtype=torch.float16, layers=[0, -1])
    assert half.dtype == torch.float16 and half.device == lm.device and half.shape == (3, 2, lm.hidden_size)
    np.testing.assert_array_equal(half.numpy(), full[:, [0, lm.num_hidden_states - 1]].to(torch.float16).numpy())
    np.testing.assert_array_equal(lm.embed(batch, layers=[1]).numpy(), full[:, 1:2].numpy())
    for bad in ([lm.num_hidden_states], [-lm.num_hidden_states - 1], []):
        with pytest.raises(ModelError, match="not hidden states of this model"):
            lm.embed(batch, layers=bad)


def test_sdpa_where_supported(lm, tmp_path):
    assert lm.model.config._attn_implementation == "sdpa"
    canine = load_model(str(make_tiny_family(tmp_path / "canine", "canine")), device="cpu")  # no SDPA: falls back
    assert canine.model.config._attn_implementation != "sdpa"


def test_default_compute_dtype(monkeypatch):
    assert default_compute_dtype("cpu") == default_compute_dtype(torch.device("cpu")) == "float32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the decision is tested here
    assert default_compute_dtype("cuda") == default_compute_dtype("auto") == "bfloat16"
    assert default_compute_dtype(torch.device("cuda", 0)) == "bfloat16"


def test_max_length_checked(tiny_bert, tmp_path):
    with pytest.raises(ModelError, match=r"^--max-length 0 must be a positive number of tokens$"):
        load_model(str(tiny_bert), device="cpu", max_length=0)
    with pytest.raises(ModelError, match="--max-length 1000 is beyond this model's 128 positions"):
        load_model(str(tiny_bert), device="cpu", max_length=1000)
    # XLM-R: 130 position rows, positions start after the padding index (1): 128 usable
    xlmr = load_model(str(make_tiny_family(tmp_path / "xlmr", "xlm-roberta")), device="cpu")
    assert xlmr.position_limit == 128 and xlmr.max_length == 128
    with pytest.raises(ModelError, match="beyond this model's 128 positions"):
        xlmr.max_length = 129  # extraction sets it after loading: refused there too
    with pytest.raises(ModelError, match="must be a positive"):
        xlmr.max_length = -3
    xlmr.max_length = 5
    assert xlmr.tokenize([TEXTS[1]])["input_ids"].shape[1] == 5 == xlmr.token_counts([TEXTS[1]])[0]
    lm = load_model(str(tiny_bert), device="cpu", max_length=7)
    assert lm.max_length == 7 and lm.provenance()["max_length"] == 7


@pytest.fixture
def speech_dir(tmp_path):
    from transformers import Wav2Vec2Config
    Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                   conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,)).save_pretrained(str(tmp_path))
    return tmp_path


def test_speech_model_without_the_speech_module_is_a_clear_error(speech_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "babelmap.engine.models.speech", None)  # as if absent
    with pytest.raises(ModelError, match="wav2vec2 speech model; speech models are not supported yet"):
        load_model(str(speech_dir), device="cpu")


def test_speech_model_goes_to_the_speech_module(speech_dir, monkeypatch):
    calls = []
    fake = types.ModuleType("babelmap.engine.models.speech")
    fake.load_speech_model = lambda path, config, device, dtype, **kw: calls.append((path, config.model_type, device,
                                                                              dtype)) or "speech-lm"
    monkeypatch.setitem(sys.modules, "babelmap.engine.models.speech", fake)
    assert load_model(str(speech_dir), device="cpu", dtype="bfloat16") == "speech-lm"
    assert calls == [(speech_dir, "wav2vec2", torch.device("cpu"), torch.bfloat16)]
