"""Answers that are too big, of the wrong shape, or that lead somewhere else.

Each case is listed in docs/operations.md with what the operator sees.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.adversarial.harness import assert_source_stopped, cli, write_config, zendesk
from tests.adversarial.server import (
    HostileZendesk,
    answer,
    chunked_growing,
    declared_length,
    redirect,
    redirect_loop,
    rewrite,
    truncated,
)

TICKETS = "/incremental/tickets"
EVENTS = "/incremental/ticket_events"


# -- too big -------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [declared_length(), chunked_growing()], ids=["declared-10GiB", "chunked-growing"])
def test_a_body_over_the_bound_stops_the_source_without_reading_it(tmp_path, behaviour):
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, behaviour)
    with server.serve() as url:
        config = write_config(tmp_path, box, url, max_body_mb=1)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "http.max_body_mb")


# -- the wrong shape -----------------------------------------------------------------------


def _bad_ids(page):
    tickets = [t for t in page["tickets"] if t.get("subject")]
    tickets[0]["id"] = {"$oid": "5f1e"}  # an object where Zendesk puts a number
    tickets[1]["created_at"] = 1_700_000_000  # a number where it puts a time


@pytest.mark.parametrize(
    ("route", "behaviour", "says"),
    [
        (TICKETS, answer(200, b"<html><body>Please sign in</body></html>", content_type="text/html"), "not JSON"),
        (TICKETS, answer(200, [{"id": 1}, {"id": 2}]), ""),
        (TICKETS, answer(200, b'{"tickets": [{"id": 1, "subject": "caf\xe9 \xff\xfe"}], "end_of_stream": true}'), ""),
        (TICKETS, truncated(), "not JSON"),
        (TICKETS, answer(200, {"tickets": [], "after_cursor": {"next": 2}, "end_of_stream": False}), ""),
        (TICKETS, answer(200, {"tickets": [], "after_cursor": "Y3Vyc29y", "end_of_stream": "no"}), ""),
        (EVENTS, answer(200, {"ticket_events": [], "end_time": "soon", "end_of_stream": False}), ""),
    ],
    ids=["html-200", "array-for-object", "non-utf8", "truncated", "cursor-an-object", "end-flag-a-string", "end-time-a-word"],
)
def test_a_body_of_the_wrong_shape_stops_the_source_and_the_next_run_recovers(tmp_path, route, behaviour, says):
    """The source stops with one Error line; nothing unreadable is kept, so the next run (server
    behaving again) ends 0."""
    box = zendesk()
    server = HostileZendesk(box).on(route, behaviour)
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        line = assert_source_stopped(result, config, says)
        assert "unexpected" not in line, f"reads like a bug, not like a server's fault: {line}"
        server.behave_normally()
        after = cli(config, "sync")
    assert after.returncode == 0, after.stderr


def test_records_with_mistyped_ids_are_quarantined_and_the_page_goes_on(tmp_path):
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, rewrite(_bad_ids))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
    assert result.returncode == 0, result.stderr
    assert "2 records quarantined" in result.stdout
    with sqlite3.connect(f"file:{tmp_path / 'store.db'}?mode=ro", uri=True) as db:
        assert db.execute("select count(*) from quarantine").fetchone()[0] == 2
        assert db.execute("select count(*) from tickets").fetchone()[0] == 38


def test_a_page_whose_records_are_not_a_list_is_quarantined_whole_and_read_again_next_run(tmp_path):
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, answer(200, {"tickets": {"1": {"id": 1}}, "end_of_stream": True}))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert result.returncode == 0, result.stderr
        assert "1 records quarantined" in result.stdout
        server.behave_normally()
        after = cli(config, "sync")
    assert after.returncode == 0, after.stderr
    assert "40 tickets" in after.stdout  # the cursor did not move past the page it could not read


# -- loops and other places ----------------------------------------------------------------


def test_a_paging_loop_stops_the_source(tmp_path):
    """The same continuation handed out again: stop rather than read the same page for ever."""
    box = zendesk()
    page = {"tickets": [], "after_cursor": "c2FtZQ==", "after_url": None, "end_of_stream": False}
    server = HostileZendesk(box).on(TICKETS, answer(200, page))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "stopped rather than loop")
    assert server.requests_to(TICKETS) == 2


def test_a_redirect_loop_is_not_followed(tmp_path):
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, redirect_loop())
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "redirected", "sources.zd.url")
    assert server.requests_to(TICKETS) == 1


def test_a_redirect_to_another_host_is_not_followed(tmp_path):
    """The credentials never travel to the host a redirect names."""
    box = zendesk()
    elsewhere = HostileZendesk(zendesk(1))
    with elsewhere.serve(host="127.0.0.2") as other_url:
        server = HostileZendesk(box).on(TICKETS, redirect(lambda exchange: other_url + exchange.target, status=301))
        with server.serve() as url:
            config = write_config(tmp_path, box, url)
            result = cli(config, "sync")
            assert_source_stopped(result, config, "redirected", "sources.zd.url")
    assert elsewhere.seen == []


def test_a_long_retry_after_stops_the_source_until_then(tmp_path):
    box = zendesk()
    busy = answer(429, {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"},
                  headers={"Retry-After": "600"})  # past http.max_wait, inside http.max_run
    server = HostileZendesk(box).on(TICKETS, busy)
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "http.max_wait", "retry after")
    assert server.requests_to(TICKETS) == 1  # no sleeping through the cron slot
