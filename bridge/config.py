"""The TOML configuration: where it is found, what it may say, and how it says what is wrong.

The file is found from ``--config``, else ``$SLA_BRIDGE_CONFIG``, else ``./sla-bridge.toml``.
Environment variables override any value: ``SLA_BRIDGE_STORE__PATH`` sets ``store.path``,
``SLA_BRIDGE_SOURCES__ZENDESK_PROD__URL`` would set ``sources.zendesk_prod.url`` (``__`` separates
keys; names are matched without regard to case).

Validation is strict and complete before anything runs: unknown keys are errors (a typo must not
silently do nothing), every problem of a section's shape is reported with its key path in one
pass (then, once shapes are right, references between sections), and secrets are never accepted
inline: ``token_env = "NAME"`` or ``token_file = "path"`` point at them.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bridge import calendar
from bridge.credentials import Secret, read_secret
from bridge.durations import parse_duration
from bridge.errors import ConfigError
from bridge.model import CANONICAL_STATUSES, PRIORITIES

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "METRICS",
    "SYSTEMS",
    "AuthConfig",
    "CalendarConfig",
    "Config",
    "HttpConfig",
    "PolicyConfig",
    "Settings",
    "SourceConfig",
    "describe_errors",
    "find_config_path",
    "load_config",
]

CONFIG_ENV = "SLA_BRIDGE_CONFIG"
DEFAULT_CONFIG_NAME = "sla-bridge.toml"
ENV_PREFIX = "SLA_BRIDGE_"
SYSTEMS = ("zendesk", "jira", "servicenow")
METRICS = ("first_response", "next_response", "resolution")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


def _check(parser: typing.Callable[[Any], Any]) -> typing.Callable[[Any], Any]:
    """Run ``parser`` for its validation only and keep the value as written."""

    def validate(value: Any) -> Any:
        parser(value)
        return value

    return validate


def _date_text(parser: typing.Callable[[Any], Any]) -> typing.Callable[[Any], Any]:
    """Accept a TOML/Python date as well as its ``YYYY-MM-DD`` text; keep the text."""

    def validate(value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            value = value.isoformat()
        parser(value)
        return value

    return validate


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Duration = Annotated[int, BeforeValidator(parse_duration)]
Interval = Annotated[str, BeforeValidator(_check(calendar.parse_interval))]
Holiday = Annotated[str, BeforeValidator(_date_text(calendar.parse_holiday))]
OverrideDate = Annotated[str, BeforeValidator(_date_text(calendar.parse_override_date))]
TimeZoneName = Annotated[str, BeforeValidator(_check(calendar.parse_timezone))]
CanonicalStatus = Literal[CANONICAL_STATUSES]  # type: ignore[valid-type]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
Metric = Literal[METRICS]  # type: ignore[valid-type]
Weekday = Literal[calendar.WEEKDAYS]  # type: ignore[valid-type]
Name = Annotated[str, Field(pattern=_NAME)]
AnyOf = Annotated[list[str], BeforeValidator(_as_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- [store] and [http] ---------------------------------------------------------------------


class StoreConfig(_Section):
    """``[store]``: where the local SQLite database lives."""

    path: str = "sla-bridge.db"


class HttpConfig(_Section):
    """``[http]``: timeouts and the bounded retry policy every source shares."""

    timeout: Duration = 30
    max_attempts: int = Field(5, ge=1, le=20)
    max_wait: Duration = 120
    ca_bundle: str | None = None


# -- [calendars.NAME] -----------------------------------------------------------------------


class CalendarConfig(_Section):
    """``[calendars.NAME]``: working hours in a time zone, holidays and overrides."""

    timezone: TimeZoneName
    hours: dict[Weekday, list[Interval]] = {}
    holidays: list[Holiday] = []
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    overrides: dict[OverrideDate, list[Interval]] = {}
    due_at: Literal["close", "next_open"] = "close"
    granularity: Literal["second", "minute"] = "second"

    @model_validator(mode="after")
    def _known_holiday_country(self) -> CalendarConfig:
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise ValueError("holiday_subdivision needs holiday_country as well")
        if self.holiday_country is not None:
            year = date.today().year
            calendar.public_holidays(self.holiday_country, self.holiday_subdivision, range(year, year + 1))
        return self


# -- [[policies]] ---------------------------------------------------------------------------


class MatchConfig(_Section):
    """Which tickets a policy applies to; each key is any-of, all keys must fit."""

    source: AnyOf | None = None
    customer: AnyOf | None = None
    priority: Annotated[list[Priority], BeforeValidator(_as_list)] | None = None
    type: AnyOf | None = None
    service: AnyOf | None = None
    group: AnyOf | None = None


def _over(value: Any) -> Any:
    """A per-breach tier threshold: a share of the target (``"50%"``) or a duration (``"4h"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1]
        try:
            if float(number) < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage of the target: write e.g. \"50%\"") from None
        return value
    parse_duration(value, allow_zero=True)
    return value


