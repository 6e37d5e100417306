"""Named places where the crash-safety tests kill a run (SIGKILL); free when unset.

``_SLA_BRIDGE_CRASH_AT=point`` or ``point:n`` kills the process the n-th time it passes
``point`` (``pull:page``, ``evaluate:done``, ``push:sent``).
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV = "_SLA_BRIDGE_CRASH_AT"


def crash_point(name: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, count = wanted.rpartition(":")
    if not count.isdigit():
        point, count = wanted, "1"
    if point != name:
        return
    seen = int(os.environ.get(f"{CRASH_ENV}_SEEN", "0")) + 1
    os.environ[f"{CRASH_ENV}_SEEN"] = str(seen)
    if seen >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
