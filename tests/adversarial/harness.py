"""Running the real CLI against the hostile server, and what an operator checks afterwards.

Every case runs ``python -m bridge.cli`` in a subprocess, as cron would, with bounds small enough
that a misbehaving server costs seconds, and under a memory limit so that a missing body bound
fails the test instead of the machine. The subprocess timeout is a hang detector, not a
performance assertion: a case that needs it has found a hang.
"""

from __future__ import annotations

import base64
import os
import re
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from connectors.zendesk.sandbox import ZendeskSandbox

# A token with the characters URL-encoding and repr() change, so every echoed form differs from
# the plain one (Zendesk's own tokens are letters and digits, where those forms coincide).
TOKEN = "zdT0k/en+9=a'b\"c\\d"
EMAIL = "sla-bot@example.com"
BLOB = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
SECRET_FORMS = {
    "token": TOKEN,
    "token, URL-encoded": quote(TOKEN, safe=""),
    "token, URL-encoded keeping /": quote(TOKEN),
    "token, form-encoded": quote_plus(TOKEN),
    "token, repr()": repr(TOKEN)[1:-1],
    "Basic blob": BLOB,
    "Basic blob, URL-encoded": quote(BLOB, safe=""),
}
# C0 controls but tab and newline, DEL, C1: what can move a cursor, clear a screen or set a title.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HANG = 60.0  # seconds: far more than any case needs with the bounds below
MEMORY = 3 * 2**30  # address space per CLI process: a body read without a bound ends in MemoryError, not swap

BASE_HTTP = {"timeout": '"2s"', "max_attempts": "2", "max_wait": '"2s"'}
POLICIES = """
[[policies]]
name = "standard"
targets.first_response = { p1 = "1h", p2 = "4h", p3 = "8h", p4 = "24h" }
targets.resolution = { p1 = "8h", p2 = "24h", p3 = "72h", p4 = "120h" }
"""


def zendesk(tickets: int = 40) -> ZendeskSandbox:
    """A sandbox on the real clock (so no ``--now`` is needed), with rate limits out of the way."""
    return ZendeskSandbox(tickets, seed=11, email=EMAIL, token=TOKEN, export_limit_per_minute=100_000,
                          account_limit_per_minute=100_000)


def write_config(folder: Path, box: ZendeskSandbox, url: str, *, token_file: str | None = None, **http: Any) -> Path:
    """``sla-bridge.toml`` with one source ``zd`` at ``url``; ``http`` adds or overrides ``[http]`` keys (TOML values)."""
    source = box.source_config(url, "ZD_TOKEN")
    keys = {**BASE_HTTP, **{key: str(value) for key, value in http.items()}}
    secret = f'token_file = "{token_file}"' if token_file else 'token_env = "ZD_TOKEN"'
    text = (
        '[store]\npath = "store.db"\n\n[http]\n' + "".join(f"{key} = {value}\n" for key, value in keys.items()) + POLICIES
        + f'\n[sources.zd]\nsystem = "zendesk"\nurl = "{url}"\nstart = "{source["start"]}"\n'
        f'auth = {{ email = "{EMAIL}", {secret} }}\n'
        f'fields = {{ customer = "{source["fields"]["customer"]}", service = "{source["fields"]["service"]}" }}\n'
        f'writeback = {{ enabled = true, status_field = "{source["writeback"]["status_field"]}" }}\n'
    )
    path = folder / "sla-bridge.toml"
    path.write_text(text)
    return path


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", "--config", str(config), *args]


def environment() -> dict[str, str]:
    return {**os.environ, "ZD_TOKEN": TOKEN}


def cli(config: Path, *args: str, timeout: float = HANG) -> subprocess.CompletedProcess[str]:
    """The CLI to its end; a run still going after ``timeout`` seconds fails the test as a hang."""
    try:
        return subprocess.run(command(config, *args), capture_output=True, text=True, errors="backslashreplace",
                              env=environment(), timeout=timeout, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stderr or b"")[-2000:]
        pytest.fail(f"sla-bridge {' '.join(args)} was still running after {timeout:.0f}s (killed): a hang. "
                    f"Last stderr: {output!r}")


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI in the background (for signals)."""
    return subprocess.Popen(command(config, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="backslashreplace", env=environment(), preexec_fn=_limit_memory)


def finish(process: subprocess.Popen[str], timeout: float = HANG) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"sla-bridge was still running {timeout:.0f}s after it was signalled (killed): a hang")
    return process.returncode, out, err


# -- what an operator checks --------------------------------------------------------------


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def last_run(folder: Path, command_name: str = "sync") -> tuple[str, int | None]:
    """(status, exit_code) of the newest run of ``command_name`` in the store, read-only."""
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as db:
        row = db.execute("select status, exit_code from runs where command like ? order by id desc limit 1",
                         (f"{command_name}%",)).fetchone()
    assert row is not None, f"no {command_name} run recorded in the store"
    return row[0], row[1]


def assert_no_secret(folder: Path, *outputs: str) -> None:
    """No form of the token or the Basic blob in what was printed, nor in the store's files."""
    stored = b"".join(path.read_bytes() for path in sorted(folder.glob("store.db*")) if path.is_file())
    for name, form in SECRET_FORMS.items():
        for index, text in enumerate(outputs):
            assert form not in text, f"the {name} was printed (output {index}): {_around(text, form)}"
        assert form.encode() not in stored, f"the {name} is in the store's files"


def _around(text: str, part: str) -> str:
    at = text.find(part)
    return repr(text[max(0, at - 120) : at + len(part) + 40])


def assert_clean_terminal(*outputs: str) -> None:
    for text in outputs:
        found = CONTROL.search(text)
        assert found is None, f"a raw control character {found.group()!r} reached the terminal: {_around(text, found.group())}"


def assert_lock_released(config: Path) -> None:
    """A run right after is not turned away as if the lock were still held."""
    after = cli(config, "evaluate")
    assert after.returncode != 75, f"the lock is still held after the run ended: {after.stderr}"


def assert_source_stopped(result: subprocess.CompletedProcess[str], config: Path, *naming: str, code: int = 3) -> str:
    """What every misbehaving-server case must look like: the run ends with ``code`` and one clear
    ``Error:`` line naming the source (and ``naming``), no traceback, no secret, no control
    character, and the lock free for the next run. Returns the Error line."""
    both = result.stdout + result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}:\n{result.stderr[-3000:]}"
    errors = error_lines(result)
    assert len(errors) == 1, f"expected one Error line, got {errors}"
    assert "source 'zd'" in errors[0], errors[0]
    for part in naming:
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"
    assert "Traceback" not in both
    assert_no_secret(config.parent, result.stdout, result.stderr)
    assert_clean_terminal(result.stdout, result.stderr)
    assert_lock_released(config)
    return errors[0]
