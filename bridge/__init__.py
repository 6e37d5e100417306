"""sla-bridge: one SLA contract evaluated across Zendesk, Jira Service Management and ServiceNow.

The public surface is re-exported here; everything else is internal and may change.
"""

from __future__ import annotations

from bridge._version import __version__
from bridge.config import Config, load_config
from bridge.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    ConnectorUnavailable,
    CursorRefused,
    FatalSourceError,
    LockHeld,
    NotFound,
    OffOriginLink,
    OutcomeUnknown,
    PageBoundReached,
    PaginationError,
    PermissionDenied,
    ResponseTooLarge,
    RetriableSourceError,
    RetryLater,
    RunBoundReached,
    SkippableRecordError,
    SlaBridgeError,
    SourceError,
    StoreError,
    StoreReplaced,
    Terminated,
)
from bridge.model import Page, Ticket, TicketEvent, WritebackPlan

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "Config",
    "ConfigError",
    "ConnectorUnavailable",
    "CursorRefused",
    "FatalSourceError",
    "LockHeld",
    "NotFound",
    "OffOriginLink",
    "OutcomeUnknown",
    "Page",
    "PageBoundReached",
    "PaginationError",
    "PermissionDenied",
    "ResponseTooLarge",
    "RetriableSourceError",
    "RetryLater",
    "RunBoundReached",
    "SkippableRecordError",
    "SlaBridgeError",
    "SourceError",
    "StoreError",
    "StoreReplaced",
    "Terminated",
    "Ticket",
    "TicketEvent",
    "WritebackPlan",
    "__version__",
    "load_config",
]
