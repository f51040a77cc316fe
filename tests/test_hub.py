"""Models named by hub id, resolved offline from a hand-built Hugging Face cache (the
`models--ORG--NAME/{blobs,snapshots/<commit>,refs/main}` layout huggingface_hub writes), never
the network: by name, by revision, and one clear line for what is not there."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from babelmap.engine.errors import ModelError
from babelmap.engine.models import load_model
from tiny import make_tiny_model



REPO = "babelmap-test/tiny-bert"
OLD, NEW = "a" * 40, "b" * 40  # commits: OLD (seed 1) and NEW (seed 0, what refs/main names)
TEXTS = ["The quick brown fox.", "Der schnelle braune Fuchs springt."]


def add_snapshot(cache: Path, repo: str, commit: str, checkpoint: Path, ref: str | None = "main") -> Path:
    """Put `checkpoint`'s files into the HF cache as huggingface_hub does: content-addressed
    blobs, a snapshot folder of relative symlinks, and `refs/<ref>` naming the commit."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(checkpoint.iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = root / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    if ref:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snap


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    cache = base / "hub"
    new = make_tiny_model(base / "new", "bert", seed=0)
    old = make_tiny_model(base / "old", "bert", seed=1)
    add_snapshot(cache, REPO, OLD, old, ref=None)
    add_snapshot(cache, REPO, NEW, new, ref="main")
    return {"cache": cache, "new": new, "old": old}


@pytest.fixture
def offline(hub_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache["cache"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BABELMAP_CACHE", str(tmp_path / "babelmap-cache"))
    return hub_cache


def _embed(lm) -> np.ndarray:
    return lm.embed(lm.tokenize(TEXTS)).numpy()


def test_by_name_resolves_refs_main(offline):
    lm = load_model(REPO, device="cpu")
    assert lm.name == REPO and lm.revision == NEW
    assert lm.path == offline["cache"] / f"models--{REPO.replace('/', '--')}" / "snapshots" / NEW
    local = load_model(str(offline["new"]), device="cpu")
    assert local.revision == ""
    np.testing.assert_array_equal(_embed(lm), _embed(local))  # the very same weights
    # the commit is part of the fingerprint; the content alone would match the local folder's
    assert lm.fingerprint != local.fingerprint and len(lm.fingerprint) == 64
    assert lm.provenance() == {"model": REPO, "model_revision": NEW, "model_fingerprint": lm.fingerprint,
                               "max_length": lm.max_length, "prefix": ""}


def test_resolve_model_dir_for_other_commands(offline):
    from babelmap.engine.models import resolve_model_dir
    assert resolve_model_dir(REPO, OLD) == (offline["cache"] / f"models--{REPO.replace('/', '--')}" / "snapshots"
                                            / OLD, OLD)
    assert resolve_model_dir(str(offline["new"])) == (offline["new"], "")


def test_by_revision(offline):
    old = load_model(REPO, device="cpu", revision=OLD)
    assert old.revision == OLD and old.path.name == OLD
    np.testing.assert_array_equal(_embed(old), _embed(load_model(str(offline["old"]), device="cpu")))
    new = load_model(REPO, device="cpu", revision="main")
    assert new.revision == NEW and new.fingerprint != old.fingerprint
    assert np.abs(_embed(old) - _embed(new)).max() > 1e-3


@pytest.mark.parametrize("name,revision,expected", [
    ("babelmap-test/not-there", None, "babelmap-test/not-there"),
    (REPO, "v9", "revision v9"),
    (REPO, "c" * 40, "revision " + "c" * 40),
])
def test_unknown_is_one_clear_line(offline, name, revision, expected):
    with pytest.raises(ModelError) as err:
        load_model(name, device="cpu", revision=revision)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg
    for part in ("not in the Hugging Face cache", str(offline["cache"]), "offline (HF_HUB_OFFLINE=1)",
                 "hf download"):
        assert part in msg, (part, msg)


def test_paths_and_bad_ids_are_not_sent_to_the_hub(offline, tmp_path):
    with pytest.raises(ModelError, match="not a local checkpoint directory.*no such folder"):
        load_model(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ModelError, match="not a local checkpoint directory.*no config.json there"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(ModelError, match="nor a valid Hugging Face model id"):
        load_model("bad name!", device="cpu")
    with pytest.raises(ModelError, match="--revision main applies to hub models"):
        load_model(str(offline["new"]), device="cpu", revision="main")


def test_cli_prints_one_line_offline(offline, tmp_path):
    """A real process: huggingface_hub reads HF_HUB_OFFLINE at import, as a user's run does."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang in ("eng_Latn", "deu_Latn"):
        (corpus / f"{lang}.txt").write_text("one\ntwo\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_CACHE": str(offline["cache"]), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "babelmap", "extract", "--corpus", str(corpus), "--format", "plain",
                        "--model", "babelmap-test/not-there", "--device", "cpu", "--no-progress",
                        "--out", str(tmp_path / "s.h5")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "babelmap-test/not-there" in lines[0] and "HF_HUB_OFFLINE" in lines[0]


@pytest.mark.parametrize("has_safetensors", [True, False])
def test_online_fetches_only_what_loading_needs(monkeypatch, tmp_path, has_safetensors):
    """The download patterns, applied by huggingface_hub's own filter to a typical repository
    listing (the network replaced by a fake that writes the files the patterns select)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import filter_repo_objects

    from babelmap.engine.models import hub

    listing = ["config.json", "tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model",
               "pytorch_model.bin", "training_args.bin", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
               "openvino/openvino_model.bin", "README.md"] + (["model.safetensors"] if has_safetensors else [])
    calls = []

    def fake_snapshot_download(repo_id, revision, cache_dir, local_files_only, allow_patterns=None,
                               ignore_patterns=None):
        calls.append((revision, local_files_only))
        snap = Path(cache_dir) / "snapshots" / NEW
        for name in filter_repo_objects(listing, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            (snap / name).write_text("x")
        return str(snap)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    snap = hub.resolve_hub_model(REPO)
    got = sorted(str(p.relative_to(snap.path)) for p in snap.path.rglob("*") if p.is_file())
    weights = ["model.safetensors"] if has_safetensors else ["pytorch_model.bin"]
    assert got == sorted(["README.md", "config.json", "sentencepiece.bpe.model", "tokenizer.json",
                          "tokenizer_config.json"] + weights)
    assert snap.commit == NEW
    assert calls == [("main", False)] + ([] if has_safetensors else [(NEW, False)])


def test_cli_extract_by_name_and_revision_records_the_commit(offline, tmp_path):
    """`babelmap extract --model ORG/NAME --revision C` in a real process, offline from the fake
    cache: the store records the repo id and the resolved commit, and its rows are the old
    snapshot's (not refs/main's)."""
    import h5py
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang in ("eng_Latn", "deu_Latn"):
        (corpus / f"{lang}.txt").write_text("one sentence here\ntwo more words\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_CACHE": str(offline["cache"]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    stores = {}
    for rev in (OLD, None):
        out = tmp_path / f"s-{rev or 'main'}.h5"
        cmd = [sys.executable, "-m", "babelmap", "extract", "--corpus", str(corpus), "--format", "plain",
               "--model", REPO, "--device", "cpu", "--no-progress", "--out", str(out)]
        r = subprocess.run(cmd + (["--revision", rev] if rev else []), capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        with h5py.File(out, "r") as f:
            assert f.attrs["model"] == REPO
            assert f.attrs["model_revision"] == (rev or NEW)
            stores[rev] = f["embeddings"][()].astype(np.float32)
    assert np.abs(stores[OLD] - stores[None]).max() > 1e-3
