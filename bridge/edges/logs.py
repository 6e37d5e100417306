"""Logging for cron: quiet by default, ``-v`` for progress, ``-vv`` for every request.

Both formats pass every record through :func:`bridge.edges.credentials.redact`, so a secret that
reached a message (a vendor echoing a token, an exception carrying a header) is masked on the
way out, and through :func:`printable`, so text from a ticket or a vendor's error body cannot
move the cursor, retitle the terminal or start a forged log line. ``--log-format json`` writes
one object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

from bridge.edges.credentials import redact

__all__ = ["configure_logging", "printable", "printable_lines"]

_LEVELS = {0: logging.WARNING, 1: logging.INFO}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

# C0 controls and DEL (ESC starts every terminal escape sequence; CR, LF, VT, FF, NEL end a line),
# C1 controls (U+009B is a one-character CSI, U+009D an OSC), the Unicode line and paragraph
# separators, and the bidirectional overrides and isolates that reorder what a reader sees.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: object) -> str:
    """``text`` (``str()`` of it) safe to put on one line of a terminal or a log.

    Every control character becomes the escape ``repr()`` would write (``\\x1b``, ``\\n``,
    ``\\t``, ``\\u2028``), so it is visible and cannot act: use it for every value from a ticket,
    a vendor or a file that goes into printed output or a log record.
    """
    text = text if isinstance(text, str) else str(text)
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def printable_lines(text: str) -> str:
    """Like :func:`printable`, but keeps the line breaks of text that is meant to span lines
    (a traceback, a list of configuration problems)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _clean(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` whose message is one printable line and whose traceback is printable."""
    clean = logging.makeLogRecord(vars(record))
    clean.msg, clean.args = printable(record.getMessage()), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    clean.exc_info, clean.exc_text = None, printable_lines(record.exc_text) if record.exc_text else None
    clean.stack_info = printable_lines(record.stack_info) if record.stack_info else None
    return clean


class RedactingTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(_clean(record)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        clean = _clean(record)
        document = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean.getMessage(),
        }
        document.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if clean.exc_text:
            document["exception"] = clean.exc_text
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
