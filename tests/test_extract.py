"""Extraction: batched, length-sorted extraction against a batch-size-1 float32 reference
(a straight Hugging Face forward and masked mean in float64, written here), the store
contract, batching, and the CLI end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babelmap import open_store
from babelmap.engine.batching import make_batches
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.extract import extract
from babelmap.engine.parts import parts_dir
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import babelmap, corpus_rows, extract_args, write_plain

# float32 batched forward with padding vs a batch-size-1 forward: differences come from
# summation order only, so 1e-5 relative (plus 1e-5 absolute) is a tight bound on tiny_bert.
RTOL, ATOL = 1e-4, 1e-5


def make_corpus(rows: dict, name: str = "toy") -> ParallelCorpus:
    langs = sorted(rows)
    n = len(next(iter(rows.values())))
    return ParallelCorpus(name, langs, [f"s{j}" for j in range(n)], [rows[l] for l in langs])


_MODELS: dict = {}


def reference(model_dir, texts):
    """[K, n, H] float64: batch size 1, float32 forward, mean over all tokens (no padding)."""
    from transformers import AutoModel, AutoTokenizer
    if str(model_dir) not in _MODELS:
        _MODELS[str(model_dir)] = (AutoTokenizer.from_pretrained(str(model_dir)),
                                   AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval())
    tok, model = _MODELS[str(model_dir)]
    out, ntok = [], []
    with torch.no_grad():
        for t in texts:
            enc = tok([t], return_tensors="pt", truncation=True, max_length=128)
            hs = model(**enc, output_hidden_states=True).hidden_states
            out.append([h[0].double().numpy().mean(0) for h in hs])
            ntok.append(enc["input_ids"].shape[1])
    return np.array(out).transpose(1, 0, 2), np.array(ntok)


@pytest.fixture(scope="module")
def rows():
    return corpus_rows(n=20, seed=3)


def test_batched_equals_batch1_reference(tmp_path, tiny_bert, rows):
    corpus = make_corpus(rows)
    out = extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", store_dtype="float32",
                  token_budget=96, progress=False)
    with open_store(out) as st:
        assert st.languages == corpus.languages and st.sentence_ids == corpus.sentence_ids
        np.testing.assert_array_equal(st.mask, corpus.mask)
        assert st.shape == (4, 3, 20, 32) and st.dtype == np.float32
        for lang in corpus.languages:
            i = st.index(lang)
            present = [j for j, t in enumerate(corpus.text(lang)) if t is not None]
            ref, ntok = reference(tiny_bert, [corpus.text(lang)[j] for j in present])
            got = np.stack([st.embeddings(lang, k) for k in st.layers])  # [K, S, H]
            np.testing.assert_allclose(got[:, present], ref, rtol=RTOL, atol=ATOL)
            missing = [j for j in range(20) if j not in present]
            assert not got[:, missing].any()
            np.testing.assert_array_equal(st.n_tokens[i, present], ntok)
            assert not st.n_tokens[i, missing].any()
        a = st.attrs
    assert a["model_fingerprint"] and a["corpus_fingerprint"] == corpus.fingerprint()
    assert (a["pooling"], a["dtype"], a["compute_dtype"], a["token_budget"]) == ("mean", "float32", "float32", 96)
    assert a["format"] == "babelmap.store" and a["skipped"] == "[]"
    assert not parts_dir(out).exists()


def test_float16_store_and_bf16_forward(tmp_path, tiny_bert, rows):
    corpus = make_corpus(rows)
    f32 = extract(corpus, tmp_path / "a.h5", str(tiny_bert), device="cpu", store_dtype="float32", progress=False)
    f16 = extract(corpus, tmp_path / "b.h5", str(tiny_bert), device="cpu", progress=False)
    bf = extract(corpus, tmp_path / "c.h5", str(tiny_bert), device="cpu", dtype="bf16", store_dtype="float32",
                 progress=False)
    with open_store(f32) as a, open_store(f16) as b, open_store(bf) as c:
        x, y, z = a.block(), b.block(), c.block()
        assert b.dtype == np.float16 and b.attrs["dtype"] == "float16"
        assert c.attrs["compute_dtype"] == "bfloat16"
    np.testing.assert_array_equal(y, x.astype(np.float16))  # the float16 store is the float32 one rounded
    m = np.abs(x).sum(-1) > 0
    cos = (x * z).sum(-1)[m] / (np.linalg.norm(x, axis=-1)[m] * np.linalg.norm(z, axis=-1)[m])
    assert cos.min() > 0.99, cos.min()  # bf16 forward, fp32 pooling


def test_batches_are_sorted_and_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, 300)
    lengths[17] = 500  # longer than the budget: alone
    pos = np.arange(1000, 1300)
    batches = make_batches(pos, lengths, 128)
    seen = np.concatenate([b.sentences for b in batches])
    assert sorted(seen.tolist()) == pos.tolist()
    flat_len = lengths[seen - 1000]
    assert (np.diff(flat_len) <= 0).all()  # longest first
    for b in batches:
        ls = lengths[b.sentences - 1000]
        assert b.cost == len(b) * ls.max()
        assert b.cost <= 128 or len(b) == 1
        assert (len(b) + 1) * ls.max() > 128 or b is batches[-1]  # greedy: full batches
    assert [len(b) for b in batches if 1017 in b.sentences] == [1]


def test_empty_text_is_an_error_or_a_recorded_skip(tmp_path, tiny_bert, rows):
    rows = {k: list(v) for k, v in rows.items()}
    rows["eng_Latn"][4] = "  "
    corpus = make_corpus(rows)
    from babelmap.errors import CorpusError
    with pytest.raises(CorpusError, match=r"'s4' is empty.*eng_Latn"):
        extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", progress=False)
    out = extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", progress=False, skip_bad=True)
    with open_store(out) as st:
        assert not st.mask[st.index("eng_Latn"), 4]
        assert '"sentence": "s4"' in st.attrs["skipped"]


def test_cli_extract_and_check(tmp_path, tiny_bert, rows):
    corpus_dir = write_plain(tmp_path / "corpus", rows)
    out = tmp_path / "s.h5"
    r = babelmap(extract_args(corpus_dir, tiny_bert, out, "--langs", "deu_*", "eng_*", "--max-sentences", "12"),
                 tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 languages x 12 sentences x 3 hidden states x 32 dims" in r.stdout
    with open_store(out) as st:
        assert st.languages == ["deu_Latn", "eng_Latn"] and len(st.sentence_ids) == 12
        assert "--max-sentences 12" in st.attrs["command"]
    r = babelmap(["check", str(out)], tmp_path)
    assert r.returncode == 0 and "ok: no defects" in r.stdout, r.stderr


# mixed-language batches vs one language per unit (per-language batches): the same model
# on the same sentences, padded to other widths. float32 differences come from summation
# order only; the stated tolerance is the batch-1 one above (rtol 1e-4, atol 1e-5).
def test_mixed_language_batches_equal_per_language_ones(tmp_path, tiny_bert, rows):
    from babelmap.engine.parts import shards_dir
    corpus = make_corpus(rows)
    mixed = extract(corpus, tmp_path / "m.h5", str(tiny_bert), device="cpu", store_dtype="float32",
                    token_budget=96, progress=False)
    per = extract(corpus, tmp_path / "p.h5", str(tiny_bert), device="cpu", store_dtype="float32",
                  token_budget=96, progress=False, unit_sentences=20)
    assert len(list(shards_dir(mixed).iterdir())) == 1  # one unit: batches mix the 4 languages
    assert len(list(shards_dir(per).iterdir())) == 4    # one language per unit
    with open_store(mixed) as a, open_store(per) as b:
        np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
        np.testing.assert_array_equal(a.mask, b.mask)
        x, y = a.block(), b.block()
    np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)
    assert np.abs(x).sum() > 0


def test_layers_keep_only_some_hidden_states(tmp_path, tiny_bert, rows):
    corpus = make_corpus(rows)
    full = extract(corpus, tmp_path / "f.h5", str(tiny_bert), device="cpu", progress=False)
    sub = extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", progress=False, layers="0,-1")
    with open_store(full) as a, open_store(sub) as b:
        assert list(b.layers) == [0, 2] and b.shape == (4, 2, 20, 32)
        assert b.attrs["layers"] in ("[0, 2]", "[0,2]")
        np.testing.assert_array_equal(b.block(), a.block()[:, [0, 2]])  # same batches, same numbers
    from babelmap.errors import ModelError
    with pytest.raises(ModelError, match="hidden state 7 does not exist; this model has 3"):
        extract(corpus, tmp_path / "x.h5", str(tiny_bert), device="cpu", progress=False, layers="0,7")
    with pytest.raises(ModelError, match="at most --max-length 128"):
        extract(corpus, tmp_path / "x.h5", str(tiny_bert), device="cpu", progress=False, max_length=100000)


def test_compute_dtype_auto_is_fp32_on_cpu_and_recorded(tmp_path, tiny_bert, rows):
    out = extract(make_corpus(rows), tmp_path / "s.h5", str(tiny_bert), device="cpu", progress=False)
    with open_store(out) as st:
        assert st.attrs["compute_dtype"] == "float32"
    from babelmap.engine.extract import resolve_compute_dtype
    assert resolve_compute_dtype("auto", "cuda:0") == "bfloat16"
    assert resolve_compute_dtype(None, "cpu") == "float32" and resolve_compute_dtype("fp16", "cpu") == "float16"


def test_a_writer_error_stops_the_run_and_a_rerun_finishes(tmp_path, tiny_bert, rows, monkeypatch):
    """The writer thread's failure (a full disk at the 2nd part) ends the run with its one-line
    message; the finished part is kept and the rerun gives the uninterrupted store."""
    from babelmap.errors import StoreError
    from extract_util import assert_same_store
    corpus = make_corpus(rows)
    ref = extract(corpus, tmp_path / "r.h5", str(tiny_bert), device="cpu", progress=False, unit_sentences=20)
    out = tmp_path / "s.h5"
    monkeypatch.setenv("BABELMAP_TEST_ENOSPC_AT_PART", "2")
    with pytest.raises(StoreError, match="(?i)space|disk"):
        extract(corpus, out, str(tiny_bert), device="cpu", progress=False, unit_sentences=20)
    assert not out.exists() and len([p for p in parts_dir(out).iterdir() if ".tmp-" not in p.name]) == 1
    monkeypatch.delenv("BABELMAP_TEST_ENOSPC_AT_PART")
    extract(corpus, out, str(tiny_bert), device="cpu", progress=False, unit_sentences=20)
    assert_same_store(ref, out)


@pytest.mark.parametrize("extra, message", [
    (["--token-budget", "0"], "--token-budget must be a positive number"),
    (["--token-budget", "-5"], "--token-budget must be a positive number"),
    (["--max-length", "0"], "--max-length must be a positive number"),
])
def test_cli_bad_settings_are_one_line_errors(tmp_path, tiny_bert, rows, extra, message):
    corpus_dir = write_plain(tmp_path / "corpus", rows)
    r = babelmap(extract_args(corpus_dir, tiny_bert, tmp_path / "s.h5", *extra), tmp_path)
    assert r.returncode == 1 and message in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("overwrite", [False, True])
def test_cli_out_a_folder_is_an_error(tmp_path, tiny_bert, rows, overwrite):
    corpus_dir = write_plain(tmp_path / "corpus", rows)
    (tmp_path / "dir").mkdir()
    r = babelmap(extract_args(corpus_dir, tiny_bert, tmp_path / "dir", *(["--overwrite"] if overwrite else [])),
                 tmp_path)
    assert r.returncode == 1 and "is a folder; give a file name" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "dir").is_dir()


def test_corpus_provenance_is_recorded(tmp_path, tiny_bert, rows):
    corpus = make_corpus(rows)
    corpus.split, corpus.selection = "devtest", "first 20 sentences"
    assert corpus.provenance()["split"] == "devtest"
    out = extract(corpus, tmp_path / "s.h5", str(tiny_bert), device="cpu", progress=False)
    with open_store(out) as st:
        assert st.attrs["split"] == "devtest" and st.attrs["selection"] == "first 20 sentences"
