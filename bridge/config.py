"""The TOML configuration: where it is found, what it may say, and how it says what is wrong.

The file is found from ``--config``, else ``$SLA_BRIDGE_CONFIG``, else ``./sla-bridge.toml``.
Environment variables override any value: ``SLA_BRIDGE_STORE__PATH`` sets ``store.path``,
``SLA_BRIDGE_SOURCES__ZENDESK_PROD__URL`` would set ``sources.zendesk_prod.url`` (``__`` separates
keys; names are matched without regard to case).

Validation is strict and complete before anything runs: unknown keys are errors (a typo must not
silently do nothing), every problem of a section's shape is reported with its key path in one
pass (then, once shapes are right, references between sections), and secrets are never accepted
inline: ``token_env = "NAME"`` or ``token_file = "path"`` point at them.

A config that loads must run: every value is held to what the code can do with it (durations
and numbers bounded, a target reachable on its calendar, the CA bundle a CA bundle, the store
a file that can be), so a mistake stops ``check`` with its key (exit 2) rather than a run after
its requests. The file itself is read as UTF-8 TOML of bounded size and depth. Values from the
environment are text, so numbers are read from that text; in the file a number must be a number.

The file is composed of the engine's terms (:mod:`bridge.engine.terms`: calendars, policies),
the ``[store]`` and ``[http]`` sections, and one ``[sources.NAME]`` table per helpdesk, each
validated by the model its connector declares (found through :mod:`bridge.framework.registry`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import re
import ssl
import stat
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bridge.edges.credentials import Secret, read_secret
from bridge.edges.http import DEFAULT_MAX_PAGES
from bridge.engine.calendar import Calendar
from bridge.engine.durations import format_duration, parse_duration
from bridge.engine.hours import BUILTIN_CALENDARS
from bridge.engine.terms import (
    NAME_PATTERN,
    PRESETS,
    TARGET_YEARS,
    CalendarConfig,
    PolicyConfig,
    Section,
    duration_within,
)
from bridge.errors import ConfigError, ConnectorUnavailable
from bridge.framework import registry
from bridge.framework.contract import Connector
from bridge.framework.source import SourceConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "Config",
    "HttpConfig",
    "Settings",
    "StoreConfig",
    "describe_errors",
    "find_config_path",
    "load_config",
]

CONFIG_ENV = "SLA_BRIDGE_CONFIG"
DEFAULT_CONFIG_NAME = "sla-bridge.toml"
ENV_PREFIX = "SLA_BRIDGE_"
_NAME = NAME_PATTERN
SourceName = Annotated[str, Field(pattern=_NAME)]
Count = Annotated[int, Field(strict=True)]  # a whole number as TOML writes one (not "5", not true)

MINUTE, HOUR, DAY = 60, 3600, 86_400
DEFAULT_TIMEOUT = 30
DEFAULT_DEADLINE = 2 * MINUTE  # deadline_for(DEFAULT_TIMEOUT)
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a config is a few kilobytes; more is the wrong file
MAX_DEPTH = 24  # the deepest key of the schema is 7 levels down (policies[0].credits.availability.match.type[0])
MAX_CA_BUNDLE_BYTES = 16 * 1024 * 1024


def deadline_for(timeout: int) -> int:
    """``http.deadline`` when it is not set: 4 x ``timeout``, at least 30s, at most 1h."""
    return min(max(4 * timeout, 30), HOUR)


def _path_text(value: Any) -> Any:
    """A file path as text: not empty, no NUL (the OS would refuse it mid-run)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("empty path: give a file name, e.g. \"sla-bridge.db\"")
    if isinstance(value, str) and "\0" in value:
        raise ValueError("a path may not contain a NUL character")
    return value


PathText = Annotated[str, BeforeValidator(_path_text)]


class StoreConfig(Section):
    """``[store]``: where the local SQLite database lives."""

    path: PathText = "sla-bridge.db"


