"""Who is writing a recording folder: an exclusive ``flock`` on ``{folder}/.writer.lock``.

The process that writes a recording (``RecordingFiles``) holds the lock for the folder's life,
from creating or resuming it to finishing or abandoning it. Recovery takes the same lock before
it closes out a folder and leaves alone a folder whose lock it cannot get: on a recordings
directory shared by several nodes (one machine, or shared storage), a node that starts must not
finalise a recording another live node is still writing. A process that dies, even by SIGKILL,
releases its locks with its file descriptors (the kernel does it), so a dead node's folders are
free at once. On NFS, Linux maps ``flock`` to a POSIX lock the server holds: a dead machine's locks
go when its lease expires (90 s by default on NFSv4).

Locks are per open file description: two ``FolderLock`` of the same folder exclude each other
within one process as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = ".writer.lock"


class FolderLock:
    """An exclusive lock on one recording folder, held until ``release`` (or the process's end)."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @classmethod
    def take(cls, folder: Path, holder: str = "") -> FolderLock | None:
        """The folder's lock if nobody else holds it, else None (never waits). The lock file says
        who holds it (``holder``, host and process id), for people looking at a stuck folder."""
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the note is for people; the lock is what counts
            os.ftruncate(fd, 0)
            os.write(fd, f"{holder or '-'} {socket.gethostname()} {os.getpid()}\n".encode())
        return cls(folder, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let others have the folder; releasing twice is harmless."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock


def is_locked(folder: Path) -> bool:
    """Whether another writer holds ``folder`` right now (a moment's answer, for reports)."""
    if not (folder / LOCK_NAME).exists():
        return False
    lock = FolderLock.take(folder)
    if lock is None:
        return True
    lock.release()
    return False
