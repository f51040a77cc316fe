"""The model fingerprint covers every byte of the weights: a tensor changed in the middle of a
safetensors file of the same size changes it (the old size + first/last MiB hash did not), and
a rerun on unchanged files takes the digest from the babelmap cache instead of reading them."""
from __future__ import annotations

import hashlib
import os

import pytest
import torch

from babelmap.engine.models import load_model
from babelmap.engine.models.fingerprint import file_sha256, fingerprint_dir, hashed_files




@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BABELMAP_CACHE", str(tmp_path / "cache"))


def _old_style(path) -> str:
    """The fingerprint babelmap used before: size and the first and last MiB."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        h.update(str(size).encode() + fh.read(1 << 20))
        fh.seek(-(1 << 20), 2)
        h.update(fh.read())
    return h.hexdigest()


def _write_weights(folder, n_mib: int = 9):
    from safetensors.torch import save_file
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tensors = {f"layer{i}.weight": torch.randn(256, 1024, generator=g) for i in range(n_mib)}  # 1 MiB each
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "bert"}')
    return folder / "model.safetensors"


def _change_middle_tensor(path, times=None):
    """Rewrite layer4.weight (the middle of the file) in place: same size, other values."""
    import json
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    names = [k for k in header if k != "__metadata__"]
    start, end = header["layer4.weight"]["data_offsets"]
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(8 + header_len + start)
        fh.write((torch.ones(256, 1024) * 0.5).numpy().tobytes())
    assert os.path.getsize(path) == st.st_size and end - start == 1 << 20 and "layer4.weight" in names
    if times is not None:
        os.utime(path, ns=times)


def test_changed_middle_tensor_changes_the_fingerprint(tmp_path):
    weights = _write_weights(tmp_path / "m")
    before, old_before = fingerprint_dir(weights.parent), _old_style(weights)
    _change_middle_tensor(weights)
    assert _old_style(weights) == old_before  # what the old fingerprint could not see
    after = fingerprint_dir(weights.parent)
    assert after != before
    assert file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_rerun_takes_the_digest_from_the_cache(tmp_path):
    weights = _write_weights(tmp_path / "m")
    first = file_sha256(weights)
    st = os.stat(weights)
    # same size and mtime_ns but other content: a cached digest is returned without reading
    _change_middle_tensor(weights, times=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(weights) == first
    assert file_sha256(weights, use_cache=False) == hashlib.sha256(weights.read_bytes()).hexdigest() != first
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # a touched file is hashed again
    assert file_sha256(weights) != first


def test_commit_and_every_file_count(tmp_path):
    weights = _write_weights(tmp_path / "m", n_mib=1)
    folder = weights.parent
    (folder / "tokenizer.json").write_text("{}")
    (folder / "README.md").write_text("not hashed")
    (folder / "babelmap_model.json").write_text('{"prefix": "x"}')  # recorded on its own
    assert [f.name for f in hashed_files(folder)] == ["config.json", "model.safetensors", "tokenizer.json"]
    base = fingerprint_dir(folder)
    assert fingerprint_dir(folder, commit="a" * 40) not in (base, fingerprint_dir(folder, commit="b" * 40))
    (folder / "README.md").write_text("still not hashed")
    assert fingerprint_dir(folder) == base
    (folder / "tokenizer.json").write_text('{"x": 1}')
    assert fingerprint_dir(folder) != base


def test_loaded_model_fingerprint_follows_the_weights(tiny_bert, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    a = load_model(str(copy), device="cpu").fingerprint
    assert a == load_model(str(tiny_bert), device="cpu").fingerprint  # content, not path
    path = copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert load_model(str(copy), device="cpu").fingerprint != a
