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
    writes_refused: int = 0  # tickets with at least one item refused this run
    # Items the source refused this run, by what was refused ("field:custom_field:123", "tags",
    # "note"), with a sample reason each: retried once the cause may have changed (docs/connectors.md).
    refused: dict[str, int] = field(default_factory=dict)
    refusal_reasons: dict[str, str] = field(default_factory=dict)
    # Field values the source accepted and did not keep (a drop-down without that option), by item.
    not_kept: dict[str, int] = field(default_factory=dict)
    notes_held: int = 0  # breach notes not planned: the source's history was not known to be fresh
    # What the push could not do, one line each ("source 'x': ...", saying what to do): any makes
    # the source partial (exit 3): they are joined into `error` unless an exception failed it.
    problems: list[str] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_class: str | None = None

    def refuse(self, item_key: str, reason: str, count: int = 1) -> None:
        """Count ``count`` refusals of ``item_key`` (see :func:`bridge.pipeline.plan.refusal_key`)."""
        self.refused[item_key] = self.refused.get(item_key, 0) + count
        if reason:
            self.refusal_reasons.setdefault(item_key, reason)

    def problem(self, message: str) -> None:
        """A reason this source's run is partial; the first one failing the source is its error."""
        self.problems.append(message)
        if self.error is None:
            self.error, self.error_class = message, "WritebackIncomplete"
        elif self.error_class == "WritebackIncomplete":
            self.error += "; " + message


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
