"""One run at a time per store: overlapping cron runs must not both pull and push.

The lock is an advisory ``flock`` on ``<store>.lock``. The kernel drops it when the holding
process ends, however it ends (SIGKILL included), so a lock left by a killed run is simply taken
over by the next one; nothing has to guess whether a pid is still alive. The file holds the
holder's pid and start time, so the run that is refused can say who holds it.

The lock file is owner-only like the store, and it is opened without following a symbolic link:
the run truncates and rewrites it, so a link planted at that path would otherwise truncate
whatever file it points at. Anything there but a plain file of its own is refused, by name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from bridge.errors import LockHeld, StoreError

__all__ = ["RunLock"]

# O_NONBLOCK: a FIFO planted at the path opens at once (and is then refused) instead of hanging the run.
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class RunLock:
    def __init__(self, store_path: Path, command: str) -> None:
        self.path = Path(f"{store_path}.lock")
        self.command = command
        self._handle: int | None = None

    def acquire(self) -> RunLock:
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(handle)
            for _ in range(50):  # the holder writes its details just after taking the lock
                if holder:
                    break
                time.sleep(0.02)
                holder = self._read(handle)
            os.close(handle)
            raise LockHeld(
                f"another sla-bridge run holds the lock on {self.path.with_suffix('')}: "
                f"{holder.get('command', 'a run')} with pid {holder.get('pid', '?')}, started {holder.get('started_at', '?')}. "
                "This run did nothing; the next cron run will try again"
            ) from None
        except OSError as error:
            os.close(handle)
            raise self._problem(error, "lock") from error
        try:
            os.ftruncate(handle, 0)
            os.write(handle, json.dumps({
                "pid": os.getpid(),
                "command": self.command,
                "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            }).encode())
            os.fsync(handle)
        except OSError as error:
            fcntl.flock(handle, fcntl.LOCK_UN)
            os.close(handle)
            raise self._problem(error, "write") from error
        self._handle = handle
        return self

    def _open(self) -> int:
        """The lock file, created owner-only, never through a link; refused unless a plain file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, _OPEN_FLAGS, 0o600)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise StoreError(
                    f"the lock file {self.path} is a symbolic link: sla-bridge never writes through one (it would truncate "
                    "the file it points at). Remove the link; sla-bridge creates its own lock file") from None
            if error.errno == errno.EISDIR:
                raise self._not_a_file("a directory") from None
            raise self._problem(error, "create") from error
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode):
                raise self._not_a_file(_kind(info.st_mode))
            if info.st_nlink > 1:
                raise StoreError(
                    f"the lock file {self.path} has other names (hard links): writing it would change them too. "
                    "Remove it; sla-bridge creates its own lock file")
            if info.st_uid == os.geteuid() and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                os.fchmod(handle, 0o600)  # one made by an older version, or by hand, readable by others
        except BaseException:
            os.close(handle)
            raise
        return handle

    def _not_a_file(self, kind: str) -> StoreError:
        return StoreError(f"the lock file {self.path} is {kind}, not a plain file: remove it; sla-bridge creates its own lock file")

    def _problem(self, error: OSError, doing: str) -> StoreError:
        """What stops the lock file being created or written, and what to do."""
        folder = self.path.parent
        elsewhere = "or point store.path / --db at a place this user can write"
        if error.errno == errno.EROFS:
            return StoreError(f"the file system holding {folder} is mounted read-only, so the run cannot take its lock "
                              f"({self.path}): remount it read-write, {elsewhere}")
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreError(f"the disk holding {folder} is full (or this user's quota is spent): the run cannot write its "
                              f"lock file {self.path}. Free space on that file system, then run again; this run did nothing")
        if error.errno in (errno.EACCES, errno.EPERM):
            if not folder.is_dir():
                return StoreError(f"the folder {folder} for the store cannot be created ({error.filename or error}): "
                                  f"create it for the user that runs sla-bridge, {elsewhere}")
            if doing == "create" and not self.path.exists():
                return StoreError(f"the folder {folder} is read-only for this user, so the run cannot create its lock file "
                                  f"{self.path.name} (nor SQLite the store's -wal and -shm files) next to the store: make the "
                                  f"folder writable for the user that runs sla-bridge, {elsewhere}")
            return StoreError(f"the lock file {self.path} is not writable for this user (it belongs to another user?): "
                              f"run sla-bridge as the store's owner, or remove the lock file; sla-bridge creates its own")
        return StoreError(f"the run cannot {doing} its lock file {self.path}: {error.strerror or error}")

    @staticmethod
    def _read(handle: int) -> dict[str, str]:
        try:
            os.lseek(handle, 0, os.SEEK_SET)
            holder: dict[str, str] = json.loads(os.read(handle, 4096) or b"{}")
            return holder
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            os.close(self._handle)
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"
