"""`sla-bridge status TICKET` says why each agreement's clock stands where it does (issue 12):
what started, paused and stopped it, the terms that judged it, where the customer's time went,
and every verdict a re-evaluation changed. The real CLI, in its own process, on a store holding
one ticket handed from Support to the 2nd line and back.

The ticket (24x7, p1), worked by hand:

    09:00 created, open, group Support        10:30-11:00 waiting on the customer (paused)
    10:00 handed to the 2nd line              12:30 handed back to Support
    13:00 first agent reply                   14:00 resolved

- sla first_response (4h): 09:00-13:00 less the 30 min wait = 3h30m, met. Support 09:00-10:00 and
  12:30-13:00 (1h30m), 2nd line 10:00-12:30 less the wait (2h), paused 30m.
- sla resolution (8h): 09:00-14:00 less the wait = 4h30m, met. Support 1h + 1h30m = 2h30m, 2nd
  line 2h, paused 30m.
- OLA of the 2nd line (config.example.toml's network-ola, kind = "ola", team = "2nd line"),
  10:00-12:30 less the wait = 2h of each target: first_response (30m) breached where its 30
  minutes ran out, 10:30, stopped at the handoff without a reply; resolution (1h30m) breached at
  12:00 (10:00-10:30 and 11:00-12:00).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from bridge.edges.store import Store
from bridge.model import Page, Ticket, TicketEvent
from tests.conftest import SOURCE, run_cli

UTC = timezone.utc
DAY = datetime(2026, 3, 3, tzinfo=UTC)
NOW = "2026-03-03T15:00:00Z"
ENV = {"ZD_TOKEN": "zd-token-for-tests-only"}


def config_text(ola_resolution: str = "90m") -> str:
    return '[store]\npath = "store.db"\n' + SOURCE + f"""
[[policies]]
name = "acme-gold"
contract = "ACME MSA s.9"
targets.first_response = {{ p1 = "4h" }}
targets.resolution = {{ p1 = "8h" }}

