"""Models named by their Hugging Face Hub id, resolved as transformers resolves them.

`resolve_hub_model("org/name", revision)` returns the snapshot folder and its commit: downloaded
when online, taken from the Hugging Face cache when offline (`HF_HUB_OFFLINE=1`, or the Hub
unreachable). Only what loading needs is fetched: config, tokenizer and safetensors weights
(PyTorch `.bin` weights only when the repository has no safetensors). Every failure is one
ModelError line saying what was tried and how to fix it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from babelmap.engine.errors import ModelError

COMMIT = re.compile(r"[0-9a-f]{40}")
OTHER_FRAMEWORKS = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data", "*.tflite", "*.gguf", "*.mlmodel",
                    "*.mlpackage/*", "onnx/*", "openvino/*", "coreml/*", "tf_model*", "flax_model*",
                    "rust_model*", "*.ckpt", "training_args.bin", "optimizer.*", "scheduler.*"]
TORCH_PICKLES = ["*.bin", "*.pt", "*.pth"]


@dataclass(frozen=True)
class HubSnapshot:
    """A resolved hub model: the snapshot folder on disk and the commit it holds."""

    repo_id: str
    path: Path
    commit: str


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Offline as huggingface_hub decides it, read at call time (the environment may change)."""
    from huggingface_hub import constants
    env = os.environ
    return _truthy(env.get("HF_HUB_OFFLINE")) or _truthy(env.get("TRANSFORMERS_OFFLINE")) \
        or bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The Hugging Face cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else the default."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return os.path.expanduser(env[key])
    if env.get("HF_HOME"):
        return os.path.join(os.path.expanduser(env["HF_HOME"]), "hub")
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


def looks_like_path(name: str) -> bool:
    """True for names that can only be a folder (absolute, ./ ../ ~, or more than one '/')."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
            or os.sep != "/" and os.sep in name or os.path.exists(name))


def is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import validate_repo_id
    try:
        validate_repo_id(name)
    except Exception:  # noqa: BLE001  (HFValidationError)
        return False
    return True


def _download(repo_id: str, revision: str, cache: str, offline: bool, **patterns) -> str:
    from huggingface_hub import snapshot_download
    return snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline,
                             **patterns)


def _has_safetensors(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json"))


def resolve_hub_model(repo_id: str, revision: str | None = None) -> HubSnapshot:
    """The snapshot folder and commit of hub model `repo_id` at `revision` (branch, tag or
    commit; default `main`), downloading what is missing unless offline."""
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    rev = revision or "main"
    shown = repo_id if revision is None else f"{repo_id} (revision {revision})"
    if not is_repo_id(repo_id):
        raise ModelError(f"model {repo_id!r} is neither a local checkpoint folder nor a valid Hugging Face "
                         "model id (org/name): pass a folder holding config.json, or a hub id")
    offline = hub_offline()
    cache = hub_cache_dir()
    try:
        folder = Path(_download(repo_id, rev, cache, offline, ignore_patterns=OTHER_FRAMEWORKS + TORCH_PICKLES))
        commit = folder.name if COMMIT.fullmatch(folder.name) else ""
        if not _has_safetensors(folder):  # an older repository: PyTorch pickles instead
            folder = Path(_download(repo_id, commit or rev, cache, offline, allow_patterns=TORCH_PICKLES,
                                    ignore_patterns=OTHER_FRAMEWORKS))
    except GatedRepoError as e:
        raise ModelError(f"model {shown} is gated on the Hugging Face Hub: accept its terms at "
                         f"https://huggingface.co/{repo_id} and log in (`hf auth login` or HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise ModelError(f"model {repo_id} has no revision {rev!r} on the Hugging Face Hub: "
                         "give a branch, tag or full commit hash that exists") from e
    except RepositoryNotFoundError as e:
        raise ModelError(f"model {repo_id!r} is not a local folder and not a model on the Hugging Face Hub "
                         "(or it is private: log in with `hf auth login` or set HF_TOKEN)") from e
    except LocalEntryNotFoundError as e:
        why = ("offline (HF_HUB_OFFLINE=1)" if offline else "the Hugging Face Hub could not be reached")
        raise ModelError(f"model {shown} is not a local folder and not in the Hugging Face cache {cache}, and "
                         f"{why}: download it once online (`hf download {repo_id}`"
                         f"{'' if revision is None else f' --revision {revision}'}, or rerun without "
                         "HF_HUB_OFFLINE), point HF_HOME/HF_HUB_CACHE at a cache that holds it, "
                         "or pass a checkpoint folder") from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelError(f"cannot fetch model {shown} from the Hugging Face Hub: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if not (folder / "config.json").is_file():
        raise ModelError(f"model {shown}: the snapshot {folder} has no config.json (not a transformers model?)")
    return HubSnapshot(repo_id=repo_id, path=folder, commit=folder.name if COMMIT.fullmatch(folder.name) else "")
