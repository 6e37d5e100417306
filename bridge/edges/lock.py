"""One run at a time per store: overlapping cron runs must not both pull and push.

The lock is an advisory ``flock`` on ``<store>.lock``. The kernel drops it when the holding
process ends, however it ends (SIGKILL included), so a lock left by a killed run is simply taken
over by the next one; nothing has to guess whether a pid is still alive. The file holds the
holder's pid and start time, so the run that is refused can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from bridge.errors import LockHeld

__all__ = ["RunLock"]


class RunLock:
    def __init__(self, store_path: Path, command: str) -> None:
        self.path = Path(f"{store_path}.lock")
        self.command = command
        self._handle: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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
        os.ftruncate(handle, 0)
        os.write(handle, json.dumps({
            "pid": os.getpid(),
            "command": self.command,
            "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }).encode())
        os.fsync(handle)
        self._handle = handle
        return self

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
