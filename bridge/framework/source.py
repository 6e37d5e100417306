"""``[sources.NAME]``: the keys every helpdesk source has, which each connector extends.

A connector declares its own model as a subclass of :class:`SourceConfig` (Jira adds
``projects``/``jql``, ServiceNow ``table``/``query``), narrowing what it must (the form of a
field id, of the status field) with :func:`spelled`, so that every source is validated with the
same precise, key-naming messages. Secrets are never accepted inline: ``token_env = "NAME"`` or
``token_file = "path"`` point at them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, model_validator

from bridge.engine.terms import CanonicalStatus, Priority, Section

__all__ = [
    "FIELD_ROLES",
    "AuthConfig",
    "FieldRole",
    "SourceConfig",
    "WritebackConfig",
    "is_loopback",
    "spelled",
]

# What a source's fields can be mapped onto (sources.NAME.fields.<role>).
FIELD_ROLES = ("customer", "service", "type", "group")
FieldRole = Literal["customer", "service", "type", "group"]

_INLINE_SECRET = (
    "a secret may not be written in the config file; "
    "name where it is instead: {key}_env = \"ENV_VAR_NAME\" or {key}_file = \"/path/to/file\""
)


def spelled(pattern: str, hint: str) -> BeforeValidator:
    """A text that must match ``pattern``; otherwise ``'<value>' <hint>`` names what was expected.

    None passes (for optional keys: ``Annotated[str | None, spelled(...)]``).
    """
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"{value!r} {hint}")
        return value

    return BeforeValidator(check)


def _refuse_inline(key: str) -> Any:
    def refuse(value: Any) -> Any:
        if value is not None:
            raise ValueError(_INLINE_SECRET.format(key=key))
        return value

    return Annotated[Any, BeforeValidator(refuse)]


class AuthConfig(Section):
    """``[sources.NAME.auth]``: who sla-bridge is, and where the secret is (never the secret)."""

    email: str | None = None
    username: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    oauth_token_env: str | None = None
    oauth_token_file: str | None = None
    # Inline secrets are declared only to refuse them with a message naming the right keys.
    token: _refuse_inline("token") = None  # type: ignore[valid-type]
    api_token: _refuse_inline("token") = None  # type: ignore[valid-type]
    password: _refuse_inline("password") = None  # type: ignore[valid-type]
    oauth_token: _refuse_inline("oauth_token") = None  # type: ignore[valid-type]
    access_token: _refuse_inline("oauth_token") = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_kind(self) -> AuthConfig:
        kinds = [
            kind
            for kind in ("token", "password", "oauth_token")
            if getattr(self, f"{kind}_env") is not None or getattr(self, f"{kind}_file") is not None
        ]
        if not kinds:
            raise ValueError(
                "no credentials: set email + token_env (API token), username + password_env, "
                "or oauth_token_env (each *_env may be a *_file instead)"
            )
        if len(kinds) > 1:
            raise ValueError(f"choose one kind of credentials, not {' and '.join(kinds)}")
        kind = kinds[0]
        if getattr(self, f"{kind}_env") is not None and getattr(self, f"{kind}_file") is not None:
            raise ValueError(f"set {kind}_env or {kind}_file, not both")
        if kind == "token" and not self.email:
            raise ValueError("token_env needs email: the API token is used together with the account's email address")
        if kind == "password" and not self.username:
            raise ValueError("password_env needs username")
        return self

    @property
    def kind(self) -> Literal["token", "password", "oauth_token"]:
        if self.token_env or self.token_file:
            return "token"
        if self.password_env or self.password_file:
            return "password"
        return "oauth_token"

    @property
    def principal(self) -> str | None:
        """The account name that goes with the secret (safe to print)."""
        return self.email or self.username

    @property
    def secret_env(self) -> str | None:
        return getattr(self, f"{self.kind}_env")  # type: ignore[no-any-return]

    @property
    def secret_file(self) -> str | None:
        return getattr(self, f"{self.kind}_file")  # type: ignore[no-any-return]


class WritebackConfig(Section):
    """``[sources.NAME.writeback]``: what sla-bridge may write onto the source's tickets.

    ``tags`` and ``notes`` left unset follow what the helpdesk can do (its connector's
    :class:`~bridge.framework.contract.WriteCapabilities`); set to true where it cannot, they
    are a configuration error.
    """

    enabled: bool = False
    status_field: str | None = None
    tags: bool | None = None
    tag_prefix: Annotated[str, spelled(r"[a-z0-9_-]*", "may contain only lower-case letters, digits, '-' and '_'")] = "sla_"
    notes: bool | None = None


def _url(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValueError(
            "a URL may not carry a user name or password (it would be shown in logs and reports); "
            "put the credentials under auth, e.g. token_env = \"ENV_VAR_NAME\""
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not a URL: write e.g. \"https://example.zendesk.com\"")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{value!r} uses http://; credentials would travel in clear text. Use https:// "
            "(plain http is allowed only for loopback addresses such as the local sandboxes)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the base URL only, without a query or fragment")
    return value.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start(value: Any) -> Any:
    """Where the first pull begins: a date or an instant with an offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone: add one, e.g. 2026-01-01T00:00:00Z")
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a date or an instant: write \"2026-01-01\" or \"2026-01-01T00:00:00Z\"") from None
        return _start(parsed)
    raise ValueError(f"expected a date such as 2026-01-01, got {value!r}")


class SourceConfig(Section):
    """``[sources.NAME]``: one helpdesk to pull from and write back to (the keys all share)."""

    system: str
    url: Annotated[str, BeforeValidator(_url)]
    auth: AuthConfig
    start: Annotated[date | datetime, BeforeValidator(_start)] | None = None
    statuses: dict[str, CanonicalStatus] = {}
    priorities: dict[str, Priority] = {}
    fields: dict[FieldRole, str] = {}
    writeback: WritebackConfig = WritebackConfig()
