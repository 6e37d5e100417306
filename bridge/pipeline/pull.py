"""Pull: every stream a connector declares, read by the core's loop, each page committed with its cursor.

The incremental rule (docs/connectors.md) is kept here for every connector: a source's history
begins at its *horizon*, computed once (from ``start``, else the connector's default reach) and
stored, so every stream of every later run agrees on it; each stream resumes from the cursor
saved with its last committed page; a crash repeats at most one page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone

from bridge.edges.store import Store
from bridge.framework.contract import Connector
from bridge.framework.streams import read_stream
from bridge.model import from_iso, to_iso
from bridge.pipeline.faults import crash_point
from bridge.pipeline.report import SourceStats

__all__ = ["history_horizon", "pull_source"]


def history_horizon(start: date | datetime | None, *, default: timedelta, newest: timedelta, now: datetime) -> datetime:
    """Where a source's history begins: ``start`` (a date is its UTC midnight), else ``now`` minus
    the connector's default reach; never later than ``now - newest``; whole seconds."""
    if start is None:
        moment = now - default
    elif isinstance(start, datetime):
        moment = start
    else:
        moment = datetime.combine(start, time(), tzinfo=timezone.utc)
    moment = min(moment, now - newest).astimezone(timezone.utc)
    return moment.replace(microsecond=0)


def _horizon(store: Store, connector: Connector, now: datetime) -> datetime:
    mark = f"history_from:{connector.name}"
    saved = store.mark(mark)
    if saved is not None:
        return from_iso(saved)
    horizon = history_horizon(connector.config.start, default=connector.history_default,
                              newest=connector.newest_start, now=now)
    store.set_mark(mark, to_iso(horizon))
    return horizon


def pull_source(store: Store, connector: Connector, *, now: datetime, stats: SourceStats,
                progress: Callable[[str, int], None] | None = None) -> None:
    """Pull every stream of ``connector`` into ``store``; a source error stops at the page it met."""
    horizon = _horizon(store, connector, now)
    cursors = store.cursors(connector.name)
    for stream in connector.streams():
        for page in read_stream(stream, connector.http, cursor=cursors.get(stream.name), horizon=horizon, now=now):
            counts = store.save_page(connector.name, page)
            stats.tickets_pulled += counts.tickets
            stats.events_pulled += counts.events
            stats.quarantined += counts.quarantined
            if progress:
                progress(connector.name, stats.tickets_pulled + stats.events_pulled)
            crash_point("pull:page")
