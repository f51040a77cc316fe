"""The forgetting study's pieces on a tiny random model: the continual alignment loss enters the
task gradient exactly (grad(task + alpha*align) = grad(task) + alpha*grad(align), each computed
on its own), fine-tuning with it moves the weights differently than without, and the zero-shot
probe and its article bootstrap match independent references (scikit-learn, direct loops)."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from babelmap.analysis.forgetting import (accuracy_with_interval, fit_probe, layer_row, masked_mean,
                                          probe_predict, seed_interval, zero_shot)
from babelmap.engine.alignments import Alignment
from babelmap.engine.corpora import ParallelCorpus
from babelmap.training.continual import ContinualAlignment, encoder_of
from babelmap.training.finetune import finetune
from babelmap.training.loss import AlignmentLoss, Collator, build_examples

ROOT = Path(__file__).resolve().parents[1]
FLORES = ROOT.parent / "shared" / "data" / "flores200"
VOCAB = "the quick brown fox jumps over lazy dog sun moon river stone house tree".split()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pairs(n=8, seed=0):
    """'tgt' = each source word reversed, order shuffled; the true links are known."""
    rng = random.Random(seed)
    src, tgt, links = [], [], []
    for _ in range(n):
        words = rng.sample(VOCAB, rng.randint(3, 6))
        perm = list(range(len(words)))
        rng.shuffle(perm)
        src.append(" ".join(words))
        tgt.append(" ".join(words[p][::-1] for p in perm))
        links.append(sorted((perm[j], j) for j in range(len(words))))
    corpus = ParallelCorpus("synthetic", ["src_Latn", "tgt_Latn"], [str(i) for i in range(n)], [src, tgt])
    return build_examples(corpus, "src_Latn", "tgt_Latn", Alignment.from_lists(links))


def write_task(path: Path, n=24, seed=0) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        label = "a" if i % 2 == 0 else "b"
        pool = VOCAB[:7] if label == "a" else VOCAB[7:]
        lines.append(" ".join(rng.choice(pool) for _ in range(5)) + "\t" + label)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _classifier(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    from babelmap.training.finetune import PooledClassifier
    torch.manual_seed(0)
    model = PooledClassifier(AutoModel.from_pretrained(str(tiny_bert)), 2, "mean")
    return model, AutoTokenizer.from_pretrained(str(tiny_bert))


def test_continual_loss_enters_the_gradient_exactly(tiny_bert):
    from transformers import AutoModel
    model, tok = _classifier(tiny_bert)
    model.eval()  # no dropout: the three backward passes see the same function
    assert encoder_of(model) is model.encoder and encoder_of(model.encoder) is model.encoder
    ex = pairs()
    collate = Collator(tok)
    reference = AutoModel.from_pretrained(str(tiny_bert))
    alpha = 0.7
    extra = ContinualAlignment(ex, collate, alpha=alpha, reference=reference, batch_size=4, seed=3)
    enc = tok(["the quick fox", "moon river stone house"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1])

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    g_task = grads(model(**enc, labels=labels).loss)
    g_both = grads(model(**enc, labels=labels).loss + extra(model))
    # the same batch the continual loss drew (same seed), through an independent loss object
    from babelmap.training.loss import batches
    batch = next(batches(ex, collate, 4, 3))
    independent = AlignmentLoss(AutoModel.from_pretrained(str(tiny_bert)), 1.0)
    g_align = grads(independent(model.encoder, batch))
    assert extra.calls == 1 and extra.parts["align"] > 0 and extra.parts["reg"] >= 0
    moved = 0
    for n, g in g_both.items():
        expect = g_task.get(n, torch.zeros_like(g)) + alpha * g_align.get(n, torch.zeros_like(g))
        torch.testing.assert_close(g, expect, rtol=1e-4, atol=1e-6)
        moved += int(not torch.allclose(g, g_task.get(n, torch.zeros_like(g))))
    assert moved > 10  # encoder weights get the alignment gradient; the head does not
    assert torch.equal(g_both["head.weight"], g_task["head.weight"])


def test_finetune_with_and_without_the_alignment_loss(tiny_bert, tmp_path):
    import json
    import shutil

    from safetensors.torch import load_file
    # no dropout: the continual forward passes then consume no random numbers, so alpha = 0
    # must give the plain run's weights exactly
    model_dir = tmp_path / "nodrop"
    shutil.copytree(tiny_bert, model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    tiny_bert = model_dir
    train = write_task(tmp_path / "task.tsv")
    kw = dict(epochs=2, lr=1e-3, batch_size=8, warmup=0.0, seed=0, device="cpu", progress=False,
              freeze_embeddings=True)
    plain = finetune(tiny_bert, train, tmp_path / "plain", **kw)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(str(tiny_bert))
    extra = ContinualAlignment(pairs(), Collator(tok), alpha=1.0, reference=None, batch_size=4)
    cont = finetune(tiny_bert, train, tmp_path / "cont", extra_loss=extra, **kw)
    zero = ContinualAlignment(pairs(), Collator(tok), alpha=0.0, reference=None, batch_size=4)
    same = finetune(tiny_bert, train, tmp_path / "zero", extra_loss=zero, **kw)
    assert extra.calls == 2 * 3 == zero.calls  # every step: 24 examples / 8 per batch x 2 epochs
    assert same.epoch_loss == pytest.approx(plain.epoch_loss, abs=1e-6)
    assert plain.settings["freeze_embeddings"] and "ContinualAlignment" in cont.settings["extra_loss"]
    w = {n: load_file(str(tmp_path / n / "model.safetensors")) for n in ("plain", "cont", "zero")}
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(w["plain"][key], w["cont"][key], atol=1e-6)
    torch.testing.assert_close(w["plain"][key], w["zero"][key], rtol=0, atol=1e-6)  # alpha 0 = plain
    emb = "embeddings.word_embeddings.weight"
    from transformers import AutoModel
    base = AutoModel.from_pretrained(str(tiny_bert)).embeddings.word_embeddings.weight.detach()
    torch.testing.assert_close(w["cont"][emb], base)  # frozen input embeddings stay


def test_masked_mean_and_probe_against_references():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, 4))
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    want = np.stack([h[b, :mask[b].sum()].mean(0) for b in range(3)])
    np.testing.assert_allclose(masked_mean(h, mask), want, rtol=1e-12)

    from sklearn.linear_model import LogisticRegression
    n, H, C = 60, 5, 3
    y = np.arange(n) % C
    X = rng.normal(size=(n, H)) + np.eye(C, H)[y] * 1.5
    probe = fit_probe(X, y, C, C=0.1)
    Z = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=5000).fit(Z, y)
    np.testing.assert_allclose(probe[2], ref.coef_.T, atol=1e-4)
    Xt = rng.normal(size=(40, H)) + np.eye(C, H)[np.arange(40) % C] * 1.5
    np.testing.assert_array_equal(probe_predict(probe, Xt), ref.predict((Xt - X.mean(0)) / X.std(0)))
    res = zero_shot(X, y, {"x": Xt}, np.arange(40) % C, [str(i // 4) for i in range(40)], C)
    assert res["x"]["accuracy"] == pytest.approx(float((ref.predict((Xt - X.mean(0)) / X.std(0))
                                                        == np.arange(40) % C).mean()))


def test_article_bootstrap_against_a_direct_loop():
    rng = np.random.default_rng(1)
    groups = [f"a{i // 3}" for i in range(30)] + ["z"] * 5
    y = rng.integers(0, 3, 35)
    pred = np.where(rng.random(35) < 0.6, y, (y + 1) % 3)
    res = accuracy_with_interval(pred, y, groups, n_boot=200, seed=5)
    assert res["accuracy"] == pytest.approx((pred == y).mean()) and res["articles"] == 11
    names = sorted(set(groups))
    draw = np.random.default_rng(5).integers(0, len(names), size=(200, len(names)))
    boot = []
    for row in draw:  # resample whole articles, pool their sentences
        rows = [i for k in row for i in range(35) if groups[i] == names[k]]
        boot.append(np.mean([pred[i] == y[i] for i in rows]))
    assert res["low"] == pytest.approx(np.quantile(boot, 0.025))
    assert res["high"] == pytest.approx(np.quantile(boot, 0.975))
    assert res["low"] <= res["accuracy"] <= res["high"]
    assert layer_row([{"checkpoint": "a", "layer": 2, "v": 1}], "a", 2)["v"] == 1


def test_topic_split_keeps_articles_and_adjustment_pairs_apart():
    if not (FLORES / "metadata_dev.tsv").exists():
        pytest.skip(f"FLORES-200 metadata not at {FLORES}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_forgetting import topic_split
    tr, te, label, article, names = topic_split(FLORES, 300, 0.3, 0)
    assert len(tr) > 300 and len(te) > 100
    assert not {article[s] for s in tr} & {article[s] for s in te}
    assert min(int(s.split(":")[1]) for s in tr + te) > 300
    assert set(label[s] for s in tr) == set(range(len(names)))


def test_study_encoder_matches_the_word_store_and_sentence_pooling(tiny_bert, tmp_path):
    """The study's one-pass encoder gives what `extract_words` stores and what the store's mean
    sentence pooling (`LoadedModel.embed`) gives, from the same forward pass."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_forgetting import PREFIX, encode_checkpoint

    from babelmap.engine.models import load_model
    from babelmap.engine.words import extract_words, open_words
    texts = ["Hello world, again.", "A b c d.", "x"]
    feats, words = encode_checkpoint(str(tiny_bert), {"eng_Latn": texts}, {"eng_Latn"}, batch_size=2)
    corpus = ParallelCorpus("t", ["eng_Latn"], ["1", "2", "3"], [texts])
    ref = open_words(extract_words(corpus, tmp_path / "w.h5", str(tiny_bert), prefix=PREFIX, progress=False,
                                   store_dtype="float32"))
    off, toks, emb, valid = words["eng_Latn"]
    np.testing.assert_array_equal(off, ref.offsets("eng_Latn"))
    for k in range(emb.shape[0]):
        np.testing.assert_allclose(emb[k], ref.embeddings("eng_Latn", k), rtol=1e-4, atol=1e-5)
    lm = load_model(str(tiny_bert), device="cpu", prefix=PREFIX)
    pooled = lm.embed(lm.tokenize(texts), "mean", layers=[-1])[:, 0].numpy()
    np.testing.assert_allclose(feats["X_eng_Latn"], pooled, rtol=1e-4, atol=1e-5)


