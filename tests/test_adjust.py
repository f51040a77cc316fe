"""Cross-lingual adjustment end to end on a tiny random model and a synthetic parallel sample."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread on a shared machine (no spin-waiting)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

from babelmap.engine.corpora import ParallelCorpus
from babelmap.engine.models import load_model
from babelmap.engine.alignments import Alignment
from babelmap.engine.words import segment_words
from babelmap.training.adjust import adjust, evaluate_alignment
from babelmap.training.loss import AlignmentLoss, Collator, batches, build_examples

VOCAB = ("the quick brown fox jumps over lazy dog in beginning was word and with god "
         "day night sun moon river stone house tree").split()


def synthetic(n=48, seed=0):
    """'src' = random English word sequences; 'tgt' = each word reversed, order shuffled.
    The true links are known."""
    rng = random.Random(seed)
    src, tgt, links = [], [], []
    for _ in range(n):
        words = rng.sample(VOCAB, rng.randint(3, 7))
        perm = list(range(len(words)))
        rng.shuffle(perm)
        src.append(" ".join(words))
        tgt.append(" ".join(words[p][::-1] for p in perm))
        links.append(sorted((perm[j], j) for j in range(len(words))))
    ids = [str(i) for i in range(n)]
    return ParallelCorpus("synthetic", ["src_Latn", "tgt_Latn"], ids, [src, tgt]), Alignment.from_lists(links)


def test_examples_and_collate(tiny_bert):
    corpus, al = synthetic(4)
    ex = build_examples(corpus, "src_Latn", "tgt_Latn", al)
    assert len(ex) == 4 and ex[0].links == al.sentence(0)
    assert [ex[0].src_text[a:b] for a, b in ex[0].src_spans] == segment_words(corpus.text("src_Latn")[0])
    lm = load_model(str(tiny_bert), device="cpu")
    batch = Collator(lm.tokenizer)(ex)
    assert batch.links.shape == (len(al), 3)
    # each word's pooling weights sum to one (mean over its tokens)
    np.testing.assert_allclose(batch.src_pool.sum(-1)[batch.src_valid].numpy(), 1.0, rtol=1e-6)


def test_alignment_loss_value_matches_definition(tiny_bert):
    corpus, al = synthetic(3)
    ex = build_examples(corpus, "src_Latn", "tgt_Latn", al)
    lm = load_model(str(tiny_bert), device="cpu")
    batch = Collator(lm.tokenizer)(ex)
    model = lm.model.eval()
    ref = AlignmentLoss.from_model(model, reg_weight=0.5)
    with torch.no_grad():
        for p in model.parameters():  # perturb, so the regulariser is not zero
            p.add_(0.01 * torch.randn_like(p))
        loss = float(ref(model, batch))
        # independent: per pair, word vectors as means of token states (float64)
        al_sq, reg_sq, n_src = [], 0.0, 0
        for b, e in enumerate(ex):
            h = model(**{k: v[b:b + 1] for k, v in batch.src.items()}).last_hidden_state[0].double()
            h0 = ref.reference(**{k: v[b:b + 1] for k, v in batch.src.items()}).last_hidden_state[0].double()
            g = model(**{k: v[b:b + 1] for k, v in batch.tgt.items()}).last_hidden_state[0].double()
            ws = batch.src_pool[b].double() @ h
            w0 = batch.src_pool[b].double() @ h0
            wt = batch.tgt_pool[b].double() @ g
            for i, j in e.links:
                al_sq.append(float(((ws[i] - wt[j]) ** 2).sum()))
            v = batch.src_valid[b]
            reg_sq += float(((ws - w0) ** 2).sum(-1)[v].sum())
            n_src += int(v.sum())
    assert loss == pytest.approx(np.mean(al_sq) + 0.5 * reg_sq / n_src, rel=1e-4)
    assert ref.parts["reg"] > 0
    assert ref.reference is not None                # the frozen copy exists, held outside the module tree:
    assert [n for n, _ in ref.named_modules()] == [""]  # not a submodule (never moved, trained or saved with it)
    assert ref.state_dict() == {}
    assert len(list(ref.parameters())) == 0  # the frozen copy is not a trainable parameter


def _adjusted(tiny_bert, tmp_path, reg_weight, name, **kw):
    corpus, al = synthetic(48)
    held_corpus, held_al = synthetic(16, seed=1)
    lm = load_model(str(tiny_bert), device="cpu")
    held = build_examples(held_corpus, "src_Latn", "tgt_Latn", held_al)
    res = adjust(str(tiny_bert), corpus, "src_Latn", "tgt_Latn", tmp_path / name, alignment=al,
                 epochs=10, batch_size=8, lr=3e-3, reg_weight=reg_weight, device="cpu", eval_examples=held,
                 progress=False, **kw)
    return res, lm, held


def test_adjustment_moves_aligned_words_together_and_keeps_source(tiny_bert, tmp_path):
    res, lm0, held = _adjusted(tiny_bert, tmp_path, 1.0, "adj")
    free, _, _ = _adjusted(tiny_bert, tmp_path, 0.0, "free")
    # measured independently: reload both checkpoints, compare with the original model on held-out pairs
    collate = Collator(lm0.tokenizer)
    base = lm0.model.eval()
    before = evaluate_alignment(base, held, collate, base)
    adj = load_model(str(res.out), device="cpu").model
    after = evaluate_alignment(adj, held, collate, base)
    after_free = evaluate_alignment(load_model(str(free.out), device="cpu").model, held, collate, base)
    print("before", before, "\nafter", after, "\nwithout regulariser", after_free)
    assert after["aligned_msd"] < 0.25 * before["aligned_msd"]          # aligned pairs pulled together
    assert after["aligned_msd"] < 0.5 * after["unrelated_msd"]           # more than unrelated ones
    assert after["source_drift_msd"] < 0.5 * after_free["source_drift_msd"]  # the regulariser holds the source
    assert after["source_drift_msd"] < 0.25 * before["aligned_msd"]
    assert res.after["aligned_msd"] == pytest.approx(after["aligned_msd"], rel=1e-4)  # saved = trained
    meta = json.loads((res.out / "babelmap_model.json").read_text())
    assert meta["src"] == "src_Latn" and meta["steps"] == res.steps == 60 and meta["reg_weight"] == 1.0
    assert (res.out / "tokenizer.json").exists() and (res.out / "config.json").exists()


def test_continual_loop_and_bf16(tiny_bert, tmp_path):
    """The module in a user's own loop (task loss + alignment loss), and the bf16 path."""
    corpus, al = synthetic(16)
    lm = load_model(str(tiny_bert), device="cpu")
    ex = build_examples(corpus, "src_Latn", "tgt_Latn", al)
    collate = Collator(lm.tokenizer)
    model = lm.model.eval()
    align_loss = AlignmentLoss.from_model(model, reg_weight=1.0)
    head = torch.nn.Linear(32, 2)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=3e-3)
    stream = batches(ex, collate, batch_size=4)
    before = evaluate_alignment(model, ex, collate)["aligned_msd"]
    for _ in range(30):
        b = next(stream)
        task = torch.nn.functional.cross_entropy(head(model(**b.src).last_hidden_state[:, 0]),
                                                 torch.zeros(len(b.src["input_ids"]), dtype=torch.long))
        loss = task + align_loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert evaluate_alignment(model, ex, collate)["aligned_msd"] < 0.5 * before
    res = adjust(str(tiny_bert), corpus, "src_Latn", "tgt_Latn", tmp_path / "bf16", alignment=al, max_steps=3,
                 bf16=True, device="cpu", progress=False)
    assert res.steps == 3 and np.isfinite(res.history[-1]["loss"])
    with pytest.raises(Exception, match="not empty"):
        adjust(str(tiny_bert), corpus, "src_Latn", "tgt_Latn", tmp_path / "bf16", alignment=al, max_steps=1,
               device="cpu", progress=False)


