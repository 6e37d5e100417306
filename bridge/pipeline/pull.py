"""Pull: every stream a connector declares, read by the core's loop, each page committed with its cursor.

The incremental rule (docs/connectors.md) is kept here for every connector: a source's history
begins at its *horizon*, computed once (from ``start``, else the connector's default reach) and
stored, so every stream of every later run agrees on it; each stream resumes from the cursor
saved with its last committed page; a crash repeats at most one page.

Two things the evaluation needs are kept here too:

- **how far the data is complete**: a stream that reached its end this run is complete up to the
  source's clock when its last page was asked for, less the connector's ``export_lag`` (an export
  that leaves out its last minute is complete only to a minute before); a stream that did not
  keeps the point it had (or, when a page moved its cursor to a time later than that, that time). The source
  is complete to the earliest of its streams, and to its history horizon while a stream has never
  reached its end. The marks: ``complete_to:<source>:<stream>`` per stream and
  ``complete_to:<source>`` for the source, ISO instants, saved with the page that moved them;
- **who was an agent when** (:mod:`bridge.framework.roster`): loaded into the connector before
  the streams, saved after the pull (after a failed one too: what was observed stays true).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone

from bridge.edges.store import Store
from bridge.framework.contract import Connector
from bridge.framework.roster import AgentRoster, Span
from bridge.framework.streams import Stream, Walk, read_stream
from bridge.model import Page, from_iso, to_iso
from bridge.pipeline.faults import crash_point
from bridge.pipeline.report import SourceStats

__all__ = ["complete_to_mark", "history_horizon", "pull_source"]

log = logging.getLogger("sla_bridge.pull")


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


def complete_to_mark(source: str, stream: str | None = None) -> str:
    """The mark holding the instant up to which ``source`` (or one of its streams) is complete."""
    return f"complete_to:{source}" + (f":{stream}" if stream is not None else "")


def _stream_points(store: Store, source: str, streams: Sequence[Stream]) -> dict[str, datetime | None]:
    saved = {stream.name: store.mark(complete_to_mark(source, stream.name)) for stream in streams}
    return {stream: from_iso(text) if text else None for stream, text in saved.items()}


def _point_after(stream: Stream, page: Page, walk: Walk, lag: timedelta) -> datetime | None:
    """How far a stream is complete after a committed page, as far as this walk tells.

    At the end of the walk: up to when the last page was asked for, less the lag. Before it, where
    the cursor is a time: up to that time (never past the ask less the lag: records that recent
    may not be in the source's export yet). A page kept whole in quarantine counts as read: it is
    reported, and kept for the next run to read again."""
    if walk.asked_at is None:
        return None
    bound = walk.asked_at - lag
    if page.done:
        return bound
    try:
        at_cursor = stream.resume.instant(page.cursor) if page.cursor else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None  # the stream checked its cursors; one that is not a time says nothing here
    return None if at_cursor is None else min(at_cursor.astimezone(timezone.utc), bound)


def _save_complete(store: Store, source: str, horizon: datetime, points: Mapping[str, datetime | None]) -> None:
    """The source is complete to the earliest of its streams (a stream never complete: the horizon)."""
    reached = [point if point is not None else horizon for point in points.values()]
    store.set_mark(complete_to_mark(source), to_iso(min(reached, default=horizon)))


def _save_roster(store: Store, connector: Connector) -> None:
    roster = connector.roster
    if roster.changed:
        store.save_agent_spans(connector.name, [(span.user, span.since, span.until) for span in roster.spans()])
        roster.changed = False


def pull_source(store: Store, connector: Connector, *, now: datetime, stats: SourceStats,
                progress: Callable[[str, int], None] | None = None) -> None:
    """Pull every stream of ``connector`` into ``store``; a source error stops at the page it met."""
    horizon = _horizon(store, connector, now)
    name = connector.name
    cursors = store.cursors(name)
    connector.roster = AgentRoster(Span(*row) for row in store.agent_spans(name))
    try:
        streams: Sequence[Stream] = connector.streams()
        points = _stream_points(store, name, streams)
        _save_complete(store, name, horizon, points)
        for stream in streams:
            walk = Walk()
            for page in read_stream(stream, connector.http, cursor=cursors.get(stream.name), horizon=horizon, now=now, walk=walk):
                point = _point_after(stream, page, walk, connector.export_lag)
                previous = points[stream.name]
                with store.atomic():
                    counts = store.save_page(name, page)
                    if point is not None and (previous is None or point > previous or page.done):
                        points[stream.name] = point
                        store.set_mark(complete_to_mark(name, stream.name), to_iso(point))
                        _save_complete(store, name, horizon, points)
                stats.tickets_pulled += counts.tickets
                stats.events_pulled += counts.events
                stats.quarantined += counts.quarantined
                if progress:
                    progress(name, stats.tickets_pulled + stats.events_pulled)
                crash_point("pull:page")
    except BaseException:
        try:
            _save_roster(store, connector)
        except Exception:  # the pull's own failure is the one to report
            log.debug("source %r: the agent roster could not be saved after the failure", name, exc_info=True)
        raise
    _save_roster(store, connector)
