"""Crash-safe, disk-full-safe file writes: build in memory, write through a temporary name,
fsync, rename. A full disk is one StoreError naming the path, the bytes needed and free.

HDF5 files are built in memory (h5py on a BytesIO), so the HDF5 library never sees a write
error (h5py raises RuntimeError, or segfaults when a half-written file object is collected);
only the plain `os.write` of the finished image can fail, and that is cleaned up here.

    write_hdf5_safely(path, lambda f: f.create_dataset("x", data=x), "similarity result")
    write_text_safely(folder / "sents_layer3.tsv", text, "TSV")
"""
from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Callable

import h5py

from babelmap.engine.diskspace import check_free_space, write_failure
from babelmap.engine.errors import StoreError

TMP_MARK = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a folder so a rename in it survives a crash (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_bytes_safely(data, final: str | os.PathLike, what: str,
                       after: str = "Nothing was written; free space and run again",
                       before_rename: Callable[[], None] | None = None, fail_after: int | None = None) -> Path:
    """Write `data` (bytes-like) to `final` through a temporary sibling: check free space,
    write, fsync, rename, fsync the folder. Any failure removes the temporary and raises one
    StoreError (`after` says what was kept and what to do). `fail_after` (tests) simulates a
    full disk after that many bytes; `before_rename` (tests) runs just before the rename."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}")
    needed = len(data)
    try:
        check_free_space(final.parent, needed, f"{what} {final.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            if fail_after is not None:
                os.write(fd, view[:fail_after])
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, final)
    except StoreError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"{e}. {after}") from None
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        raise write_failure(e, final, needed, what, after) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


def hdf5_image(build: Callable[[h5py.File], None], **file_kw) -> memoryview:
    """The bytes of an HDF5 file that `build(f)` fills, built entirely in memory."""
    bio = io.BytesIO()
    with h5py.File(bio, "w", **file_kw) as f:
        build(f)
    return bio.getbuffer()


def write_hdf5_safely(path: str | os.PathLike, build: Callable[[h5py.File], None], what: str,
                      after: str = "Nothing was written; free space and run again", **file_kw) -> Path:
    """Write an HDF5 file that `build(f)` fills, crash-safe and disk-full-safe (module doc)."""
    return write_bytes_safely(hdf5_image(build, **file_kw), path, what, after)


def write_text_safely(path: str | os.PathLike, text: str, what: str,
                      after: str = "Nothing was written; free space and run again") -> Path:
    """Write a UTF-8 text file crash-safe and disk-full-safe."""
    return write_bytes_safely(text.encode("utf-8"), path, what, after)
