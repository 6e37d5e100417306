"""Paginators: where the next page is, read from one page's response.

A paginator is a small state machine; the loop that drives it belongs to the core
(:func:`bridge.framework.streams.paginate` and the pull loop), so every connector gets the same
guards. After each page the loop asks :meth:`Paginator.read` for a :class:`Turn`: the
continuation the page names (which may exist on the last page too: Zendesk's ``after_cursor``)
and whether there is a page after it. To go on, it calls :meth:`Paginator.follow`, which
refuses a continuation it has handed out before: an API that answers the same cursor twice is
going round in circles, and a walk that never repeats is stopped by the loop's page bound.

The shapes the three helpdesks use:

- :class:`CursorPaginator`: a token from the body sent back as a parameter (Zendesk
  ``after_cursor`` -> ``cursor``, ``meta.after_cursor`` -> ``page[after]``, ``end_time`` ->
  ``start_time``);
- :class:`TokenPaginator`: the same, ending when the token is absent or ``isLast`` (Jira
  ``nextPageToken``, in the query or the JSON body);
- :class:`NextUrlPaginator`: a whole URL, from the body or the ``Link`` header (Zendesk
  ``next_page``, ServiceNow ``rel="next"``). The HTTP layer refuses a URL off the source's origin;
- :class:`OffsetPaginator`: ``startAt`` advanced by the records read, ending on ``isLast``, a
  ``total`` reached or an empty page (Jira changelogs, JSM);
- :class:`KeysetPaginator`: the position (time, id) of a page's last record builds the next
  request, and only an empty page ends it, because a page shortened by row ACLs is not the end
  (ServiceNow).

Learnt from meltano/sdk ``singer_sdk/pagination.py`` (loop detection) and dlt's
``rest_client/paginators.py`` (small classes, next-URL requests drop the old query): both only
compare with the previous token, which misses A -> B -> A; these remember every one.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from bridge.errors import PaginationError

__all__ = [
    "CursorPaginator",
    "KeysetPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "Paginator",
    "RepeatedContinuation",
    "Request",
    "TokenPaginator",
    "Turn",
    "dig",
]

def dig(data: Any, path: str) -> Any:
    """``data["meta"]["after_cursor"]`` for ``"meta.after_cursor"``; None where any step is absent."""
    node = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a walk: a path on the source (or a URL it named), query and JSON body;
    ``idempotent=True`` marks a read sent as POST."""

    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    json: Mapping[str, Any] | None = None
    # A POST that only reads (Jira's search and bulk changelog) is safe to retry after a 5xx or a
    # timeout: say so, or the HTTP layer treats it as a write whose outcome is unknown.
    idempotent: bool | None = None

    def with_params(self, **changes: Any) -> Request:
        """A copy with query parameters set (a value of None removes the parameter)."""
        params = {**self.params, **changes}
        return replace(self, params={k: v for k, v in params.items() if v is not None})

    def with_json(self, **changes: Any) -> Request:
        """A copy with JSON body fields set (a value of None removes the field)."""
        body = {**(self.json or {}), **changes}
        return replace(self, json={k: v for k, v in body.items() if v is not None})


@dataclass(frozen=True, slots=True)
class Turn:
    """What a page says about the next: its continuation (if any) and whether to go on."""

    token: str | None
    more: bool


