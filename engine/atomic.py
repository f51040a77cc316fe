"""Write a file so that readers see the old file or the whole new one, never half of it: write
to a temporary sibling, flush it to disk, rename it into place; on any error remove it."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on leaving, it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`Path.write_text` (UTF-8) through `replaced_atomically`."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
