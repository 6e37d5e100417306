"""What a run did, per source: kept in the ``runs`` table and printed by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bridge.model import WritebackPlan

__all__ = ["RunReport", "SourceStats", "stats_docs"]


@dataclass
class SourceStats:
    """What one run did to one source."""

    tickets_pulled: int = 0
    events_pulled: int = 0
    quarantined: int = 0
    requests: int = 0
    tickets_evaluated: int = 0
    clocks_changed: int = 0
    writes_sent: int = 0
    notes_sent: int = 0
    conflicts: int = 0
    writes_refused: int = 0
    unmapped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_class: str | None = None


@dataclass
class RunReport:
    """A finished run: its exit code, each source's figures, and (dry runs) the plans."""

    command: str
    exit_code: int
    sources: dict[str, SourceStats]
    plans: dict[str, list[WritebackPlan]] = field(default_factory=dict)
    seconds: float = 0.0

    def source_docs(self) -> dict[str, dict[str, Any]]:
        return stats_docs(self.sources)

    def total(self, key: str) -> int:
        return sum(int(getattr(stats, key)) for stats in self.sources.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, stats in sorted(self.sources.items()) if stats.error]


def stats_docs(sources: dict[str, SourceStats]) -> dict[str, dict[str, Any]]:
    """Each source's figures as a JSON-ready document, by name (the ``runs`` table, ``--json``)."""
    return {name: asdict(stats) for name, stats in sorted(sources.items())}