[[policies]]
name = "network-ola"
kind = "ola"
team = "2nd line"
targets.first_response = {{ p1 = "30m" }}
targets.resolution = {{ p1 = "{ola_resolution}" }}
"""


def at(clock: str) -> datetime:
    hours, minutes = map(int, clock.split(":"))
    return DAY.replace(hour=hours, minute=minutes)


def handed_ticket() -> tuple[Ticket, list[TicketEvent]]:
    ticket = Ticket(source="zd", system="zendesk", external_id="12", key="#12", title="VPN down", status="resolved", status_raw="solved",
                    created_at=at("09:00"), updated_at=at("14:00"), resolved_at=at("14:00"), priority="p1", group="Support")
    history = [("status", "09:00", "new", "open"), ("group", "10:00", "Support", "2nd line"),
               ("status", "10:30", "open", "waiting_customer"), ("status", "11:00", "waiting_customer", "open"),
               ("group", "12:30", "2nd line", "Support"), ("agent_reply", "13:00", None, None), ("status", "14:00", "open", "resolved")]
    events = [TicketEvent("zd:12", f"e{n}", kind, at(clock), before, after)  # type: ignore[arg-type]
              for n, (kind, clock, before, after) in enumerate(history)]
    return ticket, events


def evaluated_store(tmp_path: Path) -> Path:
    config = tmp_path / "sla-bridge.toml"
    config.write_text(config_text())
    ticket, events = handed_ticket()
    with Store.open(tmp_path / "store.db") as store:
        store.save_page("zd", Page(tickets=[ticket], events=events, cursor="c1"))
    evaluated = run_cli(config, "evaluate", "--now", NOW, env=ENV)
    assert evaluated.returncode == 0, evaluated.stderr
    return config


def status(config: Path, *args: str) -> str:
    result = run_cli(config, "status", "zd:12", *args, env=ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout


def block(text: str, start: str, end: str | None) -> list[str]:
    lines = text.splitlines()
    first = lines.index(start)
    return lines[first + 1 : lines.index(end, first) if end else None]


def unwrapped(lines: list[str]) -> list[str]:
    """Lines of two-space entries, each perhaps wrapped onto lines indented deeper, one per entry."""
    entries: list[str] = []
    for line in lines:
        if line.startswith("   "):
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    return entries


def test_status_ticket_groups_the_clocks_by_agreement_and_says_why_each_stands_there(tmp_path):
    shown = status(evaluated_store(tmp_path))
    version = json.loads(status(tmp_path / "sla-bridge.toml", "--json"))["clocks"][0]["terms"]["version"]
    ola_version = json.loads(status(tmp_path / "sla-bridge.toml", "--json"))["clocks"][2]["terms"]["version"]
    assert block(shown, "  SLA (the customer's):", "  OLA of team 2nd line:") == [
        "    first_response#1: met, 3h30m of 4h, paused 30m",
        "      started 2026-03-03 09:00 (created)",
        "      paused 2026-03-03 10:30 -> 2026-03-03 11:00",
        "      stopped 2026-03-03 13:00 (agent reply)",
        f"      terms: acme-gold version {version}",
        "      time: team:Support 1h30m, team:2nd line 2h, paused 30m",
        "    resolution#1: met, 4h30m of 8h, paused 30m",
        "      started 2026-03-03 09:00 (created)",
        "      paused 2026-03-03 10:30 -> 2026-03-03 11:00",
        "      stopped 2026-03-03 14:00 (resolved)",
        f"      terms: acme-gold version {version}",
        "      time: team:Support 2h30m, team:2nd line 2h, paused 30m",
    ]
    assert block(shown, "  OLA of team 2nd line:", None) == [
        "    first_response#1: breached, 2h of 30m, paused 30m, breached 2026-03-03 10:30",
        "      started 2026-03-03 10:00 (assigned to 2nd line)",
        "      paused 2026-03-03 10:30 -> 2026-03-03 11:00",
        "      stopped 2026-03-03 12:30 (handed to Support without a reply)",
        f"      terms: network-ola version {ola_version}",
        "    resolution#1: breached, 2h of 1h30m, paused 30m, breached 2026-03-03 12:00",
        "      started 2026-03-03 10:00 (assigned to 2nd line)",
        "      paused 2026-03-03 10:30 -> 2026-03-03 11:00",
        "      stopped 2026-03-03 12:30 (handed to Support)",
        f"      terms: network-ola version {ola_version}",
    ]
    assert "Verdict changes" not in shown  # nothing was judged twice yet
    assert max(len(line) for line in shown.splitlines()) <= 100


def test_status_ticket_json_carries_the_same_with_every_instant_iso(tmp_path):
    doc = json.loads(status(evaluated_store(tmp_path), "--json"))
    clocks = {(c["agreement"], c["metric"]): c for c in doc["clocks"]}
    assert [(c["agreement"], c["kind"], c["metric"]) for c in doc["clocks"]] == [
        ("sla", "sla", "first_response"), ("sla", "sla", "resolution"),
        ("ola:2nd line", "ola", "first_response"), ("ola:2nd line", "ola", "resolution")]
    ola = clocks[("ola:2nd line", "resolution")]
    assert (ola["state"], ola["started_at"], ola["started_by"], ola["stopped_at"], ola["stopped_by"], ola["breached_at"]) == (
        "breached", "2026-03-03T10:00:00.000Z", "assigned to 2nd line", "2026-03-03T12:30:00.000Z", "handed to Support",
        "2026-03-03T12:00:00.000Z")
    assert ola["pauses"] == [["2026-03-03T10:30:00.000Z", "2026-03-03T11:00:00.000Z"]]
    assert ola["terms"]["policy"] == "network-ola" and ola["terms"]["in_config"] == "current"
    assert clocks[("sla", "resolution")]["attribution"] == {"team:Support": 9000, "team:2nd line": 7200, "paused": 1800}
    assert doc["verdict_changes"] == []


def test_new_terms_and_late_history_each_leave_a_verdict_change_status_shows(tmp_path):
    config = evaluated_store(tmp_path)
    before = json.loads(status(config, "--json"))["clocks"][3]["terms"]["version"]
    # the 2nd line's contract now gives 3 h to resolve: its 2 h is met
    config.write_text(config_text(ola_resolution="3h"))
    assert run_cli(config, "evaluate", "--now", NOW, env=ENV).returncode == 0
    after = json.loads(status(config, "--json"))["clocks"][3]["terms"]["version"]
    assert before != after
    # then a late event: the 2nd line had replied at 10:20 (an export that came late); its first
    # response stopped there, 20 minutes of its 30: met
    with Store.open(tmp_path / "store.db") as store:
        store.start_run("pull")  # as a pull run saves it: the next evaluation sees the ticket changed
        store.save_page("zd", Page(tickets=[], events=[TicketEvent("zd:12", "late", "agent_reply", at("10:20"))], cursor=None))
    assert run_cli(config, "evaluate", "--now", "2026-03-03T16:00:00Z", env=ENV).returncode == 0

    shown = status(config)
    assert unwrapped(block(shown, "Verdict changes (oldest first):", None)) == [
        f"2026-03-03 15:00  ola:2nd line resolution#1: breached (target 1h30m) -> met (target 3h): terms changed: "
        f"network-ola version {before} -> {after}",
        "2026-03-03 16:00  ola:2nd line first_response#1: breached (target 30m) -> met (target 30m): history changed",
    ]
    changes = json.loads(status(config, "--json"))["verdict_changes"]
    assert [(c["agreement"], c["metric"], c["cycle"], c["changed_at"], c["before_state"], c["after_state"], c["before_target"],
             c["after_target"], c["before_version"], c["after_version"], c["why"]) for c in changes] == [
        ("ola:2nd line", "resolution", 1, "2026-03-03T15:00:00.000Z", "breached", "met", 5400, 10800, before, after,
         f"terms changed: network-ola version {before} -> {after}"),
        ("ola:2nd line", "first_response", 1, "2026-03-03T16:00:00.000Z", "breached", "met", 1800, 1800, after, after,
         "history changed"),
    ]
    assert all(isinstance(c["run_id"], int) for c in changes)  # the evaluate runs that changed them
    assert max(len(line) for line in shown.splitlines()) <= 100
