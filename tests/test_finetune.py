"""Fine-tuning a tiny random model on a tiny synthetic task: the loss goes down, the task is
learnt, the saved checkpoint loads with AutoModel (encoder) and differs from the base, and the
saved linear head applied to store-pooled embeddings gives the model's logits."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from babelmap.cli import main
from babelmap.engine.errors import BabelmapError, CorpusError
from babelmap.training.finetune import (HEAD, RECORD, finetune, label_names, load_classifier, load_head,
                                        read_labelled, resolve_base)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a loaded 2-core machine spend their time in thread hand-offs."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_task(path: Path, n: int = 64, seed: int = 0) -> Path:
    """Label = which alphabet the words are drawn from (learnable from the tokens alone)."""
    rng = random.Random(seed)
    alphabets = {"first": "abcdefghij", "second": "klmnopqrst"}
    lines = ["text\tlabel"]
    for i in range(n):
        label = "first" if i % 2 == 0 else "second"
        words = ["".join(rng.choice(alphabets[label]) for _ in range(rng.randint(2, 6)))
                 for _ in range(rng.randint(3, 8))]
        lines.append(" ".join(words) + "\t" + label)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("ft-base"), "bert", layers=2, hidden=32)


def test_finetune_learns_and_saves_loadable_checkpoint(tiny, tmp_path):
    import torch
    from transformers import AutoModel

    train = write_task(tmp_path / "train.tsv")
    out = tmp_path / "tuned"
    res = finetune(tiny, train, out, epochs=6, lr=2e-3, head_lr=3e-3, batch_size=8, warmup=0.0, device="cpu",
                   progress=False)
    assert res.labels == ["first", "second"]
    assert res.settings["head_pooling"] == "cls"  # a plain checkpoint: first token (no recorded pooling)
    assert len(res.epoch_loss) == 6
    assert res.epoch_loss[0] > 0.5  # about ln 2 at the start (random head)
    assert res.epoch_loss[-1] < 0.5 * res.epoch_loss[0], res.epoch_loss
    assert res.train_accuracy >= 0.9
    # the encoder part loads with AutoModel, nothing missing, and its weights moved
    tuned, info = AutoModel.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"]
    base = AutoModel.from_pretrained(str(tiny))
    tb, bb = tuned.state_dict(), base.state_dict()
    assert set(tb) == set(bb)
    moved = {k: float((tb[k] - bb[k]).abs().max()) for k in bb if tb[k].dtype.is_floating_point}
    assert moved["encoder.layer.1.attention.self.query.weight"] > 1e-4
    assert max(moved.values()) > 1e-3
    assert moved["pooler.dense.weight"] == 0.0  # the head does not read the pooler
    # the classifier loads too and reproduces the reported accuracy on the training data
    clf, tok, prefix = load_classifier(out)
    texts, labels = read_labelled(train)
    with torch.no_grad():
        logits = clf(**tok([prefix + t for t in texts], padding=True, return_tensors="pt")).logits
    pred = [res.labels[int(i)] for i in logits.argmax(-1)]
    assert np.mean([p == l for p, l in zip(pred, labels)]) == pytest.approx(res.train_accuracy, abs=1e-9)
    assert label_names(out) == ["first", "second"]
    record = json.loads((out / RECORD).read_text())
    assert record["epoch_loss"] == res.epoch_loss and record["settings"]["epochs"] == 6
    assert record["pooling"] == "cls" and record["head"] == HEAD
    # babelmap's model loader (what extract uses) takes the directory
    from babelmap.engine.models import load_model
    lm = load_model(str(out), device="cpu")
    emb = lm.embed(lm.tokenize(["abc def", "klm nop"]), pooling="mean")
    assert emb.shape == (2, 3, 32)
    lm0 = load_model(str(tiny), device="cpu")
    assert lm.fingerprint != lm0.fingerprint


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_saved_head_on_store_pooling_gives_the_model_logits(tiny, tmp_path, pooling):
    """head.safetensors times the last-layer embeddings pooled as a store pools them (the
    loader's `embed`, float64 NumPy product) equals the classifier's own logits."""
    import torch

    from babelmap.engine.models import load_model
    train = write_task(tmp_path / "train.tsv", n=24)
    out = tmp_path / f"tuned-{pooling}"
    res = finetune(tiny, train, out, epochs=1, lr=1e-3, batch_size=8, device="cpu", progress=False,
                   pooling=pooling, prefix="q: ")
    W, b, names, pool = load_head(out)
    assert names == res.labels and pool == pooling and W.shape == (2, 32) and b.shape == (2,)
    texts = ["abc def ghi", "klm nop", "a b c d e f g h"]
    clf, tok, prefix = load_classifier(out)
    assert prefix == "q: "
    with torch.no_grad():
        logits = clf(**tok([prefix + t for t in texts], padding=True, return_tensors="pt")).logits.double().numpy()
    lm = load_model(str(out), device="cpu")  # the prefix comes from the checkpoint's babelmap_model.json
    assert lm.prefix == "q: "
    X = lm.embed(lm.tokenize(texts), pooling, layers=[-1])[:, 0].double().numpy()
    np.testing.assert_allclose(X @ W.T + b, logits, rtol=0, atol=1e-5)
    # and independently of torch: the masked mean of the last hidden state in float64
    if pooling == "mean":
        from transformers import AutoModel
        enc = tok([prefix + t for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            h = AutoModel.from_pretrained(str(out)).eval()(**enc).last_hidden_state.double().numpy()
        m = enc["attention_mask"].numpy()
        ref = np.stack([h[i, m[i] == 1].mean(0) for i in range(len(texts))])
        np.testing.assert_allclose(ref @ W.T + b, logits, rtol=0, atol=1e-5)


def test_mean_head_learns_a_separable_task_and_lrs_are_separate(tiny, tmp_path):
    """A checkpoint descending from the default model gets the mean head by default; it learns
    the alphabet task to 100 %; with a near-zero encoder rate only the head moves."""
    import shutil

    from safetensors.torch import load_file
    derived = tmp_path / "derived"
    shutil.copytree(tiny, derived)
    (derived / "babelmap_model.json").write_text(json.dumps({"prefix": "", "base_model": "multilingual-e5-small-q4"}))
    train = write_task(tmp_path / "train.tsv", n=48)
    res = finetune(derived, train, tmp_path / "m", epochs=8, lr=1e-3, head_lr=3e-3, batch_size=8, warmup=0.1,
                   device="cpu", progress=False)
    assert res.settings["head_pooling"] == "mean"
    assert res.epoch_loss[-1] < 0.3 * res.epoch_loss[0], res.epoch_loss
    assert res.train_accuracy == 1.0
    frozen = finetune(derived, train, tmp_path / "f", epochs=2, lr=1e-12, head_lr=1e-2, batch_size=8,
                      warmup=0.0, device="cpu", progress=False, weight_decay=0.0)
    enc, ref = load_file(str(tmp_path / "f" / "model.safetensors")), load_file(str(derived / "model.safetensors"))
    assert max(float((enc[k] - ref[k]).abs().max()) for k in ref) < 1e-6
    assert frozen.epoch_loss[-1] < frozen.epoch_loss[0]  # the head alone learns


def test_default_pooling_resolution(tiny, tmp_path):
    import shutil
    assert resolve_base(str(tiny))[2] == "cls" and resolve_base(str(tiny))[1] == ""
    st = tmp_path / "st"
    shutil.copytree(tiny, st)
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert resolve_base(str(st))[2] == "mean"
    with pytest.raises(BabelmapError, match="pooling"):
        finetune(tiny, write_task(tmp_path / "t.tsv", n=4), tmp_path / "o", pooling="max", device="cpu")


def test_cli_bf16_in_process(tiny, tmp_path, capsys):
    train = write_task(tmp_path / "train.tsv", n=16)
    out = tmp_path / "tuned-bf16"
    assert main(["finetune", "--model", str(tiny), "--train", str(train), "--out", str(out), "--epochs", "1",
                 "--bf16", "--device", "cpu", "--batch-size", "8", "--no-progress"]) == 0
    assert "loss per epoch" in capsys.readouterr().out
    record = json.loads((out / RECORD).read_text())
    assert record["settings"]["bf16"] is True and len(record["epoch_loss"]) == 1
    from safetensors.numpy import load_file
    weights = load_file(str(out / "model.safetensors"))
    assert all(w.dtype == np.float32 for w in weights.values())  # saved in float32
    # refuses to overwrite a non-empty output; --overwrite replaces it (and a fp32 run after bf16 works)
    assert main(["finetune", "--model", str(tiny), "--train", str(train), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["finetune", "--model", str(tiny), "--train", str(train), "--out", str(out), "--epochs", "1",
                 "--device", "cpu", "--overwrite", "--no-progress", "--pooling", "mean", "--head-lr", "0.005",
                 "--freeze-embeddings", "--prefix", "p: "]) == 0
    settings = json.loads((out / RECORD).read_text())["settings"]
    assert settings["bf16"] is False and settings["head_pooling"] == "mean" and settings["head_lr"] == 0.005
    assert settings["freeze_embeddings"] is True and settings["prefix"] == "p: "
    assert json.loads((out / "babelmap_model.json").read_text())["prefix"] == "p: "


@pytest.mark.slow
def test_cli_bf16_subprocess(tiny, tmp_path):
    train = write_task(tmp_path / "train.tsv", n=16)
    out = tmp_path / "tuned-bf16"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "babelmap", "finetune", "--model", str(tiny), "--train", str(train),
                        "--out", str(out), "--epochs", "1", "--bf16", "--device", "cpu", "--batch-size", "8",
                        "--no-progress"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "loss per epoch" in p.stdout
    record = json.loads((out / RECORD).read_text())
    assert record["settings"]["bf16"] is True
    # saved in float32 whatever the training precision
    cfg = json.loads((out / "config.json").read_text())
    assert cfg.get("dtype", cfg.get("torch_dtype")) in ("float32", None)
    # refuses to overwrite a non-empty output
    assert main(["finetune", "--model", str(tiny), "--train", str(train), "--out", str(out)]) == 1


def test_bad_labelled_file(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("good text\tpos\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"line 2"):
        read_labelled(bad)
    one = tmp_path / "one.tsv"
    one.write_text("a\tx\nb\tx\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="at least two"):
        read_labelled(one)
    texts, labels = read_labelled(write_task(tmp_path / "ok.tsv", n=4))
    assert len(texts) == 4 and labels == ["first", "second", "first", "second"]
    assert main(["finetune", "--model", str(tmp_path), "--train", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "config.json" in capsys.readouterr().err
