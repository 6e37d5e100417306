"""The connectors this installation knows, by ``system`` name: one registry for the whole core.

Connectors register through the ``sla_bridge.connectors`` entry-point group (the built-in ones
in sla-bridge's own ``pyproject.toml``; a connector in another package declares one the same
way), or with :func:`register`. A connector is imported only when a config names its system, so
a run that only needs Zendesk never loads the others. The config loader, the pipeline and the
CLI all ask here; the core never imports a connector by name.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from bridge.errors import ConnectorUnavailable
from bridge.framework.contract import Connector
from bridge.framework.sandbox import SandboxClass

__all__ = ["ENTRY_POINT_GROUP", "connector_class", "register", "sandbox_class", "sandbox_systems", "systems"]

ENTRY_POINT_GROUP = "sla_bridge.connectors"
_registry: dict[str, type[Connector]] = {}
C = TypeVar("C", bound=type[Connector])


def register(cls: C) -> C:
    """Make ``cls`` the connector for ``cls.system`` (a class decorator)."""
    _registry[cls.system] = cls
    return cls


def _declared() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def systems() -> list[str]:
    """Every system with a connector: registered, or declared by an installed package."""
    return sorted(set(_registry) | set(_declared()))


def connector_class(system: str, *, source: str | None = None) -> type[Connector]:
    """The connector for ``system``; :class:`ConnectorUnavailable` says which ones there are."""
    if system in _registry:
        return _registry[system]
    point = _declared().get(system)
    if point is None:
        raise ConnectorUnavailable(
            f"this installation of sla-bridge has no connector for system {system!r} "
            f"(available: {', '.join(systems()) or 'none'})",
            source=source,
        )
    try:
        cls = point.load()
    except Exception as error:  # noqa: BLE001 - a broken plug-in must not take the others down
        raise ConnectorUnavailable(f"the connector for {system!r} ({point.value}) cannot be loaded: "
                                   f"{type(error).__name__}: {error}", source=source) from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)) or cls.system != system:
        raise ConnectorUnavailable(f"the entry point {system!r} ({point.value}) is not a connector for {system!r}",
                                   source=source)
    return register(cls)


def sandbox_class(system: str) -> SandboxClass:
    """The local emulator a connector ships (its ``sandbox = "module:Class"``)."""
    spec = connector_class(system).sandbox
    if spec is None:
        raise ConnectorUnavailable(f"the {system} connector has no sandbox")
    module, _, name = spec.partition(":")
    found: SandboxClass = getattr(importlib.import_module(module), name)
    return found


def sandbox_systems() -> list[str]:
    """Systems whose connector can be loaded and ships a sandbox."""
    found = []
    for system in systems():
        try:
            if connector_class(system).sandbox:
                found.append(system)
        except ConnectorUnavailable:
            continue
    return found
