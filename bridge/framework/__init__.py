"""The connector framework: everything a connector author needs, and nothing vendor-specific.

A connector declares (:class:`Connector`): its config model (a :class:`SourceConfig`
subclass), its :class:`Stream` s with a paginator and a way to resume, its
:class:`WriteCapabilities`, and its sandbox. The core runs the loops, applies the incremental
rule and plans the write-back. docs/connectors.md is the whole contract.
"""

from __future__ import annotations

from bridge.framework.contract import (
    ClientCredentials,
    Connector,
    CredentialCheck,
    FieldInfo,
    HeaderAuth,
    ItemResult,
    Outcome,
    WritebackResult,
    WriteCapabilities,
    basic,
    bearer,
)
from bridge.framework.mapping import ValueMapper
from bridge.framework.paginators import (
    CursorPaginator,
    KeysetPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Paginator,
    Request,
    TokenPaginator,
    Turn,
    dig,
)
from bridge.framework.registry import connector_class, register, sandbox_class, sandbox_systems, systems
from bridge.framework.roster import AgentRoster, Span
from bridge.framework.sandbox import Sandbox, SandboxClass, WritebackSummary
from bridge.framework.source import AuthConfig, SourceConfig, WritebackConfig, spelled
from bridge.framework.streams import FromToken, FromWatermark, Record, Resume, Stream, epoch_seconds, paginate, read_stream
from bridge.framework.watermark import Watermark

__all__ = [
    "AgentRoster",
    "AuthConfig",
    "ClientCredentials",
    "Connector",
    "CredentialCheck",
    "CursorPaginator",
    "FieldInfo",
    "FromToken",
    "FromWatermark",
    "HeaderAuth",
    "ItemResult",
    "KeysetPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "Outcome",
    "Paginator",
    "Record",
    "Request",
    "Resume",
    "Sandbox",
    "SandboxClass",
    "SourceConfig",
    "Span",
    "Stream",
    "TokenPaginator",
    "Turn",
    "ValueMapper",
    "Watermark",
    "WriteCapabilities",
    "WritebackConfig",
    "WritebackResult",
    "WritebackSummary",
    "basic",
    "bearer",
    "connector_class",
    "dig",
    "epoch_seconds",
    "paginate",
    "read_stream",
    "register",
    "sandbox_class",
    "sandbox_systems",
    "spelled",
    "systems",
]