class HttpConfig(Section):
    """``[http]``: timeouts, the bounded retry policy and the bounds every source shares.

    The HTTP layer reads these through :class:`bridge.edges.http.HttpSettings`; every duration is
    whole seconds. Each bound is one the run can honour: a timeout past an hour is a hung cron
    job, not a patient one.
    """

    timeout: Annotated[int, duration_within(HOUR)] = DEFAULT_TIMEOUT
    # The overall bound on one request, a trickled header or body included; unset, it follows
    # the timeout (deadline_for).
    deadline: Annotated[int, duration_within(HOUR)] = DEFAULT_DEADLINE
    max_attempts: Annotated[Count, Field(ge=1, le=20)] = 5
    # The bound on the whole time one request takes across its retries, attempts and waits together.
    max_wait: Annotated[int, duration_within(DAY)] = 120
    max_pages: Annotated[Count, Field(ge=1, le=10_000_000)] = DEFAULT_MAX_PAGES
    # The bound on one run: past it each source stops cleanly (exit 3) and the next run resumes.
    max_run: Annotated[int, duration_within(7 * DAY, at_least=MINUTE)] = 50 * MINUTE
    max_body_mb: Annotated[Count, Field(ge=1, le=2048)] = 64
    ca_bundle: PathText | None = None

    @model_validator(mode="before")
    @classmethod
    def _deadline_follows_the_timeout(cls, data: Any) -> Any:
        """Left unset, the deadline is four reads' worth of the timeout, within 30s and 1h.

        A short timeout gets a short deadline (a trickling server is cut sooner), a long one a
        deadline it fits in; the default timeout of 30s keeps the default deadline of 2m.
        """
        if isinstance(data, dict) and "deadline" not in data and "timeout" in data:
            with contextlib.suppress(ValueError):
                timeout = parse_duration(data["timeout"])
                if timeout <= HOUR:  # else the timeout's own error says it
                    return {**data, "deadline": f"{deadline_for(timeout)}s"}
        return data

    @field_validator("deadline")
    @classmethod
    def _deadline_covers_timeout(cls, deadline: int, info: ValidationInfo) -> int:
        timeout = info.data.get("timeout")
        if isinstance(timeout, int) and deadline < timeout:
            raise ValueError(
                f"{format_duration(deadline)} is shorter than http.timeout ({format_duration(timeout)}): the deadline "
                "bounds a whole request, so it must be at least the timeout of one read"
            )
        return deadline


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
    # Each table is validated by its connector's own model once the file's shape is right.
    sources: dict[SourceName, dict[str, Any]] = {}

    @field_validator("policies", mode="before")
    @classmethod
    def _extended(cls, policies: Any) -> Any:
        return resolve_extends(policies)

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
        return (_NumbersFromText(settings_cls), init_settings)