Percent = Annotated[float, Field(ge=0, le=100)]


class BreachTier(_Section):
    over: Annotated[str, BeforeValidator(_over)]
    percent: Percent


class SuccessTier(_Section):
    below: Percent
    percent: Percent


class AvailabilityConfig(_Section):
    match: MatchConfig = MatchConfig(type=["outage"])
    commitment: Percent
    tiers: list[SuccessTier] = []


class CreditsConfig(_Section):
    """``[policies.credits]``: what a missed target costs the provider."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    monthly_fee: float = Field(ge=0)
    cap_percent: Percent = 100
    period: Literal["month", "quarter", "year"] = "month"
    per_breach: list[BreachTier] = []
    success_rate: list[SuccessTier] = []
    availability: AvailabilityConfig | None = None


class PolicyConfig(_Section):
    """One ``[[policies]]`` entry; the first policy whose ``match`` fits a ticket applies."""

    name: Name
    contract: str = ""
    calendar: str = "24x7"
    match: MatchConfig = MatchConfig()
    pause_when: list[CanonicalStatus] = ["waiting_customer"]
    warn_at: float = Field(0.75, gt=0, lt=1)
    breach_on_equal: bool = False
    on_reopen: Literal["continue", "new_cycle"] = "continue"
    targets: dict[Metric, dict[Priority, Duration]] = Field(min_length=1)
    credits: CreditsConfig | None = None

    @field_validator("targets")
    @classmethod
    def _targets_not_empty(cls, targets: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for metric, per_priority in targets.items():
            if not per_priority:
                raise ValueError(f"{metric} has no target: give at least one priority, e.g. p1 = \"4h\"")
        return targets


# -- [sources.NAME] -------------------------------------------------------------------------

_INLINE_SECRET = (
    "a secret may not be written in the config file; "
    "name where it is instead: {key}_env = \"ENV_VAR_NAME\" or {key}_file = \"/path/to/file\""
)


def _refuse_inline(key: str) -> Any:
    def refuse(value: Any) -> Any:
        if value is not None:
            raise ValueError(_INLINE_SECRET.format(key=key))
        return value

    return Annotated[Any, BeforeValidator(refuse)]


class AuthConfig(_Section):
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


_FIELD_SPEC = r"^(?:[a-z][a-z_]*|custom_field:[A-Za-z0-9_.-]+)$"
FieldSpec = Annotated[str, Field(pattern=_FIELD_SPEC)]


class WritebackConfig(_Section):
    """``[sources.NAME.writeback]``: what sla-bridge may write onto the source's tickets."""

    enabled: bool = False
    status_field: Annotated[str, Field(pattern=r"^custom_field:[A-Za-z0-9_.-]+$")] | None = None
    tags: bool = True
    tag_prefix: Annotated[str, Field(pattern=r"^[a-z0-9_-]*$")] = "sla_"
    notes: bool = True


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
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{value!r} uses http://; credentials would travel in clear text. Use https:// "
            "(plain http is allowed only for loopback addresses such as the local sandboxes)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the base URL only, without a query or fragment")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
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


class SourceConfig(_Section):
    """``[sources.NAME]``: one helpdesk to pull from and write back to."""

    system: Literal[SYSTEMS]  # type: ignore[valid-type]
    url: Annotated[str, BeforeValidator(_url)]
    auth: AuthConfig
    start: Annotated[date | datetime, BeforeValidator(_start)] | None = None
    statuses: dict[str, CanonicalStatus] = {}
    priorities: dict[str, Priority] = {}
    fields: dict[Literal["customer", "service", "type", "group"], FieldSpec] = {}
    writeback: WritebackConfig = WritebackConfig()


# -- the whole file -------------------------------------------------------------------------


