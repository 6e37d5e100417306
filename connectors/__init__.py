"""Connectors, one package per helpdesk, found by their ``system`` name.

The core never imports a connector by name: it asks :func:`connector_class` for the class that
registered under the ``system`` a source's config names. Built-in connectors are imported on
first use, so a run that only needs Zendesk never loads the others.
"""

from __future__ import annotations

import importlib

import httpx

from bridge.config import Config
from bridge.errors import ConnectorUnavailable
from bridge.http import RetryPolicy, SourceClient, build_client
from connectors.base import Connector, CredentialCheck, FieldInfo, WritebackResult

__all__ = [
    "Connector",
    "CredentialCheck",
    "FieldInfo",
    "WritebackResult",
    "connector_class",
    "open_connector",
    "register",
    "registered_systems",
    "sandbox_class",
    "sandbox_systems",
]

_BUILTIN = {"zendesk": "connectors.zendesk", "jira": "connectors.jira", "servicenow": "connectors.servicenow"}
_registry: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make ``cls`` the connector for ``cls.system``."""
    _registry[cls.system] = cls
    return cls


def registered_systems() -> list[str]:
    return sorted(_registry)


def connector_class(system: str, *, source: str | None = None) -> type[Connector]:
    if system not in _registry and system in _BUILTIN:
        module = _BUILTIN[system]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    if system not in _registry:
        raise ConnectorUnavailable(
            f"this build of sla-bridge has no connector for system {system!r} yet "
            f"(available: {', '.join(registered_systems()) or 'none'})",
            source=source,
        )
    return _registry[system]


def sandbox_class(system: str) -> type:
    """The local emulator a built-in connector ships (``connectors.<system>.sandbox.SANDBOX``)."""
    connector_class(system)
    module = importlib.import_module(f"{_BUILTIN[system]}.sandbox")
    return module.SANDBOX  # type: ignore[no-any-return]


def sandbox_systems() -> list[str]:
    """Built-in systems whose connector has landed, each with its sandbox."""
    found = []
    for system in _BUILTIN:
        try:
            connector_class(system)
        except ConnectorUnavailable:
            continue
        found.append(system)
    return found


def open_connector(
    config: Config,
    name: str,
    *,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
) -> Connector:
    """The connector for source ``name``, with its authenticated, retrying HTTP client."""
    source = config.sources[name]
    cls = connector_class(source.system, source=name)
    secret = config.source_secret(name)
    client = build_client(
        source.url, http=config.http, auth=cls.auth(source, secret), transport=transport, ca_bundle=config.ca_bundle_path()
    )
    return cls(name, source, SourceClient(name, client, policy or RetryPolicy.from_config(config.http)))