def resolve_extends(policies: Any) -> Any:
    """Each ``[[policies]]`` table with ``extends = "NAME"`` as the whole policy it means: the named
    policy's keys (itself resolved first), with this one's over them, tables merged key by key.

    An unknown name (with a did-you-mean) or a loop is an error naming the entry.
    """
    if not isinstance(policies, list):
        return policies
    by_name = {p.get("name"): p for p in policies if isinstance(p, dict) and isinstance(p.get("name"), str)}
    resolved: dict[str, dict[str, Any]] = {}

    def effective(index: int, table: dict[str, Any], chain: tuple[str, ...]) -> dict[str, Any]:
        parent = table.get("extends")
        if parent is None:
            return table
        where = f"policies[{index}] ({table.get('name')}).extends"
        if not isinstance(parent, str) or parent not in by_name:
            close = difflib.get_close_matches(str(parent), [str(n) for n in by_name], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: no policy is named {parent!r}{hint}")
        if parent in chain:
            raise ValueError(f"{where}: {' -> '.join((*chain, parent))} goes round in a loop")
        base = resolved.get(parent)
        if base is None:
            base = effective(policies.index(by_name[parent]), by_name[parent], (*chain, parent))
            resolved[parent] = base
        # A policy's name and the dates its terms are in force are its own, never inherited.
        merged = _merged({k: v for k, v in base.items() if k not in ("name", "extends", "effective_from", "effective_to")}, table)
        return merged

    return [_with_preset(effective(index, table, (str(table.get("name")),))) if isinstance(table, dict) else table
            for index, table in enumerate(policies)]


def _with_preset(table: dict[str, Any]) -> dict[str, Any]:
    """The vendor's defaults under the policy's keys (an unknown preset is left for validation to name)."""
    preset = table.get("preset")
    return _merged(PRESETS[preset], table) if isinstance(preset, str) and preset in PRESETS else table


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


class _NumbersFromText(EnvSettingsSource):
    """The environment, with the text of a number read as one where the schema wants a number.

    A variable's value is always text, so ``SLA_BRIDGE_HTTP__MAX_ATTEMPTS=3`` must mean 3; the
    file's numbers stay strict (``max_attempts = "3"`` is refused). Text that is not a number is
    left as it is, for validation to name the variable.
    """

    def __call__(self) -> dict[str, Any]:
        return typing.cast("dict[str, Any]", _numbers_from_text(super().__call__(), Settings))


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def _numbers_from_text(value: Any, annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(value, str) and annotation in (int, float):
        text = value.strip()
        if annotation is int and _INTEGER.fullmatch(text):
            return int(text)
        if annotation is float:
            with contextlib.suppress(ValueError):
                number = float(text)
                return number if math.isfinite(number) else value
        return value
    if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {key: _numbers_from_text(item, annotation.model_fields[key].annotation) if key in annotation.model_fields else item
                for key, item in value.items()}
    if isinstance(value, dict) and typing.get_origin(annotation) is dict:
        inner = typing.get_args(annotation)[1]
        return {key: _numbers_from_text(item, inner) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Config:
    """A validated configuration, the file it came from, and each source's validated table."""

    settings: Settings
    path: Path | None
    sources: dict[str, SourceConfig] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def calendars(self) -> dict[str, CalendarConfig]:
        return self.settings.calendars

    @property
    def policies(self) -> list[PolicyConfig]:
        return self.settings.policies

    @property
    def http(self) -> HttpConfig:
        return self.settings.http

    @property
    def file_label(self) -> str | None:
        return str(self.path) if self.path else None

    def store_path(self, override: str | Path | None = None) -> Path:
        """The database file: ``--db`` (from the current folder) if given, else ``store.path``
        (from the config file's folder). :class:`ConfigError` when ``--db`` names something that
        cannot be a store (``store.path`` is checked when the config loads)."""
        if override is not None:
            path = Path(override).expanduser().absolute()
            problem = _store_path_problem(path)
            if problem:
                raise ConfigError(f"--db: {problem}")
            return path
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
        try:
            return read_secret(
                env=auth.secret_env,
                file=auth.secret_file,
                key=f"sources.{name}.auth.{auth.secret_key}",
                base_dir=self.base_dir,
            )
        except LookupError as error:
            raise ConfigError(str(error), file=str(self.path) if self.path else None) from None

    def require_sources(self) -> None:
        """At least one source must be configured: ``sync``, ``pull``, ``push`` and ``check`` on a
        config without one would create a store and report success having done nothing."""
        if not self.sources:
            raise ConfigError(
                "no sources are configured: add a [sources.NAME] table for each helpdesk "
                "(config.example.toml shows one; 'sla-bridge init' writes a starter)",
                file=self.file_label,
            )

    def require_secrets(self, names: typing.Iterable[str] | None = None) -> None:
        """Every named source's secret must be readable before anything is sent: one error listing all.

        Commands that need secrets need sources, so this calls :meth:`require_sources` first.
        """
        self.require_sources()
        problems: list[str] = []
        for name in self.sources if names is None else names:
            try:
                self.source_secret(name)
            except ConfigError as error:
                problems.extend(error.problems)
        if problems:
            raise ConfigError(problems, file=str(self.path) if self.path else None)


def find_config_path(explicit: str | Path | None = None) -> Path:
    """``--config``, else ``$SLA_BRIDGE_CONFIG``, else ``./sla-bridge.toml``; it must exist."""
    if explicit is not None:
        candidate, said_by = Path(explicit), "--config"
    elif os.environ.get(CONFIG_ENV):
        candidate, said_by = Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"
    else:
        candidate, said_by = Path(DEFAULT_CONFIG_NAME), "the default location"
    candidate = candidate.expanduser()
    if candidate.exists() and not candidate.is_file():
        kind = "a folder" if candidate.is_dir() else "not a regular file"
        raise ConfigError(f"{candidate} (from {said_by}) is {kind}; give the path of the TOML config file")
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
        data = _read_toml(resolved, file_label)
    deep = _too_deep(data)
    if deep:
        raise ConfigError(f"{deep}: nested more than {MAX_DEPTH} levels deep; no key of the config is", file=file_label)
    # pydantic-settings reads keyword arguments starting with "_" as its own options
    # (_env_prefix, _cli_parse_args, ...): from a config file they are just unknown keys.
    problems = [f"{key}: unknown key {key!r}" for key in sorted(map(str, data)) if key.startswith("_")]
    if environ:
        problems += _check_environment(data)
    if problems:
        raise ConfigError(_readable(problems), file=file_label)
    try:
        settings = (Settings if environ else _FileOnlySettings)(**data)
    except ValidationError as error:
        # Every problem in one pass: the sources' own keys too, as far as their tables are tables.
        tables = data.get("sources")
        if isinstance(tables, dict) and environ:
            tables = _with_environment(tables)
        found = _validate_sources({k: v for k, v in tables.items() if isinstance(v, dict)})[1] if isinstance(tables, dict) else []
        raise ConfigError(_readable(describe_errors(error) + found), file=file_label) from None
    except SettingsError as error:
        raise ConfigError(f"environment: {error}", file=file_label) from None
    except RecursionError:
        raise ConfigError(f"environment: a value of an {ENV_PREFIX}* variable is nested too deeply", file=file_label) from None
    sources, problems = _validate_sources(settings.sources)
    problems += _one_writer_per_helpdesk(sources)
    problems += _cross_check(settings)
    config = Config(settings=settings, path=resolved.resolve() if resolved else None, sources=sources)
    problems += _check_files(config)
    if problems:
        raise ConfigError(_readable(problems), file=file_label)
    return config


def _readable(problems: list[str], limit: int = 500) -> list[str]:
    """Each problem short enough to read: a value echoed whole (a 5,000-character name) is cut in the middle."""
    return [problem if len(problem) <= limit else f"{problem[: limit - 100]} ... {problem[-80:]}" for problem in problems]


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    """The file as TOML: bounded in size, UTF-8 (a byte-order mark is allowed), each failure one line."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read the config: {error.strerror}", file=label) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB, which no config is: is this the right file?", file=label)
    if b"\0" in raw:
        raise ConfigError("a binary file, not a TOML text: is this the right file?", file=label)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}): a config is TOML, which is UTF-8; "
            "save it as UTF-8, or check this is the right file",
            file=label,
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", file=label) from None
    except RecursionError:
        raise ConfigError(f"nested too deeply to read; no key of the config is more than {MAX_DEPTH} levels deep", file=label) from None


def _too_deep(data: dict[str, Any]) -> str | None:
    """The key path of the first value nested deeper than :data:`MAX_DEPTH`, if any (no recursion)."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while pending:
        node, where = pending.pop()
        if len(where) > MAX_DEPTH:
            return _path(where[:MAX_DEPTH]) + "..."
        if isinstance(node, dict):
            pending.extend((value, (*where, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            pending.extend((value, (*where, index)) for index, value in enumerate(node))
    return None


def _check_files(config: Config) -> list[str]:
    """The files the config names, as far as they can be checked before a run: the store's path
    and the CA bundle (its certificates loaded as the HTTP layer will load them)."""
    problems: list[str] = []
    problem = _store_path_problem(config.store_path())
    if problem:
        problems.append(f"store.path: {problem}{_env_note(('store', 'path'))}")
    bundle = config.ca_bundle_path()
    if bundle is not None:
        problem = _ca_bundle_problem(bundle)
        if problem:
            problems.append(f"http.ca_bundle: {problem}{_env_note(('http', 'ca_bundle'))}")
    return problems


def _store_path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the store's file, if it cannot: an existing directory, device, FIFO
    or socket (``/dev/null`` would take every write and keep none), or a folder that is a file."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as error:
        return f"cannot use {path}: {error.strerror}"
    if mode is not None:
        if stat.S_ISDIR(mode):
            return f"{path} is a folder; name the store's file in it, e.g. {path / 'sla-bridge.db'}"
        if not stat.S_ISREG(mode):
            return f"{path} is not a regular file (a device, FIFO or socket); name a file for the store, e.g. sla-bridge.db"
        return _not_sqlite(path)
    for parent in path.parents:
        try:
            parent_mode = parent.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # created on first use (or below a file, which the next step up finds)
        except OSError as error:
            return f"cannot use {parent}: {error.strerror}"
        if not stat.S_ISDIR(parent_mode):
            return f"{parent} is not a folder, so {path} cannot be created"
        return None
    return None


_SQLITE_HEADER = b"SQLite format 3\0"


def _not_sqlite(path: Path) -> str | None:
    """An existing file that is not an SQLite database is another file named by mistake (the
    config itself, a log): the store must not be pointed at it, let alone advise moving it aside."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError:
        return None  # the store says what is wrong with a file it cannot open
    if head and head != _SQLITE_HEADER:
        return (f"{path} exists and is not an SQLite database, so it is not a store; "
                "is this the right file? (a new store is created where no file is)")
    return None


def _ca_bundle_problem(bundle: Path) -> str | None:
    """Why ``bundle`` is not a CA bundle the HTTP layer can load, if it is not."""
    try:
        info = bundle.stat()
    except FileNotFoundError:
        return f"no file at {bundle}"
    except OSError as error:
        return f"cannot read {bundle}: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{bundle} is not a regular file; give the path of a PEM file of CA certificates"
    if info.st_size > MAX_CA_BUNDLE_BYTES:
        return f"{bundle} is larger than {MAX_CA_BUNDLE_BYTES // (1024 * 1024)} MB, which no CA bundle is"
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(bundle))
    except ssl.SSLError as error:
        why = "it holds no certificate" if error.reason == "NO_CERTIFICATE_OR_CRL_FOUND" else "a certificate in it cannot be read"
        return (f"{bundle} is not a PEM file of CA certificates ({why}); give the proxy's CA certificate "
                "in PEM form, the text between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----")
    except OSError as error:
        return f"cannot read {bundle}: {error.strerror}"
    return None


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


def _env_path_problem(parts: list[str], data: Any, root: Any = Settings, done: tuple[str, ...] = ()) -> str | None:
    annotation: Any = root
    node: Any = data
    for index, part in enumerate(parts):
        annotation = _unwrap(annotation)
        where = ".".join([*done, *parts[:index]]) or "the top level"
        if root is Settings and index == 2 and parts[0] == "sources" and isinstance(node, dict):
            # Inside [sources.NAME]: the keys are those of that source's connector.
            return _env_path_problem(parts[2:], node, _source_model(node), tuple(parts[:2]))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None or _is_refusal(field):
                hint = " (separate keys with a double underscore, e.g. SLA_BRIDGE_HTTP__MAX_WAIT)" if "_" in part else ""
                return f"{part!r} is not a key of {where}{hint}"
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            value_type = _unwrap(typing.get_args(annotation)[1])
            if (isinstance(value_type, type) and issubclass(value_type, BaseModel)) or typing.get_origin(value_type) is dict:
                names = node if isinstance(node, dict) else {}
                if part not in names:
                    return (
                        f"there is no {where}.{part} in the file (names in environment variables are "
                        f"lower-cased and '-' stays '-'); known: {', '.join(sorted(names)) or 'none'}"
                    )
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) is list:
            return f"{where} is a list: set the whole list as JSON in {ENV_PREFIX}{where.replace('.', '__').upper()}, or edit the file"
        else:
            return f"{where} has no keys below it"
        node = node.get(part) if isinstance(node, dict) else None
    return None


def _source_model(table: dict[str, Any]) -> type[SourceConfig]:
    """The model of a ``[sources.NAME]`` table: its connector's, or the shared keys."""
    system = table.get("system")
    if isinstance(system, str):
        try:
            return registry.connector_class(system).config_model
        except ConnectorUnavailable:
            pass
    return _SharedKeys


class _SharedKeys(SourceConfig):
    """The keys every source has, to check a source whose system has no connector here."""

    model_config = SourceConfig.model_config | {"extra": "ignore"}


def _validate_sources(tables: typing.Mapping[str, dict[str, Any]]) -> tuple[dict[str, SourceConfig], list[str]]:
    """Each ``[sources.NAME]`` through its connector's model; problems name the key."""
    sources: dict[str, SourceConfig] = {}
    problems: list[str] = []
    for name, table in tables.items():
        system = table.get("system")
        where = ("sources", name)
        try:
            if not isinstance(system, str):
                raise ConnectorUnavailable("")
            cls = registry.connector_class(system, source=name)
        except ConnectorUnavailable:
            if "system" not in table:
                problems.append(f"sources.{name}.system: required key is missing")
            else:
                choices = registry.systems()
                listed = ", ".join(repr(c) for c in choices[:-1]) + (" or " if len(choices) > 1 else "") + repr(choices[-1]) if choices else "none"
                problems.append(f"sources.{name}.system: value {system!r} is not allowed; choose one of {listed} "
                                "(the systems with a connector installed)")
            try:
                _SharedKeys.model_validate({**table, "system": str(system)})
            except ValidationError as error:
                problems.extend(describe_errors(error, where, root=_SharedKeys))
            continue
        try:
            model = cls.config_model.model_validate(_decode_structured(table, cls.config_model))
        except ValidationError as error:
            problems.extend(describe_errors(error, where, root=cls.config_model))
            continue
        checked, found = _fit_writeback(name, model, cls)
        problems.extend(found)
        sources[name] = checked
    return sources, problems


def _decode_structured(table: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Values from the environment are text: where the model wants a table or a list, read the
    text as JSON (``SLA_BRIDGE_SOURCES__ZD__PRIORITIES='{"p": "p1"}'``), as pydantic-settings does
    for the sections it types itself; text that is not JSON is left for validation to report."""
    decoded = dict(table)
    for key, value in table.items():
        info = model.model_fields.get(key)
        if info is None:
            continue
        annotation = _unwrap(info.annotation)
        if isinstance(value, str) and typing.get_origin(annotation) in (dict, list) and value.lstrip()[:1] in ("{", "["):
            with contextlib.suppress(json.JSONDecodeError):
                decoded[key] = json.loads(value)
        elif isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            decoded[key] = _decode_structured(value, annotation)
    return decoded


def _with_environment(tables: dict[str, Any]) -> dict[str, Any]:
    """The file's source tables with the ``SLA_BRIDGE_SOURCES__NAME__KEY`` values laid over them
    (on the path where the whole file failed to validate, so the sources are checked as they run)."""
    merged: dict[str, Any] = {name: dict(table) if isinstance(table, dict) else table for name, table in tables.items()}
    prefix = f"{ENV_PREFIX}SOURCES__"
    for variable, value in os.environ.items():
        if not variable.upper().startswith(prefix):
            continue
        path = variable[len(prefix):].lower().split("__")
        node = merged.get(path[0])
        if len(path) < 2 or not isinstance(node, dict):
            continue
        for part in path[1:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
    return merged


def _one_writer_per_helpdesk(sources: typing.Mapping[str, SourceConfig]) -> list[str]:
    """Two sources writing back to one helpdesk would each post their own note per breach (the
    marker names the source) and set each other's tags back and forth."""
    writers: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for name, source in sources.items():
        if not source.writeback.enabled:
            continue
        parts = urlsplit(source.url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        origin = (source.system, f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}")
        first = writers.setdefault(origin, name)
        if first != name:
            problems.append(
                f"sources.{name}.writeback.enabled: sources.{first} writes back to the same helpdesk ({source.url}); "
                "each would post its own notes and set its own tags on the same tickets: enable write-back on one of them"
            )
    return problems


def _fit_writeback(name: str, source: SourceConfig, cls: type[Connector]) -> tuple[SourceConfig, list[str]]:
    """Write-back keys against what the helpdesk can write; unset ``tags``/``notes`` follow it."""
    can, wanted = cls.writes, source.writeback
    title = cls.title or cls.system
    where = f"sources.{name}.writeback"
    problems = []
    if wanted.status_field is not None and not can.status_field:
        problems.append(f"{where}.status_field: sla-bridge cannot set a field on {title} tickets; remove the key")
    if wanted.tags and not can.tags:
        problems.append(f"{where}.tags: {title} tickets have no {can.tag_word} sla-bridge can set; set tags = false or remove the key")
    if wanted.notes and not can.notes:
        problems.append(f"{where}.notes: sla-bridge cannot add internal notes on {title}; set notes = false or remove the key")
    resolved = wanted.model_copy(update={
        "tags": can.tags if wanted.tags is None else wanted.tags,
        "notes": can.notes if wanted.notes is None else wanted.notes,
    })
    return source.model_copy(update={"writeback": resolved}), problems


def _cross_check(settings: Settings) -> list[str]:
    """Rules that span sections: references between policies, calendars and sources."""
    known_calendars = set(settings.calendars) | set(BUILTIN_CALENDARS)
    problems = [f"calendars.{name}: {name!r} is built in; choose another name" for name in settings.calendars if name in BUILTIN_CALENDARS]
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
        availability = policy.credits and policy.credits.availability
        for match, label in ((policy.match, "match"), (availability and availability.match, "credits.availability.match")):
            if match and match.source:
                problems.extend(
                    f"{where}.{label}.source: no source named {source!r}{_suggest(source, settings.sources)}"
                    for source in match.source
                    if source not in settings.sources
                )
    return problems + _overlapping_terms(settings) + _reachable_targets(settings, datetime.now(timezone.utc))


def _overlapping_terms(settings: Settings) -> list[str]:
    """Two versions of the terms for the same tickets (the same ``match``) may not be in force at
    once: the first in the list would silently win where their dates overlap."""
    problems: list[str] = []
    policies = settings.policies
    for later in range(len(policies)):
        for earlier in range(later):
            a, b = policies[earlier], policies[later]
            if (a.effective_from is None and a.effective_to is None) or (b.effective_from is None and b.effective_to is None):
                continue  # undated policies are ordinary fallbacks, ordered by the list
            if a.match.model_dump() != b.match.model_dump() or (a.kind, a.team, a.third_party) != (b.kind, b.team, b.third_party):
                continue
            starts = max(a.effective_from or date.min, b.effective_from or date.min)
            ends = min(a.effective_to or date.max, b.effective_to or date.max)
            if starts < ends:
                problems.append(f"policies[{later}] ({b.name}).effective_from: its dates overlap those of policies[{earlier}] "
                                f"({a.name}), which matches the same tickets, from {starts} to {ends if ends != date.max else 'open end'}: "
                                "make one end (effective_to, exclusive) where the other begins")
    return problems


def _reachable_targets(settings: Settings, now: datetime) -> list[str]:
    """Each target must be reachable on its policy's calendar within ``TARGET_YEARS`` years.

    The calendar gives up on a due instant 50 years out (:mod:`bridge.engine.calendar`); a target
    its calendar's hours take longer than that to reach would fail every run that evaluates it.
    The yardstick is the calendar's working time over the coming year, times ``TARGET_YEARS``.
    """
    problems: list[str] = []
    yearly: dict[str, int] = {}
    for index, policy in enumerate(settings.policies):
        spec: Any = settings.calendars.get(policy.calendar) or BUILTIN_CALENDARS.get(policy.calendar)
        if spec is None:
            continue  # reported as an unknown calendar
        if policy.calendar not in yearly:
            try:
                calendar = Calendar.from_config(spec, name=policy.calendar)
                yearly[policy.calendar] = calendar.business_seconds(now, now + timedelta(days=365))
            except ValueError:
                continue  # the calendar's own problems are reported with its keys
        where = f"policies[{index}] ({policy.name})"
        per_year = yearly[policy.calendar]
        if per_year == 0:
            problems.append(f"{where}.calendar: calendar {policy.calendar!r} has no working hours in the coming year, "
                            "so no target on it can ever be reached; give it hours")
            continue
        for metric, targets in policy.targets.items():
            for priority, seconds in targets.items():
                if seconds > per_year * TARGET_YEARS:
                    problems.append(
                        f"{where}.targets.{metric}.{priority}: {format_duration(seconds)} of business time would take more "
                        f"than {TARGET_YEARS} years to reach on calendar {policy.calendar!r} "
                        f"({format_duration(per_year)} of working time a year); shorten the target"
                    )
    return problems


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    known = sorted(choices)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(known)}" if known else ""


# -- turning pydantic's errors into one line per problem ------------------------------------


def describe_errors(error: ValidationError, prefix: tuple[Any, ...] = (), *, root: Any = None) -> list[str]:
    """One line per problem, each starting with its key path (``prefix`` goes in front).

    ``root`` is the model that was validated (default: the whole file), for did-you-mean hints.
    """
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = prefix + tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            allowed = _allowed_keys(parent[len(prefix):], root) if root is not None else _allowed_keys(parent)
            hint = _suggest(key, allowed) if allowed else ""
            message = f"unknown key {key!r}{hint}"
            problems.append(f"{_path(loc)}: {message}{_env_note(loc)}")
            continue
        if kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            what = "unknown key" if loc and loc[-1] == "[key]" else "value"
            message = f"{what} {_shown(item['input'])} is not allowed; choose one of {expected}"
        elif kind == "string_pattern_mismatch":
            message = f"{_shown(item['input'])} {_PATTERN_HINTS.get(item['ctx']['pattern'], 'is not in the expected form')}"
        elif kind in {"value_error", "assertion_error"}:
            message = str(item["ctx"]["error"]) if "ctx" in item else item["msg"]
        elif kind in _NUMBER_KINDS and not _may_hold_secret(loc):
            message = _number_message(kind, item.get("input"), from_text=bool(_env_note(loc)))
        else:
            message = item["msg"][:1].lower() + item["msg"][1:]
            if "input" in item and not isinstance(item["input"], dict | list) and not _may_hold_secret(loc):
                message += f" (got {_shown(item['input'])})"
        problems.append(f"{_path(loc)}: {message}{_env_note(loc)}")
    return problems


_NUMBER_KINDS = {"float_type", "int_type", "finite_number", "float_parsing", "int_parsing", "int_from_float"}


def _number_message(kind: str, value: Any, *, from_text: bool = False) -> str:
    """A number that is not one: text that looks like a number, true/false, a fraction, inf/nan.

    ``from_text``: the value came from an environment variable, where there are no quotes to drop.
    """
    whole = kind.startswith("int")
    wanted = "a whole number" if whole else "a number"
    if isinstance(value, bool):
        return f"expected {wanted}, got {str(value).lower()}"
    if isinstance(value, str):
        number = r"[+-]?[0-9]+" if whole else r"[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"
        looks = not from_text and re.fullmatch(number, value.strip())
        return f"expected {wanted}, got the text {_shown(value)}" + (": write the number without quotes" if looks else "")
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    return f"expected {wanted}, got {_shown(value)}"


def _shown(value: Any) -> str:
    """A value as the message quotes it, cut short: a problem is one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_PATTERN_HINTS = {
    _NAME: "is not a valid name: use letters, digits, '-' and '_', starting with a letter or digit",
    r"^[A-Z]{3}$": "is not a currency: use the three-letter ISO 4217 code, e.g. \"EUR\"",
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


def _allowed_keys(loc: tuple[Any, ...], root: Any = None) -> list[str]:
    """The keys the section at ``loc`` accepts, found by walking the model's annotations."""
    annotation: Any = Settings if root is None else root
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

