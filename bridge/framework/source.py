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
from datetime import date, datetime, time, timezone
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


def _account(value: Any) -> Any:
    """A user name or email goes into an HTTP header: no control characters, not blank."""
    if isinstance(value, str) and (not value.strip() or any(ord(char) < 32 or ord(char) == 127 for char in value)):
        raise ValueError("must be a non-empty name without control characters (a line break would break the request)")
    return value


def _file_path(value: Any) -> Any:
    if isinstance(value, str) and (not value.strip() or "\0" in value):
        raise ValueError("must be the path of a file (not empty, no NUL character)")
    return value


Account = Annotated[str | None, BeforeValidator(_account)]
EnvName = Annotated[str | None, spelled(r"[A-Za-z_][A-Za-z0-9_]*", "is not an environment variable name: use letters, digits and '_'")]
FilePath = Annotated[str | None, BeforeValidator(_file_path)]


class AuthConfig(Section):
    """``[sources.NAME.auth]``: who sla-bridge is, and where the secret is (never the secret)."""

    email: Account = None
    username: Account = None
    token_env: EnvName = None
    token_file: FilePath = None
    password_env: EnvName = None
    password_file: FilePath = None
    oauth_token_env: EnvName = None
    oauth_token_file: FilePath = None
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
    def kind(self) -> str:
        """``token``, ``password`` or ``oauth_token`` (a connector's own auth model may add kinds)."""
        if self.token_env or self.token_file:
            return "token"
        if self.password_env or self.password_file:
            return "password"
        return "oauth_token"

    @property
    def secret_key(self) -> str:
        """The key the secret's ``_env``/``_file`` pair is named after (``token``, ``password``)."""
        return self.kind

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
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError(f"{value!r} is not a URL: it holds a space or a control character")
    parts = urlsplit(value)
    try:
        port = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{value!r} is not a URL: its port is not a number from 1 to 65535")
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


# The vendors' exports count time from the Unix epoch; none holds a ticket from before it.
EARLIEST_START = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _start(value: Any) -> Any:
    """Where the first pull begins: a date or an instant with an offset, from 1970 up to now.

    The first pull saves it as the source's history start, which every later run reads back, so
    a value outside that span would break every run after the config is fixed.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no time zone: add one, e.g. 2026-01-01T00:00:00Z")
        _within_history(value, value.isoformat())
        return value
    if isinstance(value, date):
        _within_history(datetime.combine(value, time(), tzinfo=timezone.utc), value.isoformat())
        return value
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return _start(day)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a date or an instant: write \"2026-01-01\" or \"2026-01-01T00:00:00Z\"") from None
        return _start(parsed)
    raise ValueError(f"expected a date such as 2026-01-01, got {value!r}")


def _within_history(moment: datetime, written: str) -> None:
    # Measured from the epoch on the wall clock minus the offset: converting a moment such as
    # 0001-01-01T00:00:00+01:00 to UTC would overflow.
    offset = moment.utcoffset()
    assert offset is not None
    since_epoch = moment.replace(tzinfo=None) - EARLIEST_START.replace(tzinfo=None) - offset
    if since_epoch.total_seconds() < 0:
        raise ValueError(f"{written} is before 1970-01-01, where the helpdesks' exports begin: write e.g. \"2026-01-01\"")
    if since_epoch > datetime.now(timezone.utc) - EARLIEST_START:
        raise ValueError(f"{written} is in the future: the history to pull must start before now, e.g. \"2026-01-01\"")


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
