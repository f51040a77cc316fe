"""The one owner of torch's CPU thread count for the commands that take `--threads N`
(`words`, `adjust`): one option, one check, one place that calls `torch.set_num_threads`."""
from __future__ import annotations

import argparse

from babelmap.engine.errors import BabelmapError


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """Add `--threads N` (default: torch's own choice)."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's choice, usually the physical cores)")


def set_threads(n: int | None) -> None:
    """Run torch on `n` CPU threads; None leaves torch's default. A number below 1 is one clear
    error line (torch would take -1 with a traceback, and `0` used to be ignored silently)."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BabelmapError(f"--threads {n}: give a positive number of CPU threads (or leave it out)")
    import torch
    torch.set_num_threads(n)
