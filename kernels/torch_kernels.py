"""Torch versions of the kernels (GPU, or CPU torch), chosen at run time, never at import time.

Every function here has a Numba/NumPy twin in `numba_kernels.py` with the same results
(to float32 tolerance); `pick` in that module dispatches on the device.
"""
from __future__ import annotations


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device."""
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch missing or broken driver
        return False


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error."""
    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        from babelmap.engine.errors import BabelmapError
        raise BabelmapError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        from babelmap.engine.errors import BabelmapError
        raise BabelmapError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device
