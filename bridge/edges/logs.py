"""Logging for cron: quiet by default, ``-v`` for progress, ``-vv`` for every request.

Both formats pass every record through :func:`bridge.edges.credentials.redact`, so a secret that
reached a message (a vendor echoing a token, an exception carrying a header) is masked on the
way out. ``--log-format json`` writes one object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from bridge.edges.credentials import redact

__all__ = ["configure_logging"]

_LEVELS = {0: logging.WARNING, 1: logging.INFO}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(document, default=str))


def configure_logging(verbosity: int, log_format: str = "text") -> None:
    """Send sla-bridge's and httpx's logs to stderr at the level ``-v`` asks for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else RedactingTextFormatter())
    level = _LEVELS.get(verbosity, logging.DEBUG)
    for name in ("sla_bridge", "httpx"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name == "sla_bridge" else max(level, logging.INFO if verbosity >= 2 else logging.WARNING))
        logger.propagate = False
