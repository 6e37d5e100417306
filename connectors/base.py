"""The contract between the core and a helpdesk connector.

A connector turns one helpdesk's API into the normalised model and back. It receives its HTTP
client from the caller (tests pass respx routes or a sandbox), never touches the store, and
yields pages that the core commits together with their cursor.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import httpx

from bridge.config import SourceConfig
from bridge.credentials import Secret
from bridge.http import SourceClient
from bridge.model import Page, WritebackPlan

__all__ = ["Connector", "CredentialCheck", "FieldInfo", "HeaderAuth", "WritebackResult"]


@dataclass(frozen=True, slots=True)
class CredentialCheck:
    """Who the source says we are: proof that the credentials work."""

    account: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """A ticket field an admin can map (``sla-bridge fields SOURCE``)."""

    id: str
    title: str
    type: str
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WritebackResult:
    """What happened to one :class:`WritebackPlan` on the source."""

    ticket_id: str
    sent: bool
    conflict: bool = False
    version: str | None = None
    detail: str = ""


class HeaderAuth(httpx.Auth):
    """Sends a fixed ``Authorization`` header; the header itself is registered as a secret."""

    def __init__(self, value: Secret) -> None:
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value.reveal()
        yield request

    def __repr__(self) -> str:
        return "HeaderAuth(********)"


def basic(user: str, secret: Secret) -> HeaderAuth:
    raw = base64.b64encode(f"{user}:{secret.reveal()}".encode()).decode("ascii")
    Secret(raw, f"basic credentials of {user}")  # the blob alone decodes to user:secret: mask it too
    return HeaderAuth(Secret(f"Basic {raw}", f"basic credentials of {user}"))


def bearer(secret: Secret) -> HeaderAuth:
    return HeaderAuth(Secret(f"Bearer {secret.reveal()}", "bearer token"))


class Connector(ABC):
    """One helpdesk. Subclasses set ``system`` and register with :func:`connectors.register`."""

    system: ClassVar[str]

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        self.name = name
        self.config = config
        self.http = http

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
    def pull(self, cursors: Mapping[str, str | None], *, now: datetime) -> Iterator[Page]:
        """Pages of normalised tickets and events, each with its ``stream`` and the cursor after it.

        ``cursors`` holds the saved cursor of each stream (absent or None: start from the config's
        ``start``). A connector never touches the store: the core commits each page with its cursor.
        """

    @abstractmethod
    def apply(self, plan: WritebackPlan) -> WritebackResult:
        """Apply one ticket's write-back plan, without clobbering a newer edit by an agent."""

    def unmapped(self) -> dict[str, int]:
        """Raw values the config does not map (``"status 'escalated'" -> count``), for the run report."""
        return {}

    def history_start(self, now: datetime) -> datetime | None:
        """Where the first pull's history begins; tickets created before it are not evaluated."""
        return None

    def apply_all(self, plans: list[WritebackPlan]) -> list[WritebackResult]:
        """Apply many plans; connectors override this where the API has a cheaper bulk route."""
        return [self.apply(plan) for plan in plans]

    @abstractmethod
    def note_exists(self, external_id: str, marker: str) -> bool:
        """Whether an internal note carrying ``marker`` is on the ticket (checked after a crash)."""