def test_adjust_with_the_models_own_alignment(tiny_bert, tmp_path):
    corpus, _ = synthetic(8)
    res = adjust(str(tiny_bert), corpus, "src_Latn", "tgt_Latn", tmp_path / "own", layer=2, max_steps=2,
                 device="cpu", progress=False)
    meta = json.loads((res.out / "babelmap_model.json").read_text())
    assert meta["alignment"]["method"] == "mutual-argmax" and meta["alignment"]["layer"] == 2
    assert meta["n_links"] > 0


@pytest.mark.slow
def test_cli_adjust_then_words(tiny_bert, tmp_path, flores_dir):
    """`babelmap adjust` on real FLORES sentences writes a checkpoint `babelmap words` reads."""
    from babelmap.cli import main
    from babelmap.engine.words import open_words
    F = str(flores_dir / "dev")
    out = tmp_path / "adj"
    assert main(["adjust", "--model", str(tiny_bert), "--corpus", F, "--format", "flores", "--src", "eng_Latn",
                 "--tgt", "deu_Latn", "--max-sentences", "10", "--layer", "2", "--max-steps", "2", "--lr", "1e-3",
                 "--eval-sentences", "10:20", "--report", str(tmp_path / "rep"), "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    meta = json.loads((out / "babelmap_model.json").read_text())
    assert meta["steps"] == 2 and meta["sentence_similarity"]["n_pairs"] == 10
    assert (tmp_path / "rep" / "wordalign_sentence_sim.png").exists()
    assert main(["words", "--corpus", F, "--format", "flores", "--langs", "eng_Latn", "--sentences", "10:13",
                 "--model", str(out), "--device", "cpu", "--no-progress", "--out", str(tmp_path / "w.h5")]) == 0
    with open_words(tmp_path / "w.h5") as ws:
        assert ws.attrs["model"] == str(out) and len(ws.sentence_ids) == 3


def test_layer_beyond_the_model_is_refused_at_once(tiny_bert, tmp_path, capsys):
    """`adjust --layer 8` on a 2-layer model (3 hidden states): one clear line, exit 1, before
    any word extraction or training (well under a second of work here), nothing written."""
    import time

    from babelmap.cli import main
    folder = tmp_path / "c"
    folder.mkdir()
    corpus, _ = synthetic(8)
    for lang in corpus.languages:
        (folder / f"{lang}.txt").write_text("\n".join(corpus.text(lang)) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    rc = main(["adjust", "--model", str(tiny_bert), "--corpus", str(folder), "--format", "plain", "--src",
               "src_Latn", "--tgt", "tgt_Latn", "--layer", "8", "--device", "cpu", "--no-progress",
               "--out", str(tmp_path / "adj")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "--layer 8" in err[0] and "3 hidden states (0..2" in err[0]
    assert time.perf_counter() - t0 < 20 and not (tmp_path / "adj").exists()
    # the library call refuses the same way, also for a layer below 0
    from babelmap.engine.errors import ModelError
    with pytest.raises(ModelError, match=r"--layer -1: .* has 3 hidden states"):
        adjust(str(tiny_bert), corpus, "src_Latn", "tgt_Latn", tmp_path / "neg", layer=-1, device="cpu",
               progress=False)
