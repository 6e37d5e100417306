"""sla-bridge: one SLA contract evaluated across Zendesk, Jira Service Management and ServiceNow.

The public surface is re-exported here; everything else is internal and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from bridge.config import Config, load_config  # noqa: E402
from bridge.errors import (  # noqa: E402
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
    RetriableSourceError,
    RetryLater,
    SkippableRecordError,
    SlaBridgeError,
    SourceError,
    StoreError,
)
from bridge.model import Page, Ticket, TicketEvent, WritebackPlan  # noqa: E402

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
    "RetriableSourceError",
    "RetryLater",
    "SkippableRecordError",
    "SlaBridgeError",
    "SourceError",
    "StoreError",
    "Ticket",
    "TicketEvent",
    "WritebackPlan",
    "__version__",
    "load_config",
]
