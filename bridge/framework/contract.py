"""The contract between the core and a helpdesk connector: what a connector declares.

A connector turns one helpdesk's API into the normalised model and back. It declares:

- ``system`` (the name configs use) and ``config_model``, its ``[sources.NAME]`` schema;
- its :meth:`Connector.streams` (each a :class:`~bridge.framework.streams.Stream`), which the
  core reads with its own loop and commits page by page with their cursors;
- ``writes``, its :class:`WriteCapabilities`, and :meth:`Connector.writable`, which tickets
  accept a write; the core plans only what both allow, and :meth:`Connector.write` reports a
  result per item;
- its defaults (statuses, priorities, fields, how far back a first pull reaches) and its
  ``sandbox``, a faithful local emulator of its API.

It receives its HTTP client from the caller (tests pass respx routes or a sandbox) and never
touches the store. docs/connectors.md is the whole contract, with Zendesk as the worked example.
"""

from __future__ import annotations

import base64
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Literal

import httpx

from bridge.edges.credentials import Secret, redact
from bridge.edges.http import SourceClient, parse_retry_after
from bridge.errors import AuthenticationFailed, RetriableSourceError
from bridge.framework.mapping import ValueMapper
from bridge.framework.roster import AgentRoster
from bridge.framework.source import SourceConfig
from bridge.framework.streams import Stream
from bridge.model import Ticket, WritebackPlan

__all__ = [
    "ClientCredentials",
    "Connector",
    "CredentialCheck",
    "FieldInfo",
    "HeaderAuth",
    "ItemResult",
    "Outcome",
    "WriteCapabilities",
    "WritebackResult",
    "basic",
    "bearer",
]

Outcome = Literal["sent", "conflict", "refused"]


