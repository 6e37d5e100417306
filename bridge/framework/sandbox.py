"""What the core relies on from a connector's sandbox (its faithful local emulator).

``sla-bridge demo``, ``sla-bridge sandbox`` and the conformance suite use a sandbox only
through this protocol, so they work with every connector that ships one. The shared kit that
implements most of it is :mod:`connectors.kit.server`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

__all__ = ["Sandbox", "SandboxClass", "WritebackSummary"]


@dataclass(frozen=True, slots=True)
class WritebackSummary:
    """What sla-bridge left on a sandbox's tickets: the demo shows it."""

    tickets_tagged: int
    notes: list[str] = field(default_factory=list)  # bodies of sla-bridge's internal notes


class Sandbox(Protocol):
    token: str

    def source_config(self, url: str, token_env: str) -> dict[str, Any]:
        """A ``[sources.NAME]`` table that points sla-bridge at this sandbox."""
        ...

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractContextManager[str]:
        """Serve on a loopback port for the duration of the block; yields the base URL."""
        ...

    def transport(self) -> httpx.BaseTransport:
        """For an in-process ``httpx.Client(transport=...)``."""
        ...

    def writeback_summary(self) -> WritebackSummary: ...


class SandboxClass(Protocol):
    """A sandbox's class: how the demo and the conformance suite build one (seeded, deterministic).

    ``first_stream`` is a fragment of the path of its first stream's requests, and ``page_size``
    how many records a page of it holds, for the suite's paging cases.
    """

    first_stream: str
    page_size: int

    def for_demo(self, tickets: int, seed: int, *, deal: tuple[int, int] = (0, 1)) -> Sandbox:
        """Sized and paced for ``sla-bridge demo`` (real time). ``deal`` = (index, of): this
        helpdesk holds the story's tickets whose number leaves remainder ``index`` divided by
        ``of``, so one story is dealt between the demo's helpdesks."""
        ...

    def for_tests(self, tickets: int, *, anchor: datetime) -> Sandbox:
        """Its clock fixed at ``anchor`` and its rate limits lifted."""
        ...
