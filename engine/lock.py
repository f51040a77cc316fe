"""One run per output: an exclusive lock on `<store>.lock`, with the holder named.

`filelock` gives an OS lock that the kernel drops when the holder dies (even by SIGKILL),
so a killed run never leaves a stale lock. Who holds it (pid, host, start time, command)
is written to `<store>.lock.owner` so a second run can say which run it collides with.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from babelmap.engine.errors import StoreError


class OutputLock:
    """Context manager: hold the lock of output `out` or raise StoreError naming the holder."""

    def __init__(self, out: str | os.PathLike):
        out = Path(out)
        self.path = out.with_name(out.name + ".lock")
        self.owner = out.with_name(out.name + ".lock.owner")
        self.out = out
        self._lock = FileLock(str(self.path))

    def _can_create(self) -> None:
        """StoreError with the real reason when the lock file cannot be created at all (a
        read-only or special folder such as /proc, a missing permission, a full disk), so
        that is never reported as "another run is writing"."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.close(fd)
        except OSError as e:
            raise StoreError(f"cannot write the store {self.out}: {self.path.parent} does not accept new files "
                             f"({e.strerror or e}); choose an --out in a folder you can write") from None

    def acquire(self) -> "OutputLock":
        self._can_create()
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise StoreError(f"another run is writing {self.out}: {self._holder()}; wait for it to "
                             f"finish (or stop it), then run again") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)}
        tmp = self.owner.with_name(self.owner.name + f".tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(info))
            os.replace(tmp, self.owner)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            self._lock.release()
            from babelmap.engine.diskspace import write_failure
            raise write_failure(e, self.owner, len(json.dumps(info)), "the lock owner file",
                                "Nothing was started; free space and run again") from None
        return self

    def _holder(self) -> str:
        try:
            info = json.loads(self.owner.read_text())
            return (f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')} "
                    f"({info.get('command')})")
        except (OSError, ValueError):
            return f"a process holding {self.path}"

    def release(self) -> None:
        if self._lock.is_locked:
            self.owner.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
