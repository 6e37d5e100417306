"""Secrets: read from an environment variable or a file named in config, and never shown again.

A resolved secret is a :class:`Secret`, whose ``str``/``repr`` are masked, and its value is
registered with :func:`redact`, which the log formatter, the CLI's error printer and the store's
run journal pass every outgoing text through. So even a vendor that echoes a token back in an
error body cannot put it in a log line, a ``--json`` document or the database.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

__all__ = ["MASK", "Secret", "forget_secrets", "read_secret", "redact"]

MASK = "********"
_MIN_REDACT_LENGTH = 4  # a 1-3 character "secret" would mask half of every log line

_known: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A secret value that does not print itself. Call :meth:`reveal` at the point of use."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin  # e.g. "environment variable ZENDESK_TOKEN": safe to show
        if len(value) >= _MIN_REDACT_LENGTH:
            with _lock:
                # Also the forms JSON writes, so a secret with a quote, a backslash or a non-ASCII
                # letter is still masked inside an already-encoded document.
                _known.update({value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]})

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}, from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(*, env: str | None, file: str | Path | None, key: str, base_dir: Path | None = None) -> Secret:
    """Read the secret a config key points at; ``LookupError`` names the key and what to do.

    ``key`` is the config key path without the ``_env``/``_file`` suffix (``sources.zd.auth.token``).
    A relative file path is taken from ``base_dir`` (the config file's folder).
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise LookupError(f"{key}_env: the environment variable {env} is not set; export it before running")
        value = value.strip()
        if not value:
            raise LookupError(f"{key}_env: the environment variable {env} is empty")
        return Secret(value, f"environment variable {env}")
    if file:
        path = Path(file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            mode = path.stat().st_mode
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise LookupError(f"{key}_file: the file {path} does not exist") from None
        except OSError as error:
            raise LookupError(f"{key}_file: cannot read {path}: {error.strerror}") from None
        if not value:
            raise LookupError(f"{key}_file: the file {path} is empty")
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LookupError(
                f"{key}_file: {path} can be read by other users (mode {stat.filemode(mode)}); "
                f"run: chmod 600 {path}"
            )
        return Secret(value, f"file {path}")
    raise LookupError(f"{key}: no secret configured")


def redact(text: str) -> str:
    """``text`` with every secret resolved in this process replaced by a mask."""
    if not _known or not text:
        return text
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def forget_secrets() -> None:
    """Drop every registered secret (tests use it to keep cases apart)."""
    with _lock:
        _known.clear()
