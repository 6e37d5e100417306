"""SIGTERM and SIGHUP stop a run as Ctrl-C does: one line, exit 128 + the signal, the run recorded.

The real CLI runs in a subprocess against a loopback server that accepts the connection and
never answers, so the signal arrives while a request is waiting, as it does in a cron job
that a service manager stops.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bridge.edges.store import Store
from tests.conftest import SOURCE

TOKEN = "zd-secret-4f8a9c21e7"


@contextmanager
def silent_server() -> Iterator[tuple[str, threading.Event]]:
    """A loopback HTTP server that takes every connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", connected
    finally:
        listener.close()
        for connection in held:
            connection.close()


def config_for(tmp_path, url: str):
    path = tmp_path / "sla-bridge.toml"
    path.write_text(f"""
[store]
path = "store.db"

[http]
timeout = "120s"

[sources.zd]
system = "zendesk"
url = "{url}"
auth = {{ email = "bot@acme.example", token_env = "ZD_TOKEN" }}
""")
    return path


def stop_while_waiting(config, command: list[str], signum: int, connected: threading.Event) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen([sys.executable, "-m", "bridge.cli", "--config", str(config), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"ZD_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"})
    try:
        assert connected.wait(60), "sla-bridge never reached the server"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


SIGNALS = [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP"), (signal.SIGINT, 130, "Ctrl-C (SIGINT)")]


@pytest.mark.parametrize(("signum", "code", "named"), SIGNALS, ids=[name for _, _, name in SIGNALS])
@pytest.mark.parametrize("command", [["check", "--online"], ["sync"]], ids=["check-online", "sync"])
def test_a_signal_stops_the_run_with_one_line_and_exit_128_plus_the_signal(tmp_path, signum, code, named, command):
    with silent_server() as (url, connected):
        config = config_for(tmp_path, url)
        result = stop_while_waiting(config, command, signum, connected)
    assert result.returncode == code, result.stderr
    assert result.stderr.splitlines()[-1] == f"Stopped by {named}; the next run resumes where this one left off"
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr
    if command == ["check", "--online"]:  # its run is recorded by the CLI itself
        with Store.open(tmp_path / "store.db") as store:
            [recorded] = store.runs()
        assert recorded["exit_code"] == code and recorded["status"] != "running"
    after = subprocess.run([sys.executable, "-m", "bridge.cli", "--config", str(config), "evaluate"],
                           capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr  # the lock was released on the way out


def test_the_handlers_are_put_back_when_the_command_ends(write_config, run):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    assert run("--config", str(write_config(SOURCE)), "check", env={"ZD_TOKEN": TOKEN}).exit_code == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
