"""Streams: what a connector declares about one kind of record, and the loop that reads it.

A connector declares each :class:`Stream` (its base request, a paginator, how to resume from a
saved cursor, where the records are in a response and how to normalise one); the core runs
:func:`read_stream` for it, the same way for every helpdesk:

- it builds the first request from the saved cursor (or from the history horizon);
- it bounds the pages one walk may read (``http.max_pages``): past it the source stops and the
  next run resumes from the cursor saved with the last page;
- a continuation handed out twice stops the source (:mod:`bridge.framework.paginators`); a URL
  off the source's origin is never requested (:mod:`bridge.edges.http`);
- a record that fails to normalise, for any reason, is quarantined with the reason and the raw
  record, and the page goes on; a page whose records cannot even be found is quarantined whole;
  but a request that a normaliser or a page's context makes and that fails (a
  :class:`~bridge.errors.SourceError`) stops the source, to be resumed: it is not the record's fault;
- a cursor that would stand beyond ``now`` (plus :data:`CLOCK_SKEW`) is refused: the page is not
  kept, the old cursor stays, and the source stops;
- a body that is not a JSON object, where the records are found by a path in one, is not a page
  of this API (a login page's JSON, an array): the source stops, and nothing of it is kept;
- it yields each page with the cursor that resumes after it, for the store to commit together,
  and keeps in a :class:`Walk` the source's clock when the page was asked for: a walk that
  reached its end is complete up to the clock of its last request (less the connector's
  ``export_lag``).

:func:`paginate` is the same loop for a connector's own look-ups (a list of agents, a ticket's
comments), so no connector writes a paging loop of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import httpx

from bridge.edges.http import SourceClient
from bridge.errors import CursorRefused, PageBoundReached, PaginationError, SkippableRecordError, SourceError
from bridge.framework.paginators import Paginator, RepeatedContinuation, Request, Turn, dig
from bridge.framework.watermark import Watermark
from bridge.model import Page, QuarantinedRecord, Ticket, TicketEvent

__all__ = [
    "CLOCK_SKEW",
    "FromToken",
    "FromWatermark",
    "Record",
    "Resume",
    "Stream",
    "Walk",
    "epoch_seconds",
    "paginate",
    "read_stream",
]

Record = Ticket | TicketEvent
CLOCK_SKEW = timedelta(minutes=5)  # how far past our clock a vendor's clock may plausibly be


def epoch_seconds(cursor: str) -> datetime:
    """A cursor that is whole seconds since the epoch (Zendesk's ``end_time``), as an instant."""
    return datetime.fromtimestamp(int(cursor), timezone.utc)


class Resume(ABC):
    """How a stream's saved cursor becomes its first request, and what cursor follows a page."""

    # Whether the first cursor of a walk from nothing can be held to the horizon: a token walk
    # starts exactly there; a coarse filter (a watermark's) may return records a little older.
    starts_at_horizon = True

    @abstractmethod
    def first(self, request: Request, paginator: Paginator, cursor: str | None, horizon: datetime) -> Request:
        """The walk's first request: from ``cursor`` when one is saved, else from ``horizon``."""

    @abstractmethod
    def after(self, cursor: str | None, turn: Turn, records: Sequence[Any]) -> str | None:
        """The cursor to save with a page (None keeps the saved one)."""

    def instant(self, cursor: str) -> datetime | None:
        """The instant a cursor stands at, where it is a time (checked against the clock)."""
        return None

    def record_instant(self, raw: Any) -> datetime | None:
        """The instant a raw record changed, where the cursor is made of records' instants."""
        return None


class FromToken(Resume):
    """The paginator's continuation is durable: it is saved with each page and resumed from.

    ``start`` gives the first request's parameters from the horizon (Zendesk:
    ``{"start_time": ...}``); ``instant`` reads a saved token as a time, where it is one.
    """

    def __init__(self, start: Callable[[datetime], Mapping[str, Any]], *,
                 instant: Callable[[str], datetime] | None = None) -> None:
        self.start, self._instant = start, instant

    def first(self, request: Request, paginator: Paginator, cursor: str | None, horizon: datetime) -> Request:
        if cursor:
            return paginator.resume(request, cursor)
        return request.with_params(**self.start(horizon))

    def after(self, cursor: str | None, turn: Turn, records: Sequence[Any]) -> str | None:
        return turn.token if turn.token is not None else cursor

    def instant(self, cursor: str) -> datetime | None:
        return self._instant(cursor) if self._instant else None


class FromWatermark(Resume):
    """The records' own (instant, key) are the cursor; each walk starts again a little before it.

    A watermark never moves back (it is the greatest position seen), and its first one may lie
    before the horizon: the filter is coarse.

    For coarse "changed since" filters (see :mod:`bridge.framework.watermark`): ``position`` reads
    a raw record's (instant, tiebreak key); ``since`` makes the base request for records changed
    at or after an instant. Within a walk the paginator's tokens are only used for that walk.
    """

    starts_at_horizon = False

    def __init__(self, *, position: Callable[[Any], tuple[datetime, str]], since: Callable[[Request, datetime], Request],
                 overlap: timedelta, granularity: timedelta = timedelta(seconds=1)) -> None:
        self.position, self.since = position, since
        self.overlap, self.granularity = overlap, granularity

    def first(self, request: Request, paginator: Paginator, cursor: str | None, horizon: datetime) -> Request:
        if not cursor:
            return self.since(request, horizon)
        mark = Watermark.decode(cursor)
        return self.since(request, mark.lower_bound(overlap=self.overlap, granularity=self.granularity))

    def after(self, cursor: str | None, turn: Turn, records: Sequence[Any]) -> str | None:
        mark = Watermark.decode(cursor) if cursor else None
        for raw in records:
            try:
                at, key = self.position(raw)
            except Exception:  # noqa: BLE001 - a malformed record is quarantined; it moves nothing
                continue
            mark = mark.advanced(at, key) if mark else Watermark(at, key)
        return mark.encode() if mark else cursor

    def instant(self, cursor: str) -> datetime | None:
        return Watermark.decode(cursor).at

    def record_instant(self, raw: Any) -> datetime | None:
        try:
            return self.position(raw)[0]
        except Exception:  # noqa: BLE001 - unreadable: the record is quarantined by its normalise
            return None


def _first_id(raw: Any) -> str:
    value = raw.get("id") if isinstance(raw, Mapping) else None
    return "?" if value is None else str(value)


def _whole_data(data: Any) -> Any:
    return data


@dataclass(frozen=True)
class Stream:
    """One kind of record a helpdesk offers, as its connector declares it.

    - ``request``, ``paginator`` (a factory: a fresh paginator per walk) and ``resume``;
    - ``records``: where the records are in a response (a dotted path, or a function);
    - ``normalise(record, context)``: the normalised tickets and events of one raw record;
      anything it raises quarantines that record;
    - ``context(data)``: what the page's records share (sideloaded names), once per page;
    - ``record_id(record)``: the id a quarantined record is kept under;
    - ``prepare()``: look-ups the records need, once per walk before the first request;
    - ``expand(tickets)``: history fetched for a page's tickets (with requests of its own),
      committed with the page; a ticket whose fetched history cannot be read is yielded as a
      :class:`~bridge.model.QuarantinedRecord` under its external id: it is quarantined and
      counted, leaves the page with its events, and the page goes on;
    - ``on_repeat``: what it means when this stream's paging repeats itself, for the message.
    """

    name: str
    request: Request
    paginator: Callable[[], Paginator]
    resume: Resume
    records: str | Callable[[Any], Any]
    normalise: Callable[[Any, Any], Iterable[Record]]
    context: Callable[[Any], Any] = _whole_data
    record_id: Callable[[Any], str] = _first_id
    prepare: Callable[[], object] | None = None
    expand: Callable[[list[Ticket]], Iterable[TicketEvent | QuarantinedRecord]] | None = None
    on_repeat: str = ""


def _records_of(source: str | Callable[[Any], Any], data: Any) -> Any:
    return dig(data, source) if isinstance(source, str) else source(data)


def _reason(error: Exception) -> str:
    if isinstance(error, SkippableRecordError):
        return error.detail
    if type(error) is ValueError:  # the normaliser's own words
        return str(error)
    return f"{type(error).__name__}: {error}"


def _describe(request: Request) -> str:
    query = urlencode({k: v for k, v in request.params.items()}, doseq=True)
    return request.url + (f"?{query}" if query else "")


def _record_id(stream: Stream, raw: Any) -> str:
    try:
        return stream.record_id(raw)
    except Exception:  # noqa: BLE001 - the id of a record too broken to name
        return "?"


def _normalise_page(stream: Stream, source: str, request: Request, data: Any, limit: datetime
                    ) -> tuple[Page, list[Any] | None, list[Any]]:
    """The page's normalised records and quarantine, its raw records (None: they cannot be found),
    and those of them a cursor may be made of (not dated beyond ``limit``)."""
    page = Page(tickets=[], events=[], cursor=None, stream=stream.name)
    problem: str | None = None
    try:
        found = _records_of(stream.records, data)
    except Exception as error:  # noqa: BLE001 - a page whose records cannot be found is kept whole
        found, problem = None, f"the page's records cannot be found ({_reason(error)})"
    if found is None and problem is None:
        found = []
    if problem is None and not isinstance(found, list):
        where = stream.records if isinstance(stream.records, str) else "records"
        problem = f"the page's records ({where}) are a {type(found).__name__}, not a list"
    if problem is not None or not isinstance(found, list):
        page.quarantined.append(QuarantinedRecord(source, f"{stream.name} page {_describe(request)}"[:500], problem or "", data))
        return page, None, []
    context: Any = None
    shared_problem: str | None = None
    try:
        context = stream.context(data)
    except SourceError as error:
        if not isinstance(error, SkippableRecordError):
            raise  # a request the context made failed: the source stops (and resumes), nothing is set aside
        shared_problem = f"the page's shared records cannot be read ({_reason(error)})"
    except Exception as error:  # noqa: BLE001 - without what they share, each record is kept aside, with why
        shared_problem = f"the page's shared records cannot be read ({_reason(error)})"
    trusted = []
    for raw in found:
        changed = stream.resume.record_instant(raw)
        if changed is not None and changed > limit:
            page.quarantined.append(QuarantinedRecord(
                source, _record_id(stream, raw), f"changed at {changed:%Y-%m-%d %H:%M:%S} UTC, beyond now: not trusted", raw))
            continue
        trusted.append(raw)
        if shared_problem is not None:
            page.quarantined.append(QuarantinedRecord(source, _record_id(stream, raw), shared_problem, raw))
            continue
        try:
            for record in stream.normalise(raw, context):
                if isinstance(record, Ticket):
                    page.tickets.append(record)
                else:
                    page.events.append(record)
        except SourceError as error:
            if not isinstance(error, SkippableRecordError):
                raise  # a request made for this record failed: not the record's fault, so not quarantined
            page.quarantined.append(QuarantinedRecord(source, _record_id(stream, raw), _reason(error), raw))
        except Exception as error:  # noqa: BLE001 - any failure of one record quarantines that record
            page.quarantined.append(QuarantinedRecord(source, _record_id(stream, raw), _reason(error), raw))
    return page, found, trusted


def _expand(stream: Stream, page: Page) -> None:
    """The history ``stream.expand`` fetches for the page's tickets, into the page. A ticket
    whose history it could not read is quarantined (``record_id``: the ticket's external id)
    and leaves the page with it: judged without its history, it would get a wrong verdict."""
    assert stream.expand is not None
    withheld: set[str] = set()
    for found in stream.expand(page.tickets):
        if isinstance(found, QuarantinedRecord):
            page.quarantined.append(found)
            withheld.add(found.record_id)
        else:
            page.events.append(found)
    if withheld:
        dropped = {ticket.id for ticket in page.tickets if ticket.external_id in withheld}
        page.tickets = [ticket for ticket in page.tickets if ticket.id not in dropped]
        page.events = [event for event in page.events if event.ticket_id not in dropped]


@dataclass(slots=True)
class Walk:
    """What one walk of a stream saw besides its records, for how far its data is complete.

    ``asked_at``: the source's clock when the latest page was asked for (None before the first).
    """

    asked_at: datetime | None = None


def _send(http: SourceClient, request: Request) -> tuple[httpx.Response, Any]:
    return http.fetch(request.method, request.url, params=dict(request.params) or None, json=request.json,
                      idempotent=request.idempotent)


def _sent_and_asked_at(http: SourceClient, request: Request) -> tuple[httpx.Response, Any, datetime]:
    """Send ``request``; also the source's clock when it was sent (its ``Date`` header, less the
    time the request took, retries included; this machine's clock if the source sends no ``Date``).
    Earlier rather than later: what a page holds is complete at most up to when it was asked for."""
    ours, started = http.policy.clock(), http.policy.monotonic()
    response, data = _send(http, request)
    theirs = http.server_time()
    if theirs is None:
        return response, data, ours
    return response, data, theirs - timedelta(seconds=max(0.0, http.policy.monotonic() - started))


def read_stream(stream: Stream, http: SourceClient, *, cursor: str | None, horizon: datetime,
                now: datetime, walk: Walk | None = None) -> Iterator[Page]:
    """The pages of one walk of ``stream``, each with the cursor that resumes after it.

    ``now`` is the instant being evaluated (``--now`` may put it in the past); what a cursor or a
    record may not pass is the later of it and this machine's clock, plus :data:`CLOCK_SKEW`.
    ``walk``, when given, is kept up to date before each page is yielded.
    """
    walk = walk if walk is not None else Walk()
    source = http.source
    try:
        paginator = stream.paginator()
        if stream.prepare is not None:
            stream.prepare()
        try:
            request = stream.resume.first(stream.request, paginator, cursor, horizon)
        except ValueError as error:
            raise PaginationError(f"the saved cursor cannot be resumed from ({error})") from None
        for number in range(1, http.max_pages + 2):
            if number > http.max_pages:
                raise PageBoundReached(
                    f"stream {stream.name!r} read {http.max_pages:,} pages this run (http.max_pages); stopped there, "
                    "and the next run resumes from the saved cursor. If the helpdesk is simply that large, raise "
                    "http.max_pages; if the count never settles, the API is paging without end",
                    source=source,
                )
            response, data, walk.asked_at = _sent_and_asked_at(http, request)
            if isinstance(stream.records, str) and not isinstance(data, Mapping):
                raise PaginationError(f"the answer to {_describe(request)[:200]} is a JSON {_json_kind(data)}, not an object: "
                                      "not a page of this API; nothing of it was kept")
            limit = max(now, http.policy.clock()) + CLOCK_SKEW
            page, raw_records, trusted = _normalise_page(stream, source, request, data, limit)
            if raw_records is None and paginator.counts_records:
                yield page  # kept in quarantine; the cursor stays where it was
                raise PaginationError("a page's records cannot be read, and this paginator needs them to find the next page")
            records = raw_records or []
            if stream.expand is not None and page.tickets:
                _expand(stream, page)
            turn = paginator.read(request, response, data, records)
            following = stream.resume.after(cursor, turn, trusted)
            _check_cursor(stream, following, cursor, horizon, limit, source)
            page.cursor = following
            page.done = not turn.more
            yield page
            if not turn.more:
                return
            if turn.token is None:
                raise PaginationError("the page says more follow but names no continuation; stopped rather than guess")
            request = paginator.follow(request, turn.token)
            cursor = following
    except PaginationError as error:
        if error.source is not None:
            raise
        hint = f" ({stream.on_repeat})" if stream.on_repeat and isinstance(error, RepeatedContinuation) else ""
        raise PaginationError(f"stream {stream.name!r}: {error.detail}{hint}", source=source) from None


def _json_kind(data: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(data), type(data).__name__)


def _check_cursor(stream: Stream, cursor: str | None, previous: str | None, horizon: datetime, limit: datetime,
                  source: str) -> None:
    """A time cursor moves forward, from the horizon on, and never past ``limit``."""
    if cursor is None or cursor == previous:
        return
    try:
        instant = stream.resume.instant(cursor)
        floor = stream.resume.instant(previous) if previous else horizon if stream.resume.starts_at_horizon else None
    except (TypeError, ValueError, OverflowError, OSError):
        raise CursorRefused(f"stream {stream.name!r}: the page's cursor {cursor[:80]!r} is not a time", source=source) from None
    if instant is None:
        return
    if instant > limit:
        raise CursorRefused(
            f"stream {stream.name!r}: the page would move the cursor to {instant:%Y-%m-%d %H:%M:%S} UTC, beyond now "
            f"({limit - CLOCK_SKEW:%Y-%m-%d %H:%M:%S} UTC); the page was not kept and the saved cursor stays. If the "
            "helpdesk's clock is right and ours is wrong, fix this machine's clock",
            source=source,
        )
    if floor is not None and instant < floor:
        raise CursorRefused(
            f"stream {stream.name!r}: the page would move the cursor back to {instant:%Y-%m-%d %H:%M:%S} UTC, before "
            f"{floor:%Y-%m-%d %H:%M:%S} UTC where it stood; the page was not kept and the saved cursor stays",
            source=source,
        )


def paginate(http: SourceClient, request: Request, paginator: Paginator, *,
             records: str | Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Every page of a look-up (its decoded body), under the same guards as a stream.

    ``records`` says where a page's records are; offset and keyset paginators need it.
    """
    if records is None and paginator.counts_records:
        raise ValueError(f"{type(paginator).__name__} finds the next page from the records: pass records= to paginate")
    try:
        for number in range(1, http.max_pages + 2):
            if number > http.max_pages:
                raise PageBoundReached(f"{request.url} returned more than {http.max_pages:,} pages (http.max_pages); stopped",
                                       source=http.source)
            response, data = _send(http, request)
            found = _records_of(records, data) if records is not None else []
            if not isinstance(found, list):
                raise PaginationError(f"the page's records are a {type(found).__name__}, not a list")
            yield data
            turn = paginator.read(request, response, data, found)
            if not turn.more:
                return
            if turn.token is None:
                raise PaginationError(f"{request.url}: the page says more follow but names no continuation")
            request = paginator.follow(request, turn.token)
    except PaginationError as error:
        if error.source is not None:
            raise
        raise PaginationError(f"{request.url}: {error.detail}", source=http.source) from None