def test_seed_interval_against_the_t_formula():
    v = [0.61, 0.70, 0.66]
    res = seed_interval(v)
    m, sd = np.mean(v), np.std(v, ddof=1)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t(0.975, 2 df), from tables
    assert res["mean"] == pytest.approx(m) and res["low"] == pytest.approx(m - half)
    assert res["high"] == pytest.approx(m + half) and res["n"] == 3
    one = seed_interval([0.5])
    assert one["low"] == one["high"] == 0.5


def test_study_head_predictions_count_in_category_order(tiny_bert, tmp_path):
    """The study reads a fine-tuned head's class ids in `analysis.topics.CATEGORIES` order (the
    checkpoint's own are its sorted label names): runs 1-2 scored a majority-class head as 0.071
    because the two orders were mixed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_forgetting import encode_checkpoint

    from babelmap.analysis.topics import CATEGORIES
    from babelmap.training.finetune import load_classifier
    rng = random.Random(0)
    lines = []
    for i in range(16):
        label = "travel" if i % 2 else "geography"  # sorted: geography 0, travel 1; CATEGORIES: 6 and 1
        pool = VOCAB[:7] if label == "travel" else VOCAB[7:]
        lines.append(" ".join(rng.choice(pool) for _ in range(4)) + "\t" + label)
    (tmp_path / "t.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ft"
    finetune(tiny_bert, tmp_path / "t.tsv", out, epochs=3, lr=1e-3, head_lr=1e-2, batch_size=8, device="cpu",
             progress=False, pooling="mean", prefix="query: ")
    texts = ["the quick brown fox", "moon river stone house", "sun tree dog", "lazy over jumps"]
    feats, _ = encode_checkpoint(str(out), {"eng_Latn": texts}, {"eng_Latn"}, batch_size=3)  # words too
    clf, tok, prefix = load_classifier(out)
    with torch.no_grad():
        logits = clf(**tok([prefix + t for t in texts], padding=True, return_tensors="pt")).logits
    names = ["geography", "travel"]
    want = [CATEGORIES.index(names[int(i)]) for i in logits.argmax(-1)]
    np.testing.assert_array_equal(feats["pred_eng_Latn"], want)
    assert set(want) == {1, 6}  # both classes predicted, so the old (sorted-order) ids would differ