def _token(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PaginationError(f"the page's {where} is {value!r}, not a continuation token")
    return str(value)


def _flag(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise PaginationError(f"the page's {where} is {value!r}, not true or false")
    return value


class RepeatedContinuation(PaginationError):
    """A walk met a continuation it had already followed (what a stream's ``on_repeat`` explains)."""


class Paginator(ABC):
    """Reads a page's continuation and applies it to the next request; one instance per walk."""

    counts_records = False  # True: the next page is found from this page's records

    def __init__(self) -> None:
        self._seen: set[str] = set()

    @abstractmethod
    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        """The continuation this page names, and whether a page follows it."""

    @abstractmethod
    def apply(self, request: Request, token: str) -> Request:
        """``request`` carrying ``token`` (to resume from a saved cursor, or to go on)."""

    def resume(self, request: Request, token: str) -> Request:
        """The first request of a walk that continues from a saved ``token``."""
        self._seen.add(token)
        return self.apply(request, token)

    def follow(self, request: Request, token: str) -> Request:
        """The next page's request; a continuation handed out before means a loop, and stops."""
        if token in self._seen:
            raise RepeatedContinuation(f"the API answered the continuation {token[:120]!r} a second time; stopped rather than loop")
        self._seen.add(token)
        return self.apply(request, token)


class CursorPaginator(Paginator):
    """A token read from the body (``token``), sent back as query parameter ``param``.

    The end is ``more`` (a boolean path, e.g. ``meta.has_more``) turning false, or ``end`` (e.g.
    ``end_of_stream``) turning true, or, with neither declared, the token being absent.
    ``drop`` names parameters of the first request that the continuation replaces (Zendesk's
    ``start_time`` gives way to ``cursor``).
    """

    def __init__(
        self,
        *,
        token: str,
        param: str,
        more: str | None = None,
        end: str | None = None,
        in_body: bool = False,
        drop: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.token_path, self.param, self.more_path, self.end_path = token, param, more, end
        self.in_body = in_body
        self.drop = tuple(drop)

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        token = _token(dig(data, self.token_path), self.token_path)
        more = _flag(dig(data, self.more_path), self.more_path) if self.more_path else None
        end = _flag(dig(data, self.end_path), self.end_path) if self.end_path else None
        if more is not None:
            go_on = more
        elif end is not None:
            go_on = not end
        else:
            go_on = token is not None
        carried = (request.json or {}).get(self.param) if self.in_body else request.params.get(self.param)
        if go_on and token is not None and carried is not None and str(carried) == token:
            raise RepeatedContinuation(f"the page names the continuation it was asked with ({self.param}={token[:120]}); "
                                  "stopped rather than loop")
        return Turn(token, go_on)

    def apply(self, request: Request, token: str) -> Request:
        cleared = {name: None for name in self.drop}
        if self.in_body:
            return request.with_json(**{self.param: token}).with_params(**cleared)
        return request.with_params(**cleared, **{self.param: token})


class TokenPaginator(CursorPaginator):
    """Jira's enhanced search: ``nextPageToken`` until it is absent or ``isLast`` is true."""

    def __init__(self, *, token: str = "nextPageToken", param: str = "nextPageToken", is_last: str = "isLast",
                 in_body: bool = False) -> None:
        super().__init__(token=token, param=param, end=is_last, in_body=in_body)

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        turn = super().read(request, response, data, records)
        if turn.token is None and dig(data, self.end_path or "") is False:
            return Turn(None, True)  # isLast: false with no token: the loop says so rather than stop short
        # The last page omits the token and may omit isLast too: no token is the end.
        return Turn(turn.token, turn.more and turn.token is not None)


class NextUrlPaginator(Paginator):
    """A whole URL for the next page: from the body (``path``) or the ``Link`` header (``rel``).

    The next request is that URL as given, without the previous query (it carries its own).
    """

    def __init__(self, *, path: str | None = None, rel: str | None = None) -> None:
        super().__init__()
        if (path is None) == (rel is None):
            raise ValueError("a NextUrlPaginator reads the body (path=...) or the Link header (rel=...), one of them")
        self.path, self.rel = path, rel

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        if self.path is not None:
            url = _token(dig(data, self.path), self.path)
        else:
            assert self.rel is not None
            url = response.links.get(self.rel, {}).get("url") or None
        return Turn(url, url is not None)

    def apply(self, request: Request, token: str) -> Request:
        return replace(request, url=token, params={})


class OffsetPaginator(Paginator):
    """``param`` (e.g. ``startAt``) moved on by the records each page held.

    The end is ``is_last`` when the page has it; else ``total`` reached when the page has it;
    else an empty page. A page that is empty while saying it is not the last would repeat its
    offset: :meth:`follow` stops that.
    """

    counts_records = True

    def __init__(self, *, param: str = "startAt", start: int = 0, is_last: str | None = "isLast",
                 total: str | None = "total") -> None:
        super().__init__()
        self.param, self.start, self.is_last, self.total = param, start, is_last, total

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        current = request.params.get(self.param, self.start)
        try:
            offset = int(current)
        except (TypeError, ValueError):
            raise PaginationError(f"the request's {self.param} is {current!r}, not an offset") from None
        following = str(offset + len(records))
        last = _flag(dig(data, self.is_last), self.is_last) if self.is_last else None
        if last is not None:
            return Turn(following, not last)
        total = dig(data, self.total) if self.total else None
        if isinstance(total, int) and not isinstance(total, bool):
            return Turn(following, offset + len(records) < total)
        return Turn(following, len(records) > 0)

    def apply(self, request: Request, token: str) -> Request:
        return request.with_params(**{self.param: int(token)})


class KeysetPaginator(Paginator):
    """The (time, id) of a page's last record builds the next request: keyset paging.

    ``position`` reads a raw record's sort key; ``after`` makes the request for the records
    sorted after a position. Only an empty page ends the walk: a short page is not the end where
    row ACLs are applied after the limit (ServiceNow).
    """

    counts_records = True

    def __init__(self, *, position: Callable[[Any], tuple[str, str]],
                 after: Callable[[Request, tuple[str, str]], Request]) -> None:
        super().__init__()
        self.position, self.after = position, after

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        if not records:
            return Turn(None, False)
        for raw in reversed(records):  # the last record whose position can be read (a malformed one is quarantined)
            try:
                return Turn(json.dumps(list(self.position(raw))), True)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                continue
        raise PaginationError("no record on the page has a readable position; cannot tell where the next page starts")

    def apply(self, request: Request, token: str) -> Request:
        time, key = json.loads(token)
        return self.after(request, (time, key))