@dataclass(frozen=True, slots=True)
class CredentialCheck:
    """Who the source says we are: proof that the credentials work.

    ``problems``: what the account or the source's setup cannot do that the configured features
    need (a role without access to the exports, a status drop-down without sla-bridge's values),
    one line each naming the config key; ``check --online`` reports them and exits 3.
    """

    account: str
    detail: str = ""
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """A ticket field an admin can map (``sla-bridge fields SOURCE``)."""

    id: str
    title: str
    type: str
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteCapabilities:
    """What a helpdesk lets sla-bridge write; the core plans nothing else.

    ``bulk``: :meth:`Connector.write` sends many tickets per request. ``concurrency``: a write is
    refused (a conflict) when the ticket changed since it was pulled, so an agent's newer edit is
    never overwritten. ``tag_word`` is what the helpdesk calls tags (Jira: labels), for messages.
    ``notes_in_history``: the streams report the markers of notes already on a ticket as ``note``
    events, so a new or restored store knows them at no extra request; where they do not, the
    core asks :meth:`Connector.note_exists` before posting any note the journal has not settled.
    """

    status_field: bool = False
    tags: bool = False
    notes: bool = False
    bulk: bool = False
    concurrency: bool = False
    tag_word: str = "tags"
    notes_in_history: bool = False


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one item of a plan (``field:<id>``, ``tags``, ``note:<marker>``)."""

    item: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WritebackResult:
    """What happened to one :class:`~bridge.model.WritebackPlan`, item by item.

    ``sent``: on the ticket. ``conflict``: not applied because the ticket changed (the next run
    plans again from what it pulls). ``refused``: not applicable to this ticket as it is (gone,
    read-only, a value it will not take): journaled with the reason, reported, and retried once
    its cause may have changed (the write-back settings or the ticket changed, or after a
    back-off); see docs/connectors.md, "Write-back".
    """

    ticket_id: str
    items: tuple[ItemResult, ...]
    version: str | None = None

    @classmethod
    def of(cls, plan: WritebackPlan, outcome: Outcome, detail: str = "", *, version: str | None = None) -> WritebackResult:
        """Every item of ``plan`` with the same outcome (one request carried them all)."""
        return cls(plan.ticket_id, tuple(ItemResult(item, outcome, detail) for item in plan.items()), version)

    def outcomes(self) -> dict[str, Outcome]:
        return {result.item: result.outcome for result in self.items}

    @property
    def detail(self) -> str:
        return "; ".join(dict.fromkeys(result.detail for result in self.items if result.detail))


class HeaderAuth(httpx.Auth):
    """Sends a fixed ``Authorization`` header; the header itself is registered as a secret."""

    def __init__(self, value: Secret) -> None:
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value.reveal()
        yield request

    def __repr__(self) -> str:
        return "HeaderAuth(********)"


class ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials (RFC 6749 4.4): a bearer token from the source's token endpoint.

    The token is fetched before the first request, again ``early`` seconds before it expires
    (by the ``expires_in`` it came with), and once more when a request with it answers 401 (a
    token revoked or expired early). The endpoint is on the request's own origin
    (``token_path``); the form body carries the client id and secret. Every token is registered
    as a secret, so it is masked wherever it could be printed. A refusal raises
    :class:`~bridge.errors.AuthenticationFailed` naming ``key``.
    """

    def __init__(self, token_path: str, client_id: str, secret: Secret, *, key: str, early: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_path, self.client_id, self._secret, self.key = token_path, client_id, secret, key
        self.early, self.clock = early, clock
        self._token: Secret | None = None
        self._expires = 0.0
        self.fetched = 0  # tokens fetched, for the run record and tests

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or self.clock() >= self._expires - self.early:
            yield from self._fetch(request)
        assert self._token is not None
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        response = yield request
        if response.status_code == 401:
            yield from self._fetch(request)
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
            yield request

    def _fetch(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url.copy_with(path=self.token_path, query=None, fragment=None)
        asked = self.clock()
        response = yield httpx.Request("POST", url, data={
            "grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret.reveal()},
            headers={"Accept": "application/json", "User-Agent": request.headers.get("User-Agent", "")})
        response.read()
        if response.status_code == 429 or response.status_code >= 500:
            # The endpoint is busy, not the credentials wrong: retried like any other answer of that kind.
            raise RetriableSourceError(
                f"the token endpoint {self.token_path} answered {response.status_code}; the credentials were not judged",
                status=response.status_code, retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(timezone.utc)))
        try:
            data = response.json() if response.status_code == 200 else None
        except ValueError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            said = redact(response.text)[:200].replace("\n", " ")
            raise AuthenticationFailed(
                f"the token endpoint {self.token_path} refused the client credentials ({response.status_code}): check "
                f"{self.key} (the client id and secret of an OAuth application with the client-credentials grant). "
                f"It said: {said or 'nothing'}")
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float | str) and str(expires_in).isdigit() else 1800.0
        self._token = Secret(token, "an OAuth access token")
        self._expires = asked + lifetime
        self.fetched += 1

    def __repr__(self) -> str:
        return f"ClientCredentials({self.client_id}, ********)"


def basic(user: str, secret: Secret) -> HeaderAuth:
    raw = base64.b64encode(f"{user}:{secret.reveal()}".encode()).decode("ascii")
    Secret(raw, f"basic credentials of {user}")  # the blob alone decodes to user:secret: mask it too
    return HeaderAuth(Secret(f"Basic {raw}", f"basic credentials of {user}"))


def bearer(secret: Secret) -> HeaderAuth:
    return HeaderAuth(Secret(f"Bearer {secret.reveal()}", "bearer token"))


class Connector(ABC):
    """One helpdesk. Subclasses set the class attributes and implement the abstract methods."""

    system: ClassVar[str]
    title: ClassVar[str] = ""  # the product's name, for messages ("Zendesk Support")
    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    writes: ClassVar[WriteCapabilities] = WriteCapabilities()
    sandbox: ClassVar[str | None] = None  # "package.module:Class" of its local emulator
    default_statuses: ClassVar[Mapping[str, str]] = {}
    default_priorities: ClassVar[Mapping[str, str]] = {}
    default_fields: ClassVar[Mapping[str, str]] = {}
    history_default: ClassVar[timedelta] = timedelta(days=90)  # a first pull's reach when `start` is unset
    newest_start: ClassVar[timedelta] = timedelta(0)  # how recent a first request's start may be
    # How far behind the source's clock a stream that reached its end is complete: an export
    # that leaves out its last minute is complete only up to a minute ago. No breach is declared
    # on a due instant after the point the data is complete to.
    export_lag: ClassVar[timedelta] = timedelta(0)

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        self.name = name
        self.config = config
        self.http = http
        self.values = ValueMapper(statuses={**self.default_statuses, **config.statuses},
                                  priorities={**self.default_priorities, **config.priorities})
        self.fields: dict[str, str] = {**self.default_fields, **{str(role): spec for role, spec in config.fields.items()}}
        # Who was an agent when (bridge.framework.roster): the core loads it before a pull and
        # saves it after; a connector observes its agent list into it and classifies replies by it.
        self.roster = AgentRoster()

    @classmethod
    def auth(cls, config: SourceConfig, secret: Secret) -> httpx.Auth:
        """How this system presents the configured credentials (override where it differs)."""
        auth = config.auth
        if auth.kind == "oauth_token":
            return bearer(secret)
        user = auth.email if auth.kind == "token" else auth.username
        assert user is not None  # the config validation requires it
        return basic(user, secret)

    @abstractmethod
    def check_credentials(self) -> CredentialCheck:
        """One cheap authenticated request; raises a :class:`bridge.errors.SourceError` if refused."""

    @abstractmethod
    def list_fields(self) -> list[FieldInfo]:
        """The ticket fields an admin can map onto customer, service, type, group or status."""

    @abstractmethod
    def streams(self) -> Sequence[Stream]:
        """The streams to pull, in order (a ticket's history after the tickets)."""

    def writable(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` accepts a write at all (closed tickets are read-only in some helpdesks)."""
        return ticket.status != "deleted"

    def write(self, plans: Sequence[WritebackPlan]) -> Iterator[WritebackResult]:
        """Apply ``plans``, yielding each result as soon as it is known (the core journals it then).

        Never overwrite an agent's newer edit: where the helpdesk has optimistic concurrency, a
        changed ticket is a ``conflict``. Connectors with a bulk route override this.
        """
        for plan in plans:
            yield self.write_one(plan)

    def write_one(self, plan: WritebackPlan) -> WritebackResult:
        raise NotImplementedError(f"the {self.system} connector declares write-back but does not implement write_one")

    def note_exists(self, external_id: str, marker: str) -> bool:
        """Whether an internal note carrying ``marker`` is on the ticket (checked after a crash).

        Raises :class:`bridge.errors.NotFound` when the ticket is gone.
        """
        raise NotImplementedError(f"the {self.system} connector writes notes but cannot look for them")

    def field_value(self, ticket: Ticket, field_id: str) -> tuple[bool, object]:
        """(known, value) of write-back field ``field_id`` on ``ticket`` as pulled.

        Lets the core notice a value the source did not keep (a drop-down without that option
        drops it silently). ``known`` is False where the pulled ticket does not carry the field.
        """
        return False, None

    def unmapped(self) -> dict[str, int]:
        """Raw values the config does not map (``"status 'escalated'" -> count``), for the run report."""
        return dict(self.values.unmapped)
