"""Secrets: read from an environment variable or a file named in config, and never shown again.

A resolved secret is a :class:`Secret`, whose ``str``/``repr`` are masked, and its value is
registered with :func:`redact`, which the log formatter, everything the CLI prints and the store's
run journal pass every outgoing text through. So even a vendor that echoes a token back in an
error body cannot put it in a log line, a ``--json`` document or the database. The forms a
secret takes on the way (JSON-escaped, URL-encoded in a query or a ``Location``, ``repr()`` in an
exception) are masked too.

A secret file is read only if it is a regular file of at most :data:`MAX_SECRET_FILE_BYTES`: a
FIFO would block the run for ever before it takes the lock (so cron runs pile up) and
``/dev/zero`` would be read until memory runs out.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MAX_SECRET_FILE_BYTES", "Secret", "forget_secrets", "read_secret", "redact"]

MASK = "********"
MAX_SECRET_FILE_BYTES = 64 * 1024  # a token, a password or a PEM key: far less than this
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
                _known.update(_forms(value))

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}, from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _forms(value: str) -> set[str]:
    """The ways ``value`` is written where it can reach output, each masked on its own.

    JSON (a secret with a quote, a backslash or a non-ASCII letter inside an encoded document),
    ``repr()`` (an exception or a log argument shown with ``%r``), and URL encoding: a vendor
    that echoes the request into a ``Location`` or a query string writes ``+``, ``/`` and ``=``
    of a Basic blob as ``%2B``, ``%2F``, ``%3D``, in either case of hex digits.
    """
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1]}
    forms.add(repr(value.encode("utf-8"))[2:-1])
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")):
        forms.update({encoded, _lower_hex(encoded)})
    return forms


def _lower_hex(encoded: str) -> str:
    parts = encoded.split("%")
    return parts[0] + "".join("%" + part[:2].lower() + part[2:] for part in parts[1:])


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
        _sendable(value, f"{key}_env: the environment variable {env}")
        return Secret(value, f"environment variable {env}")
    if file:
        path = Path(file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        mode, value = _read_secret_file(path, f"{key}_file")
        if not value:
            raise LookupError(f"{key}_file: the file {path} is empty")
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LookupError(
                f"{key}_file: {path} can be read by other users (mode {stat.filemode(mode)}); "
                f"run: chmod 600 {path}"
            )
        _sendable(value, f"{key}_file: the file {path}")
        return Secret(value, f"file {path}")
    raise LookupError(f"{key}: no secret configured")


def _sendable(value: str, where: str) -> None:
    """A secret goes into an HTTP header: one with a control character (a second line pasted in,
    a stray carriage return) or outside Latin-1 would only fail at the first request, mid-run."""
    bad = next((char for char in value if ord(char) < 0x20 or ord(char) == 0x7F or ord(char) > 0xFF), None)
    if bad is not None:
        raise LookupError(f"{where} holds a character a request header cannot carry (U+{ord(bad):04X}, at position "
                          f"{value.index(bad) + 1}): keep only the token, on one line")


def _read_secret_file(path: Path, key: str) -> tuple[int, str]:
    """The mode and stripped text of a small regular file; ``LookupError`` naming ``key`` otherwise.

    Opened non-blocking, so a FIFO with no writer returns at once instead of hanging the run,
    then checked on the open descriptor (no window for a swap between check and read), and read
    to the bound at most, so neither ``/dev/zero`` nor a file that grows can exhaust memory.
    """
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise LookupError(f"{key}: the file {path} does not exist") from None
    except OSError as error:
        raise LookupError(f"{key}: cannot read {path}: {error.strerror}") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise LookupError(
                f"{key}: {path} is not a regular file ({_file_kind(info.st_mode)}); "
                "point it at a file that holds only the secret"
            )
        if info.st_size > MAX_SECRET_FILE_BYTES:
            raise LookupError(
                f"{key}: {path} is {info.st_size:,} bytes, more than a secret file may be "
                f"({MAX_SECRET_FILE_BYTES // 1024} KiB); point it at a file that holds only the secret"
            )
        chunks: list[bytes] = []
        left = MAX_SECRET_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(handle, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        raise LookupError(f"{key}: cannot read {path}: {error.strerror}") from None
    finally:
        os.close(handle)
    data = b"".join(chunks)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise LookupError(f"{key}: {path} grew beyond {MAX_SECRET_FILE_BYTES // 1024} KiB while it was read")
    try:
        return info.st_mode, data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise LookupError(f"{key}: {path} is not UTF-8 text; write the secret as plain text") from None


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


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
