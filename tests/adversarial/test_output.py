"""What reaches the operator's terminal and the store: never a secret, never a raw control character.

Each case is listed in docs/operations.md with what the operator sees.
"""

from __future__ import annotations

import pytest

from tests.adversarial.harness import (
    BLOB,
    SECRET_FORMS,
    assert_clean_terminal,
    assert_no_secret,
    assert_source_stopped,
    cli,
    write_config,
    zendesk,
)
from tests.adversarial.server import HostileZendesk, answer, echo_secrets, rewrite

TICKETS = "/incremental/tickets"
FORGED = "credentials OK, authenticated as admin"
# Clear the screen, set the window title, then a new line that looks like sla-bridge's own.
HOSTILE = "\x1b[2J\x1b]0;sla-bridge: all good\x07\n" + FORGED


@pytest.mark.parametrize("into", ["location", "body"])
def test_a_server_that_echoes_the_credentials_never_gets_them_printed_or_stored(tmp_path, into):
    """The Basic blob and the token, raw, URL-encoded and as repr(), in a redirect or an error body."""
    box = zendesk()
    server = HostileZendesk(box).on(TICKETS, echo_secrets(into))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "redirected" if into == "location" else "400")
        verbose = cli(config, "-vv", "sync")  # the retry and request log lines too
        status = cli(config, "status", "--json")
    assert_no_secret(tmp_path, verbose.stdout, verbose.stderr, status.stdout, status.stderr)


ECHOED = " / ".join(SECRET_FORMS.values())  # every form of the credentials, in one piece of vendor text


def _echo_into_ticket(chosen):
    def change(page):
        ticket = next(t for t in page["tickets"] if t.get("subject") and t["status"] not in ("closed", "deleted"))
        ticket["subject"] = ticket["raw_subject"] = f"Login fails for Basic {BLOB}: {ECHOED}"
        chosen.append(ticket["id"])
        for org in page.get("organizations") or []:
            org["name"] = f"{org['name']} {ECHOED}"

    return change


def test_credentials_echoed_into_ticket_data_are_neither_printed_nor_stored(tmp_path):
    """A vendor (or an agent pasting a support transcript) puts the token in a subject, an
    organisation name, a field title, the account name: status, fields and check print it masked,
    and the tickets table stores it masked."""
    box = zendesk()
    chosen: list[int] = []
    server = (HostileZendesk(box)
              .on(TICKETS, rewrite(_echo_into_ticket(chosen)))
              .on("/ticket_fields.json", rewrite(lambda data: data["ticket_fields"][0].update(title=f"Subject {ECHOED}")))
              .on("/users/me", rewrite(lambda data: data["user"].update(name=f"Bot {ECHOED}"))))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        runs = [cli(config, "-v", "sync"), cli(config, "fields", "zd"), cli(config, "fields", "zd", "--json"),
                cli(config, "check", "--online"), cli(config, "check", "--online", "--json")]
    runs += [cli(config, "status"), cli(config, "status", "--json"), cli(config, "status", f"zd:{chosen[0]}"),
             cli(config, "status", f"zd:{chosen[0]}", "--json")]
    for result in runs:
        assert result.returncode == 0, f"{result.args[4:]}: {result.stderr}"
    assert_no_secret(tmp_path, *(text for result in runs for text in (result.stdout, result.stderr)))


def _hostile_texts(chosen):
    def change(page):
        ticket = next(t for t in page["tickets"] if t.get("subject") and t["status"] not in ("closed", "deleted"))
        ticket["subject"] = ticket["raw_subject"] = "Printer on fire" + HOSTILE
        chosen.append(ticket["id"])
        for org in page.get("organizations") or []:
            org["name"] = org["name"] + "\x1b]0;owned\x07\x1b[31m"

    return change


def test_ticket_text_with_terminal_escapes_is_shown_inert(tmp_path):
    """A subject that clears the screen, sets the title and forges a line; an organisation name and a field title with escapes."""
    box = zendesk()
    chosen: list[int] = []
    server = (HostileZendesk(box)
              .on(TICKETS, rewrite(_hostile_texts(chosen)))
              .on("/ticket_fields.json", rewrite(lambda data: data["ticket_fields"][0].update(title="Subject" + HOSTILE))))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        sync = cli(config, "-v", "sync")
        fields = cli(config, "fields", "zd")
    assert sync.returncode == 0, sync.stderr
    assert fields.returncode == 0, fields.stderr
    listing = cli(config, "status")
    assert listing.returncode == 0, listing.stderr
    timeline = cli(config, "status", f"zd:{chosen[0]}")
    assert timeline.returncode == 0, timeline.stderr
    shown = [sync.stdout, sync.stderr, fields.stdout, fields.stderr, listing.stdout, listing.stderr, timeline.stdout, timeline.stderr]
    assert_clean_terminal(*shown)
    for text in shown:
        assert not any(line.lstrip().startswith(FORGED) for line in text.splitlines()), f"a forged line was printed: {text}"


def test_check_online_cannot_be_made_to_print_a_forged_line(tmp_path):
    """The account name comes from the server: it may not add lines or escapes to check's output."""
    box = zendesk()
    server = HostileZendesk(box).on("/users/me", rewrite(lambda data: data["user"].update(name="Mallory" + HOSTILE)))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "check", "--online")
    assert result.returncode == 0, result.stderr
    assert_clean_terminal(result.stdout, result.stderr)
    assert sum(1 for line in result.stdout.splitlines() if "credentials OK" in line) == 1, result.stdout


def test_an_error_body_with_terminal_escapes_is_shown_inert(tmp_path):
    box = zendesk()
    said = {"error": "Forbidden\x1b[2J", "description": "\x1b]0;pwned\x07no access\r\nError: none, all is well\x1b[8m"}
    server = HostileZendesk(box).on(TICKETS, answer(403, said))
    with server.serve() as url:
        config = write_config(tmp_path, box, url)
        result = cli(config, "sync")
        assert_source_stopped(result, config, "403")
        verbose = cli(config, "-v", "sync")
    assert_clean_terminal(verbose.stdout, verbose.stderr)
