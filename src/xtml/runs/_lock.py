"""One writer per run folder: the lock file ``.xtml-run.lock``.

The lock is created with ``O_CREAT | O_EXCL`` (exactly one of several runs started at once creates it)
and, where the platform has :func:`fcntl.flock`, also held with an exclusive ``flock`` for the life of
the run.  The kernel drops a ``flock`` when its process dies, so a lock file left behind by a killed
run (``kill -9``, out of memory) is recognised as stale and taken over instead of blocking the folder
for ever.  Taking over is race-free: the new owner must win the ``flock`` *and* find that the path still
names the file it locked (the previous owner removes the file before it unlocks it).

Without ``fcntl`` (Windows) the lock is ``O_EXCL`` only, and a stale lock file must be deleted by hand;
the error message says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunLockedError"]

LOCK_NAME = ".xtml-run.lock"
_ATTEMPTS = 5


class RunLockedError(ValueError):
    """Another run is writing into ``path``; ``holder`` is what its lock file says (pid, host, run_id)."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        self.path = path
        self.holder = holder
        if holder:
            who = (
                f"run {holder.get('run_id', '?')} ({holder.get('kind', '?')}), pid {holder.get('pid', '?')} "
                f"on {holder.get('host', '?')}, started {holder.get('started', '?')}"
            )
        else:
            who = "details unknown"
        hint = "" if fcntl is not None else f"; if no run is active, delete {path / LOCK_NAME}"
        super().__init__(
            f"run folder {str(path)!r} is in use by another run ({who}); wait for it to finish or write "
            f"into another folder{hint}"
        )


def read_holder(folder: Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says, ``None`` without a lock file, ``{}`` if unreadable."""
    try:
        text = (folder / LOCK_NAME).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def holder_alive(folder: Path) -> bool:
    """Whether a process may still be writing into ``folder``.

    ``False`` without a lock file, or when the lock names a process of this host that no longer exists;
    ``True`` otherwise (a lock from another host or an unreadable one cannot be judged from here).  This
    only reads: probing the ``flock`` itself could make a run starting at that instant fail.
    """
    info = read_holder(folder)
    if info is None:
        return False
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


@dataclass
class HeldLock:
    """A lock this process holds; :meth:`release` removes the file, then unlocks."""

    path: Path
    fd: int

    def release(self) -> None:
        """Remove the lock file and close it (idempotent)."""
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def acquire(folder: Path, info: dict[str, Any]) -> HeldLock:
    """Take the lock of ``folder`` (which must exist) and write ``info`` into it.

    Raises :class:`RunLockedError` if another live run holds it.
    """
    lock = folder / LOCK_NAME
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            if fcntl is None:
                raise RunLockedError(folder, read_holder(folder) or {}) from None
            try:  # maybe stale: left by a run whose process died
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue  # released meanwhile: try to create it again
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLockedError(folder, read_holder(folder) or {}) from None
            try:
                here, mine = os.stat(lock), os.fstat(fd)
                same = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                same = False
            if not same:  # its owner removed it between our open and our flock: start again
                os.close(fd)
                continue
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        return HeldLock(lock, fd)
    raise RunLockedError(folder, read_holder(folder) or {})
