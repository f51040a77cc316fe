"""Shared fixtures: real data from ../shared/data (skipped with a reason when absent),
the unpacked eBible cache, and tiny random models."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BABELMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(Path(__file__).parent))


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a clear reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data {p} is absent (set BABELMAP_SHARED_DATA or place shared/data beside the repo)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared()


@pytest.fixture(scope="session")
def flores_dir() -> Path:
    return shared("flores200")


@pytest.fixture(scope="session")
def ebible_dir() -> Path:
    """eBible unpacked once into a cache folder (never into the repo)."""
    packed = shared("ebible.tar.xz")
    from babelmap.engine.cache import cache_dir
    dest = cache_dir("data")
    out = dest / "ebible"
    stamp = dest / ".ebible.unpacked"
    if not stamp.exists():
        tmp = dest / f".unpack-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        subprocess.run(["tar", "-xJf", str(packed), "-C", str(tmp)], check=True)
        if out.exists():
            import shutil
            shutil.rmtree(out)
        (tmp / "ebible").rename(out)
        tmp.rmdir()
        stamp.write_text(str(packed.stat().st_size))
    return out


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from tiny import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a loaded 2-core machine spend their time in thread hand-offs (48 ms per
    tiny matmul measured with 2 threads at load 12): one torch thread in every test module,
    restored after it. A test that needs more sets its own."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
