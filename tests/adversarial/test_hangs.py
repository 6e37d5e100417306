"""Never a hung cron job: servers that trickle or page forever, signals, secrets that never end.

Each case is listed in docs/operations.md with what the operator sees.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.adversarial.harness import (
    HANG,
    assert_lock_released,
    assert_source_stopped,
    cli,
    finish,
    last_run,
    start,
    write_config,
    zendesk,
)
from tests.adversarial.server import HostileZendesk, endless, trickle

TICKETS = "/incremental/tickets"
EVENTS = "/incremental/ticket_events"


@pytest.mark.parametrize("part", ["status", "headers", "body"])
def test_a_trickling_answer_is_cut_at_the_request_deadline(tmp_path, part):
    """One byte every half second never trips the 2 s read timeout; the 3 s deadline must end it."""
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, trickle(part, every=0.5))
    with server.serve() as url:
        config = write_config(tmp_path, box, url, deadline='"3s"')
        result = cli(config, "sync")
        assert_source_stopped(result, config, "http.deadline")
    assert last_run(tmp_path) == ("partial", 3)  # finished and recorded, not left "running"


def test_the_run_bound_stops_a_source_that_is_slow_on_every_page_and_the_next_run_resumes(tmp_path):
    """Each page answers in 1 s (inside every per-request bound), and there is always another.

    The shortest run bound the config accepts is a minute, so this case takes one."""
    box = zendesk()
    server = HostileZendesk(box).on(EVENTS, endless(delay=1.0))
    with server.serve() as url:
        config = write_config(tmp_path, box, url, deadline='"3s"', max_run='"1m"')
        result = cli(config, "sync", timeout=60 + HANG)
        assert_source_stopped(result, config, "http.max_run")
        assert last_run(tmp_path) == ("partial", 3)
        server.behave_normally()
        after = cli(config, "sync")
    assert after.returncode == 0, after.stderr  # resumed from the cursor the bounded run saved


def test_a_stream_that_pages_forever_stops_at_max_pages(tmp_path):
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, endless(delay=0.0))
    with server.serve() as url:
        config = write_config(tmp_path, box, url, max_pages=5)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "http.max_pages")
    assert server.requests_to(TICKETS) <= 6


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_request_ends_the_run_like_ctrl_c_and_records_it(tmp_path, signum, code):
    """systemd's stop and a closed terminal: a clean end with 128 + the signal, the run recorded, the lock free."""
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, trickle("status", every=0.5))  # mid-request for as long as it takes
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        process = start(config, "sync")
        assert server.wait_for(TICKETS), "the run never reached the server"
        time.sleep(0.5)
        process.send_signal(signum)
        returncode, _, err = finish(process)
    assert returncode == code, f"exit {returncode}, expected {code}: {err[-2000:]}"
    assert "Traceback" not in err
    assert signal.Signals(signum).name in err, err  # says what stopped it
    status, exit_code = last_run(tmp_path)
    assert status != "running" and exit_code == code
    assert_lock_released(config)


def test_a_run_killed_outright_is_marked_killed_by_the_next_one(tmp_path):
    """SIGKILL cannot be caught: the next run finds the row its dead process left and says so."""
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, trickle("status", every=0.5))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        process = start(config, "sync")
        assert server.wait_for(TICKETS), "the run never reached the server"
        process.send_signal(signal.SIGKILL)
        process.communicate()
        server.behave_normally()
        after = cli(config, "sync")
    assert after.returncode == 0, after.stderr
    with sqlite3.connect(f"file:{tmp_path / 'store.db'}?mode=ro", uri=True) as db:
        statuses = [row[0] for row in db.execute("select status from runs where command = 'sync' order by id")]
    assert statuses == ["killed", "ok"]


def test_a_token_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    """Reading a FIFO blocks until someone writes to it: before the lock, so runs would pile up."""
    box = zendesk()
    fifo = tmp_path / "token"
    os.mkfifo(fifo, 0o600)
    config = write_config(tmp_path, box, "http://127.0.0.1:9", token_file=str(fifo))
    result = cli(config, "sync", timeout=30)
    assert result.returncode == 2, result.stderr
    assert "sources.zd.auth.token_file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_file_that_never_ends_is_refused(tmp_path):
    """/dev/zero reads until memory runs out: the file's type (and size) must be checked first."""
    box = zendesk()
    config = write_config(tmp_path, box, "http://127.0.0.1:9", token_file="/dev/zero")
    result = cli(config, "sync", timeout=30)
    assert result.returncode == 2, result.stderr
    assert "sources.zd.auth.token_file" in result.stderr
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr
