"""Write-back with several agreements on a ticket (issue 12): the status field and the tags are the
customer's (its sla clocks); every agreement's breach gets its own note, naming the agreement,
with a marker of its own, and only the sla's note speaks of a service credit."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bridge.edges.store import Store, clock_row
from bridge.engine.evaluator import Clock
from bridge.framework.source import WritebackConfig
from bridge.model import Page, Ticket, markers_in, to_iso
from bridge.pipeline.plan import marker_clock, note_marker, plan_ticket, pushed_from_journal
from bridge.pipeline.push import Push
from bridge.pipeline.report import SourceStats

UTC = timezone.utc
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
H, M = 3600, 60
SETTINGS = WritebackConfig(enabled=True, status_field="custom_field:9", tags=True, notes=True)
TICKET = Ticket("zd", "zendesk", "12", "#12", "VPN down", "resolved", "solved", T0, T0 + timedelta(hours=5))
CREDIT = {"percent": 1.0, "amount": 120.0, "currency": "EUR"}


def sla(**changes: Any) -> Clock:
    """The customer's resolution: 8 h target, met after 5 h."""
    clock = Clock("zd:12", "resolution", 1, "acme-gold", "v1", "met", 8 * H, 5 * H, 0, T0, T0 + timedelta(hours=5),
                  T0 + timedelta(hours=8), None, False)
    return dataclasses.replace(clock, **changes)


def ola(**changes: Any) -> Clock:
    """The 2nd line held it 10:00-12:30: 2h30m of its 2 h, breached at 12:00 by 30m."""
    clock = Clock("zd:12", "resolution", 1, "network-ola", "o1", "breached", 2 * H, 150 * M, 0, T0 + timedelta(hours=1),
                  T0 + timedelta(hours=3, minutes=30), T0 + timedelta(hours=3), T0 + timedelta(hours=3), False,
                  agreement="ola:2nd line", kind="ola", started_by="assigned to 2nd line", stopped_by="handed to Support")
    return dataclasses.replace(clock, **changes)


def uc(**changes: Any) -> Clock:
    clock = Clock("zd:12", "resolution", 1, "telco-uc", "u1", "breached", 4 * H, 5 * H, 0, T0, T0 + timedelta(hours=5),
                  T0 + timedelta(hours=4), T0 + timedelta(hours=4), False, agreement="uc:Telco", kind="uc",
                  started_by="waiting on Telco", stopped_by="no longer waiting on Telco")
    return dataclasses.replace(clock, **changes)


def planned(*clocks: Clock, notes: frozenset[str] = frozenset()) -> Any:
    pushed = dataclasses.replace(pushed_from_journal([]), notes=notes)
    return plan_ticket(TICKET, list(clocks), SETTINGS, pushed, credits={("resolution", 1): CREDIT},
                       contracts={"acme-gold": "ACME MSA s.9", "network-ola": "Ops handbook s.2"})


def test_an_ola_breach_is_noted_with_its_own_marker_and_leaves_the_ticket_met():
    plan = planned(sla(), ola())
    assert plan.set_fields == {"custom_field:9": "met"}  # the customer's clock met its target
    assert plan.add_tags == [] and plan.remove_tags == []  # no sla_breached: the customer was not let down
    [note] = plan.notes
    assert note.marker == "[sla-bridge:zd:12:ola-2nd-line.resolution:1]"
    assert note.body.splitlines() == [
        "OLA breach (team 2nd line): resolution target of 2h (business time) missed by 30m.",
        "Policy: network-ola (Ops handbook s.2).",
        "Breached at 2026-03-03 12:00 UTC.",
        "Ref: [sla-bridge:zd:12:ola-2nd-line.resolution:1]",
    ]  # and no credit line, though the sla's (resolution, 1) has one


def test_a_running_sla_keeps_the_ticket_on_track_while_an_ola_is_breached():
    plan = planned(sla(state="running", stopped_at=None, elapsed_seconds=2 * H), ola())
    assert plan.set_fields == {"custom_field:9": "on_track"} and plan.add_tags == []
    assert [note.marker for note in plan.notes] == ["[sla-bridge:zd:12:ola-2nd-line.resolution:1]"]


def test_an_underpinning_contract_breach_names_the_vendor():
    [note] = planned(sla(), uc()).notes
    assert note.marker == "[sla-bridge:zd:12:uc-telco.resolution:1]"
    assert note.body.splitlines()[0] == "Underpinning contract breach (Telco): resolution target of 4h (business time) missed by 1h."
    assert "credit" not in note.body.lower()


def test_the_sla_breach_note_keeps_the_marker_notes_on_tickets_already_carry():
    breached = sla(state="breached", elapsed_seconds=9 * H, breached_at=T0 + timedelta(hours=8))
    plan = planned(breached, ola())
    assert plan.set_fields == {"custom_field:9": "breached"} and plan.add_tags == ["sla_breached"]
    by_marker = {note.marker: note.body for note in plan.notes}
    assert set(by_marker) == {"[sla-bridge:zd:12:resolution:1]", "[sla-bridge:zd:12:ola-2nd-line.resolution:1]"}
    sla_note = by_marker["[sla-bridge:zd:12:resolution:1]"].splitlines()
    assert sla_note[0] == "SLA breach: resolution target of 8h (business time) missed by 1h."
    assert sla_note[1] == "Policy: acme-gold (ACME MSA s.9)."
    assert "Service credit earned: 1% of the monthly fee = 120.00 EUR." in sla_note
    # a note already on the ticket (its marker seen in the history) is not posted again
    again = planned(breached, ola(), notes=frozenset({"[sla-bridge:zd:12:ola-2nd-line.resolution:1]"}))
    assert [note.marker for note in again.notes] == ["[sla-bridge:zd:12:resolution:1]"]


def test_a_ticket_with_only_an_ola_writes_no_status_and_no_tags():
    plan = planned(ola())
    assert plan.set_fields == {} and plan.add_tags == [] and [n.marker for n in plan.notes] == [
        "[sla-bridge:zd:12:ola-2nd-line.resolution:1]"]


@pytest.mark.parametrize(("team", "slug"), [("2nd line", "ola-2nd-line"), ("Network [EU]: core", "ola-network-eu-core"),
                                            ("Müller_Team", "ola-müller-team"), ("***", "ola")])
def test_an_agreement_marker_is_one_the_notes_parser_finds_and_splits(team, slug):
    marker = note_marker(ola(agreement=f"ola:{team}"))
    assert marker == f"[sla-bridge:zd:12:{slug}.resolution:1]"
    assert markers_in(f"OLA breach ...\nRef: {marker}") == [marker]
    assert marker_clock(marker) == ("zd:12", f"{slug}.resolution", 1)


# -- push: a note whose outcome is unknown, for an OLA clock ----------------------------------


class NoteLookup:
    """Just what Push.recover asks of a connector: its name, and whether a note is on a ticket."""

    name = "zd"

    def __init__(self, on_ticket: set[str]) -> None:
        self.on_ticket, self.asked = on_ticket, []

    def note_exists(self, external_id: str, marker: str) -> bool:
        self.asked.append(marker)
        return marker in self.on_ticket


@pytest.mark.parametrize("state", ["breached", "met"])
def test_an_ola_note_left_unconfirmed_is_kept_while_its_clock_is_breached(tmp_path, state):
    """After a crash mid-push, a note not found on the ticket is planned again while its clock is
    breached, and forgotten once a late event un-breached it: for an OLA's marker as for an sla's."""
    marker = "[sla-bridge:zd:12:ola-2nd-line.resolution:1]"
    with Store.open(tmp_path / "store.db") as store:
        store.save_page("zd", Page(tickets=[TICKET], events=[], cursor=None))
        clock = ola() if state == "breached" else ola(state="met", elapsed_seconds=90 * M, breached_at=None)
        store.replace_clocks("zd:12", [clock_row(sla(), to_iso(T0)), clock_row(clock, to_iso(T0))])
        store.journal_intend(1, [("zd:12", f"note:{marker}", marker)])
        connector = NoteLookup(set())
        push = Push(store, connector, SETTINGS, {}, run_id=2, stats=SourceStats())  # type: ignore[arg-type]
        push.recover()
        [row] = store.journal(["zd:12"])["zd:12"]
    assert connector.asked == [marker]
    assert row["state"] == ("intent" if state == "breached" else "gone")
