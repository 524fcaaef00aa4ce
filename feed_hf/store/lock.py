"""One builder per teacher store: a lock beside the store's folder, and the folder problems named in one line.

Two runs that need the same store (same fingerprint) at once must not both write its `.building` folder: the
first takes an exclusive `fcntl.flock` on `<fingerprint>.lock`, the second waits for it (logging who holds it),
then finds the finished store and builds nothing. The kernel drops a `flock` when its holder dies, `kill -9`
included, so a lock is never stale: the next builder takes it and clears the `.building` folder the dead one left.
The lock file is removed once the store is complete (whoever then locks a new file finds the store and builds
nothing); after a failed build it stays, a few bytes, since removing it then would let a newcomer lock a fresh file
while a waiter holds the old one, and both would build.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

__all__ = ["StoreBuildLock", "StoreFolderError", "folder_error"]

logger = logging.getLogger(__name__)


class StoreFolderError(ValueError):
    """A teacher store folder that cannot be used: a file, read-only, not creatable."""


def folder_error(path: Path, error: OSError, doing: str) -> StoreFolderError:
    """One line naming the path, what was being done and the fix."""
    reason = error.strerror or type(error).__name__
    return StoreFolderError(
        f"teacher_store_dir: cannot {doing} {path} ({reason}); point teacher_store_dir at a writable folder "
        "(or make this one writable)"
    )


class StoreBuildLock:
    """An exclusive lock on building the store at `store`, waited for if another process holds it."""

    def __init__(self, store: Path) -> None:
        self.path = store.with_name(store.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise folder_error(self.path.parent, error, "create a store in") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            logger.warning("teacher store %s is being built by %s; waiting for it", self.path.stem, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:  # a filesystem without locks
            os.close(fd)
            raise folder_error(self.path, error, "lock") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd

    def release(self, complete: bool) -> None:
        """Unlock; remove the lock file when the store is `complete` (safe then, see the module docstring)."""
        if self._fd is not None:
            if complete:
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
