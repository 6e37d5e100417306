"""What the CLI prints from tickets and vendors: inert text, one value per line, secrets masked.

A ticket subject, an organisation name, a field title or a vendor's error description can hold
terminal escapes (clear the screen, set the window title) and line breaks (a forged
"credentials OK" line in ``check --online``, a forged log line). Printed and logged, each such
character shows as the escape ``repr()`` would write.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from bridge.edges.logs import JsonFormatter, RedactingTextFormatter, printable
from bridge.edges.store import Store
from bridge.errors import BadRequest
from bridge.framework import registry
from bridge.framework.contract import CredentialCheck, FieldInfo
from bridge.model import Page, Ticket, TicketEvent
from tests.conftest import SOURCE, ZD_URL, MeConnector

TOKEN = "zd-secret-4f8a9c21e7"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
FORGED = "Source zd: credentials OK, authenticated as admin@acme.example"
# clear the screen, set the window title, then a line that looks like sla-bridge's own
HOSTILE = "\x1b[2J\x1b]0;all good\x07\n" + FORGED
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # any control but the newline ending a line

POLICY = """
[[policies]]
name = "gold"
[policies.targets]
first_response = { p1 = "30m" }
"""


def assert_inert(*outputs: str) -> None:
    for text in outputs:
        found = RAW_CONTROL.search(text)
        assert found is None, f"raw {found.group()!r} printed in {text!r}"
        assert not any(line.lstrip().startswith(FORGED) for line in text.splitlines()), f"a forged line in {text!r}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Printer on fire", "Printer on fire"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),  # ESC: every cursor move, colour and screen clear starts here
        ("x\x1b]0;title\x07y", "x\\x1b]0;title\\x07y"),  # OSC sets the window title, BEL ends it
        ("one\ntwo\r\tthree", "one\\ntwo\\r\\tthree"),
        ("c1\x9b2J and \x85", "c1\\x9b2J and \\x85"),  # a one-byte CSI, NEL
        ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("Müller 東京 🎉", "Müller 東京 🎉"),  # letters of every script stay as they are
    ],
)
def test_printable_shows_every_control_character_as_an_escape(text, shown):
    assert printable(text) == shown
    assert printable(None) == "None" and printable(42) == "42"


# -- status and status TICKET ------------------------------------------------------------------


@pytest.fixture
def hostile_store(write_config, run, tmp_path):
    """A store whose one ticket came from a hostile helpdesk, evaluated by the real CLI."""
    config = write_config('[store]\npath = "store.db"\n' + SOURCE + POLICY)
    ticket = Ticket(
        source="zd", system="zendesk", external_id="1", key="#1", title="Printer on fire" + HOSTILE,
        status="open", status_raw="open\x1b[8m", created_at=T0, updated_at=T0, priority="p1",
        customer="ACME\x1b]0;owned\x07\x1b[31m",
    )
    event = TicketEvent(ticket_id="zd:1", event_id="e1", kind="status", at=T0, from_value="new\x1b[2K\r", to_value="open")
    with Store.open(tmp_path / "store.db") as store:
        store.save_page("zd", Page(tickets=[ticket], events=[event], cursor="c1"))
    evaluated = run("--config", str(config), "evaluate", "--now", (T0 + timedelta(days=1)).isoformat())
    assert evaluated.exit_code == 0, evaluated.output
    return config


def test_status_shows_ticket_text_inert(hostile_store, run):
    result = run("--config", str(hostile_store), "status")
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout, result.stderr)
    [row] = [line for line in result.stdout.splitlines() if line.startswith("#1")]
    assert "ACME\\x1b]0;owned" in row and "first_response" in row and "breached" in row


def test_status_ticket_shows_its_title_on_one_inert_line(hostile_store, run):
    result = run("--config", str(hostile_store), "status", "zd:1")
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout, result.stderr)
    assert result.stdout.splitlines()[0] == "#1 (zd:1) Printer on fire\\x1b[2J\\x1b]0;all good\\x07\\n" + FORGED
    assert "  status open, priority p1, customer ACME\\x1b]0;owned\\x07\\x1b[31m" in result.stdout
    assert "status new\\x1b[2K\\r -> open" in result.stdout


def test_status_json_stays_valid_json_with_the_text_as_it_was(hostile_store, run):
    listing = run("--config", str(hostile_store), "status", "--json")
    timeline = run("--config", str(hostile_store), "status", "zd:1", "--json")
    assert_inert(listing.stdout, timeline.stdout)  # json.dumps writes \u001b: nothing raw reaches the terminal
    assert json.loads(listing.stdout)["clocks"][0]["customer"] == "ACME\x1b]0;owned\x07\x1b[31m"
    assert json.loads(timeline.stdout)["ticket"]["title"] == "Printer on fire" + HOSTILE


def test_status_masks_a_secret_the_helpdesk_echoed_into_a_ticket(write_config, run, tmp_path):
    config = write_config('[store]\npath = "store.db"\n' + SOURCE + POLICY)
    ticket = Ticket(source="zd", system="zendesk", external_id="1", key="#1", title=f"token is {TOKEN}", status="open",
                    status_raw="open", created_at=T0, updated_at=T0, priority="p1", customer=f"{TOKEN} Ltd")
    with Store.open(tmp_path / "store.db") as store:
        store.save_page("zd", Page(tickets=[ticket], events=[], cursor="c1"))
    assert run("--config", str(config), "evaluate", "--now", (T0 + timedelta(days=1)).isoformat()).exit_code == 0
    for args in (("status",), ("status", "--json"), ("status", "zd:1"), ("status", "zd:1", "--json")):
        result = run("--config", str(config), *args, env={"ZD_TOKEN": TOKEN})  # as cron runs it, the secret in reach
        assert result.exit_code == 0, result.output
        assert TOKEN[:8] not in result.stdout and "********" in result.stdout, args  # not even cut to a column
    without = run("--config", str(config), "status")  # a shell without the secret: status still works
    assert without.exit_code == 0, without.output


# -- fields --------------------------------------------------------------------------------------


class _HostileFields(MeConnector):
    def list_fields(self):
        return [
            FieldInfo(id="custom_field:7\x1b[2J", title="Team" + HOSTILE, type="tagger\r", options=["gold\x1b[31m", f"x{TOKEN}"]),
            FieldInfo(id="status", title="Status", type="status"),
        ]


def test_fields_shows_field_titles_and_options_inert_and_masked(write_config, run, monkeypatch):
    monkeypatch.setitem(registry._registry, "zendesk", _HostileFields)
    config = write_config(SOURCE)
    result = run("--config", str(config), "fields", "zd", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout)
    assert TOKEN not in result.stdout
    assert "custom_field:7\\x1b[2J  tagger\\r" in result.stdout
    assert "(gold\\x1b[31m, x********)" in result.stdout
    assert len(result.stdout.splitlines()) == 3  # the header and one line per field
    as_json = run("--config", str(config), "fields", "zd", "--json", env={"ZD_TOKEN": TOKEN})
    assert json.loads(as_json.stdout)[0]["title"] == "Team" + HOSTILE and TOKEN not in as_json.stdout


# -- check --online ------------------------------------------------------------------------------


@respx.mock
def test_check_online_cannot_be_made_to_print_a_forged_line(write_config, run, me_connector):
    respx.get(f"{ZD_URL}/api/v2/users/me.json").mock(
        return_value=httpx.Response(200, json={"user": {"email": "mallory@evil.example" + HOSTILE}}))
    result = run("--config", str(write_config(SOURCE)), "check", "--online", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout, result.stderr)
    [ok] = [line for line in result.stdout.splitlines() if "credentials OK" in line]
    assert ok.startswith("Source zd: credentials OK, authenticated as mallory@evil.example\\x1b[2J")


@respx.mock
def test_check_online_shows_a_vendor_error_inert_and_masked(write_config, run, me_connector):
    respx.get(f"{ZD_URL}/api/v2/users/me.json").mock(
        return_value=httpx.Response(401, json={"error": "Unauthorized\x1b[2J", "description": f"token {TOKEN}\r\n" + FORGED}))
    result = run("--config", str(write_config(SOURCE)), "check", "--online", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 3
    assert_inert(result.stdout, result.stderr)
    assert TOKEN not in result.stdout + result.stderr


class _ProblemSource(MeConnector):
    def check_credentials(self):
        return CredentialCheck(account="agent@acme.example", problems=(
            "sources.zd: the account is not an admin; the incremental exports need an admin (give it the admin role)",
            "sources.zd.writeback.status_field: the drop-down's options lack breached\x1b[2J, at_risk",
        ))


def test_check_online_lists_what_the_account_lacks_and_exits_3(write_config, run, monkeypatch, tmp_path):
    monkeypatch.setitem(registry._registry, "zendesk", _ProblemSource)
    config = write_config(SOURCE)
    result = run("--config", str(config), "check", "--online", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 3, result.output
    assert_inert(result.stdout)
    assert "credentials OK" not in result.stdout  # not while the first sync would fail
    assert ("Source zd: authenticated as agent@acme.example (0 request(s)), but 2 problem(s) for what the config asks of it:\n"
            "  - sources.zd: the account is not an admin; the incremental exports need an admin (give it the admin role)\n"
            "  - sources.zd.writeback.status_field: the drop-down's options lack breached\\x1b[2J, at_risk\n") in result.stdout
    assert result.stderr == "Error: 1 source(s) failed the credential check: zd\n"
    as_json = run("--config", str(config), "check", "--online", "--json", env={"ZD_TOKEN": TOKEN})
    online = json.loads(as_json.stdout)["online"]["zd"]
    assert (as_json.exit_code, online["ok"], len(online["problems"])) == (3, False, 2)
    with Store.open(tmp_path / "sla-bridge.db") as store:
        assert [(r["status"], r["exit_code"]) for r in store.runs()] == [("partial", 3), ("partial", 3)]


# -- the Error line and the log lines of a run ---------------------------------------------------


class _HostileFailure(MeConnector):
    def streams(self):
        raise BadRequest("GET /api/v2/incremental/tickets was refused (400 Bad Request). The vendor said: "
                         "bad\x1b[2J\x1b]0;pwned\x07\r\n" + FORGED + "\nError: none, all is well", source=self.name)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_vendor_error_is_one_inert_error_line_and_one_inert_log_line(write_config, run, monkeypatch, log_format):
    monkeypatch.setitem(registry._registry, "zendesk", _HostileFailure)
    config = write_config('[store]\npath = "store.db"\n' + SOURCE)
    result = run("--config", str(config), "-v", "--log-format", log_format, "sync", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 3
    assert_inert(result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "Error:" in line]
    assert len(errors) == 2  # the log line (-v) and the final Error line; neither forged
    assert errors[-1] == ("Error: source 'zd': GET /api/v2/incremental/tickets was refused (400 Bad Request). The vendor said: "
                          "bad\\x1b[2J\\x1b]0;pwned\\x07\\r\\n" + FORGED + "\\nError: none, all is well")
    if log_format == "json":
        [logged] = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{") and "refused" in line]
        assert "\\x1b[2J" in logged["message"]


def test_log_records_are_cleaned_of_control_characters_in_both_formats():
    record = logging.LogRecord("sla_bridge.pull", logging.WARNING, __file__, 1, "ticket %s: subject %r, org %s",
                               ("zd:1\n2026-01-01T00:00:00 ERROR forged", "x\x1b[2J", "ACME\x1b]0;t\x07"), None)
    text = RedactingTextFormatter().format(record)
    assert "\n" not in text and not RAW_CONTROL.search(text)
    assert text.endswith("ticket zd:1\\n2026-01-01T00:00:00 ERROR forged: subject 'x\\x1b[2J', org ACME\\x1b]0;t\\x07")
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "ticket zd:1\\n2026-01-01T00:00:00 ERROR forged: subject 'x\\x1b[2J', org ACME\\x1b]0;t\\x07"
    try:
        raise ValueError("bad \x1b[2J value")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    traced = RedactingTextFormatter().format(record)
    assert "Traceback" in traced and "ValueError: bad \\x1b[2J value" in traced and "\x1b" not in traced