class Settings(BaseSettings):
    """The whole configuration as validated; :class:`Config` adds where it came from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    store: StoreConfig = StoreConfig()
    http: HttpConfig = HttpConfig()
    calendars: dict[Annotated[str, Field(pattern=_NAME)], CalendarConfig] = {}
    policies: list[PolicyConfig] = []
    sources: dict[Annotated[str, Field(pattern=_NAME)], SourceConfig] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is passed as init arguments; the environment overrides it.
        return (env_settings, init_settings)


@dataclass(frozen=True)
class Config:
    """A validated configuration and the file it came from."""

    settings: Settings
    path: Path | None

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def sources(self) -> dict[str, SourceConfig]:
        return self.settings.sources

    @property
    def calendars(self) -> dict[str, CalendarConfig]:
        return self.settings.calendars

    @property
    def policies(self) -> list[PolicyConfig]:
        return self.settings.policies

    @property
    def http(self) -> HttpConfig:
        return self.settings.http

    def store_path(self, override: str | Path | None = None) -> Path:
        """The database file: ``--db`` (from the current folder) if given, else ``store.path``
        (from the config file's folder)."""
        if override is not None:
            return Path(override).expanduser().absolute()
        path = Path(self.settings.store.path).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def ca_bundle_path(self) -> Path | None:
        """``http.ca_bundle`` from the config file's folder, when set."""
        if self.settings.http.ca_bundle is None:
            return None
        path = Path(self.settings.http.ca_bundle).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def source_secret(self, name: str) -> Secret:
        """Read the secret of source ``name``; :class:`ConfigError` names the key when it cannot."""
        auth = self.sources[name].auth
        kind = auth.kind
        try:
            return read_secret(
                env=getattr(auth, f"{kind}_env"),
                file=getattr(auth, f"{kind}_file"),
                key=f"sources.{name}.auth.{kind}",
                base_dir=self.base_dir,
            )
        except LookupError as error:
            raise ConfigError(str(error), file=str(self.path) if self.path else None) from None


def find_config_path(explicit: str | Path | None = None) -> Path:
    """``--config``, else ``$SLA_BRIDGE_CONFIG``, else ``./sla-bridge.toml``; it must exist."""
    if explicit is not None:
        candidate, said_by = Path(explicit), "--config"
    elif os.environ.get(CONFIG_ENV):
        candidate, said_by = Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"
    else:
        candidate, said_by = Path(DEFAULT_CONFIG_NAME), "the default location"
    candidate = candidate.expanduser()
    if not candidate.is_file():
        hint = " Run 'sla-bridge init' to write a starter config." if said_by == "the default location" else ""
        raise ConfigError(f"no config file at {candidate} (from {said_by}).{hint}")
    return candidate


def load_config(
    path: str | Path | None = None, *, data: dict[str, Any] | None = None, environ: bool = True
) -> Config:
    """Read, validate and cross-check a config file (or ``data``, for tests and ``init``).

    ``environ=False`` ignores ``SLA_BRIDGE_*`` overrides (``init`` checks its starter that way).
    """
    file_label: str | None = None
    resolved: Path | None = None
    if data is None:
        resolved = find_config_path(path)
        file_label = str(resolved)
        try:
            with resolved.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML: {error}", file=file_label) from None
        except OSError as error:
            raise ConfigError(f"cannot read the config: {error.strerror}", file=file_label) from None
    # pydantic-settings reads keyword arguments starting with "_" as its own options
    # (_env_prefix, _cli_parse_args, ...): from a config file they are just unknown keys.
    problems = [f"{key}: unknown key {key!r}" for key in sorted(map(str, data)) if key.startswith("_")]
    if environ:
        problems += _check_environment(data)
    if problems:
        raise ConfigError(problems, file=file_label)
    try:
        settings = (Settings if environ else _FileOnlySettings)(**data)
    except ValidationError as error:
        raise ConfigError(describe_errors(error), file=file_label) from None
    except SettingsError as error:
        raise ConfigError(f"environment: {error}", file=file_label) from None
    problems = _cross_check(settings)
    config = Config(settings=settings, path=resolved.resolve() if resolved else None)
    bundle = config.ca_bundle_path()
    if bundle is not None and not bundle.is_file():
        problems.append(f"http.ca_bundle: no file at {bundle}")
    if problems:
        raise ConfigError(problems, file=file_label)
    return config


class _FileOnlySettings(Settings):
    """The same schema, without environment overrides."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _check_environment(data: dict[str, Any]) -> list[str]:
    """Every ``SLA_BRIDGE_*`` variable must name a real key: a typo must not silently do nothing."""
    problems: list[str] = []
    for variable in sorted(os.environ):
        if not variable.upper().startswith(ENV_PREFIX) or variable.upper() == CONFIG_ENV:
            continue
        problem = _env_path_problem(variable[len(ENV_PREFIX):].lower().split("__"), data)
        if problem:
            problems.append(f"environment variable {variable}: {problem}")
    return problems


def _env_path_problem(parts: list[str], data: Any) -> str | None:
    annotation: Any = Settings
    node: Any = data
    for index, part in enumerate(parts):
        annotation = _unwrap(annotation)
        where = ".".join(parts[:index]) or "the top level"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None or _is_refusal(field):
                hint = " (separate keys with a double underscore, e.g. SLA_BRIDGE_HTTP__MAX_WAIT)" if "_" in part else ""
                return f"{part!r} is not a key of {where}{hint}"
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            value_type = _unwrap(typing.get_args(annotation)[1])
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                names = node if isinstance(node, dict) else {}
                if part not in names:
                    return (
                        f"there is no {where}.{part} in the file (names in environment variables are "
                        f"lower-cased and '-' stays '-'); known: {', '.join(sorted(names)) or 'none'}"
                    )
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) is list:
            return f"{where} is a list: set the whole list as JSON in {ENV_PREFIX}{where.upper()}, or edit the file"
        else:
            return f"{where} has no keys below it"
        node = node.get(part) if isinstance(node, dict) else None
    return None


def _cross_check(settings: Settings) -> list[str]:
    """Rules that span sections: references between policies, calendars and sources."""
    problems: list[str] = []
    known_calendars = set(settings.calendars) | set(calendar.BUILTIN_CALENDARS)
    for name in settings.calendars:
        if name in calendar.BUILTIN_CALENDARS:
            problems.append(f"calendars.{name}: {name!r} is built in; choose another name")
    seen: dict[str, int] = {}
    for index, policy in enumerate(settings.policies):
        where = f"policies[{index}] ({policy.name})"
        if policy.name in seen:
            problems.append(f"{where}.name: another policy (policies[{seen[policy.name]}]) has the same name")
        seen.setdefault(policy.name, index)
        if policy.calendar not in known_calendars:
            problems.append(
                f"{where}.calendar: unknown calendar {policy.calendar!r}{_suggest(policy.calendar, known_calendars)}"
            )
        for match, label in ((policy.match, "match"), (policy.credits and policy.credits.availability and policy.credits.availability.match, "credits.availability.match")):
            if match and match.source:
                for source in match.source:
                    if source not in settings.sources:
                        problems.append(
                            f"{where}.{label}.source: no source named {source!r}{_suggest(source, settings.sources)}"
                        )
    return problems


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    known = sorted(choices)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(known)}" if known else ""


# -- turning pydantic's errors into one line per problem ------------------------------------


def describe_errors(error: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    """One line per problem, each starting with its key path (``prefix`` goes in front)."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = prefix + tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            allowed = _allowed_keys(parent)
            hint = _suggest(key, allowed) if allowed else ""
            message = f"unknown key {key!r}{hint}"
            problems.append(f"{_path(loc)}: {message}{_env_note(loc)}")
            continue
        if kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            what = "unknown key" if loc and loc[-1] == "[key]" else "value"
            message = f"{what} {item['input']!r} is not allowed; choose one of {expected}"
        elif kind == "string_pattern_mismatch":
            message = f"{item['input']!r} {_PATTERN_HINTS.get(item['ctx']['pattern'], 'is not in the expected form')}"
        elif kind in {"value_error", "assertion_error"}:
            message = str(item["ctx"]["error"]) if "ctx" in item else item["msg"]
        else:
            message = item["msg"][:1].lower() + item["msg"][1:]
            if "input" in item and not isinstance(item["input"], dict | list) and not _may_hold_secret(loc):
                message += f" (got {item['input']!r})"
        problems.append(f"{_path(loc)}: {message}{_env_note(loc)}")
    return problems


_PATTERN_HINTS = {
    _NAME: "is not a valid name: use letters, digits, '-' and '_', starting with a letter or digit",
    _FIELD_SPEC: "is not a field: use a built-in field name such as \"organization\" or \"custom_field:ID\"",
    r"^custom_field:[A-Za-z0-9_.-]+$": "is not a custom field: write \"custom_field:ID\"",
    r"^[A-Z]{3}$": "is not a currency: use the three-letter ISO 4217 code, e.g. \"EUR\"",
    r"^[a-z0-9_-]*$": "may contain only lower-case letters, digits, '-' and '_'",
}


def _may_hold_secret(loc: tuple[Any, ...]) -> bool:
    """Never echo a value given under ``auth`` or a key that sounds like a secret."""
    return any(str(part) == "auth" or any(word in str(part) for word in ("token", "password", "secret")) for part in loc)


_PYDANTIC_STEP = re.compile(r"^(?:\[key\]|(?:function-(?:before|after|wrap|plain)|lax-or-strict|json-or-python|union|tagged-union)\[.*\])$")


def _path(loc: tuple[Any, ...]) -> str:
    """``('sources', 'zd', 'auth', 'token_env')`` -> ``sources.zd.auth.token_env``; lists as ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PYDANTIC_STEP.match(str(part)):
            continue  # pydantic's internal validator steps, not keys of the file
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _env_note(loc: tuple[Any, ...]) -> str:
    name = ENV_PREFIX + "__".join(str(part) for part in loc if not isinstance(part, int)).upper()
    for key in os.environ:
        if key.upper() == name:
            return f" (set by the environment variable {key})"
    return ""


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts, found by walking the model's annotations."""
    annotation: Any = Settings
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [name for name, info in annotation.model_fields.items() if not _is_refusal(info)]
    return []


def _is_refusal(info: Any) -> bool:
    return any(isinstance(meta, BeforeValidator) and meta.func.__name__ == "refuse" for meta in info.metadata)


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = args[0]
        else:
            return annotation

