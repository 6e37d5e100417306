"""The store keeps every agreement's clocks (issue 12) and never destroys a verdict: an older
store upgrades in place, every field the evaluator gives a clock comes back as it went in, and a
re-evaluation that changes a stored verdict leaves a record of it, with why."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from bridge.edges.credentials import MASK, Secret
from bridge.edges.store import Store, clock_row, migrations
from bridge.engine.evaluator import Clock
from bridge.model import Page, to_iso
from tests.edges.test_store import ticket

UTC = timezone.utc
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
H, M = 3600, 60


def sla_clock(**changes: object) -> Clock:
    """zd:1's resolution: 4 h target, met after 3 h under gold version v1."""
    clock = Clock(ticket_id="zd:1", metric="resolution", cycle=1, policy="gold", policy_version="v1", state="met",
                  target_seconds=4 * H, elapsed_seconds=3 * H, paused_seconds=0, started_at=T0, stopped_at=T0 + timedelta(hours=3),
                  due_at=T0 + timedelta(hours=4), breached_at=None, at_risk=False, started_by="created", stopped_by="resolved",
                  attribution={"team:Support": 3 * H})
    return dataclasses.replace(clock, **changes)  # type: ignore[arg-type]


def ola_clock(**changes: object) -> Clock:
    """The 2nd line's OLA on zd:1: the same metric and cycle as the sla's, another agreement."""
    clock = Clock(ticket_id="zd:1", metric="resolution", cycle=1, policy="network-ola", policy_version="o1", state="breached",
                  target_seconds=2 * H, elapsed_seconds=150 * M, paused_seconds=30 * M, started_at=T0 + timedelta(minutes=30),
                  stopped_at=T0 + timedelta(hours=3, minutes=30), due_at=T0 + timedelta(hours=3), breached_at=T0 + timedelta(hours=3),
                  at_risk=False, agreement="ola:2nd line", kind="ola", started_by="assigned to 2nd line", stopped_by="resolved",
                  pauses=((T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30)),))
    return dataclasses.replace(clock, **changes)  # type: ignore[arg-type]


def stored(store: Store, *clocks: Clock, at: datetime = T0 + timedelta(hours=5)) -> int:
    return store.replace_clocks("zd:1", [clock_row(clock, to_iso(at)) for clock in clocks])


# -- an older store upgrades in place ----------------------------------------------------------


def test_a_store_of_the_version_before_agreements_upgrades_and_its_clocks_become_the_sla(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    migrations.apply(old, stop_before="0008_agreements")  # the schema as the previous version left it
    assert "agreement" not in old.table("sla_clocks").columns_dict
    old.execute(
        "insert into sla_clocks (ticket_id, metric, cycle, policy, policy_version, state, target_seconds, elapsed_seconds, "
        "paused_seconds, started_at, stopped_at, due_at, breached_at, at_risk, evaluated_at) values "
        "('zd:1', 'resolution', 1, 'gold', 'v1', 'met', 14400, 10800, 0, '2026-03-03T09:00:00.000Z', "
        "'2026-03-03T12:00:00.000Z', '2026-03-03T13:00:00.000Z', null, 0, '2026-03-03T14:00:00.000Z')")
    old.conn.close()

    with Store.open(path) as store:
        [row] = store.clock_rows("zd:1")
        assert (row["agreement"], row["kind"], row["state"], row["pauses"], row["attribution"]) == ("sla", "sla", "met", None, None)
        [clock] = store.clocks(["zd:1"])["zd:1"]
        assert (clock.agreement, clock.kind, clock.pauses, clock.attribution, clock.started_by) == ("sla", "sla", (), {}, "")
        assert store.clock_state("zd:1", "resolution", 1) == "met"
        # the same metric and cycle under another agreement is a clock of its own now
        store.replace_clocks("zd:1", [row, clock_row(ola_clock(), "2026-03-03T14:00:00.000Z")])
        assert [(r["agreement"], r["metric"], r["cycle"]) for r in store.clock_rows("zd:1")] == [
            ("sla", "resolution", 1), ("ola:2nd line", "resolution", 1)]
        assert store.clock_state("zd:1", "resolution", 1, "ola:2nd line") == "breached"
        assert store.verdict_changes("zd:1") == []
        indexes = {tuple(index.columns) for index in store.db.table("sla_clocks").indexes}
        assert ("state",) in indexes


# -- every field round-trips --------------------------------------------------------------------


def test_every_field_of_an_agreements_clock_comes_back_as_it_went_in(tmp_path: Path) -> None:
    sla, ola = sla_clock(attribution={"team:Support": 3600, "paused": 1800, "third_party": 7200}), ola_clock()
    with Store.open(tmp_path / "store.db") as store:
        stored(store, sla, ola)
    with Store.open(tmp_path / "store.db", create=False) as reread:
        assert reread.clocks(["zd:1"]) == {"zd:1": [sla, ola]}
        rows = {row["agreement"]: row for row in reread.clock_rows("zd:1")}
    # as stored: the spans as [[from, to]] in the store's ISO form, the attribution as an object
    assert json.loads(rows["ola:2nd line"]["pauses"]) == [["2026-03-03T10:00:00.000Z", "2026-03-03T10:30:00.000Z"]]
    assert json.loads(rows["sla"]["attribution"]) == {"team:Support": 3600, "paused": 1800, "third_party": 7200}
    assert (rows["ola:2nd line"]["kind"], rows["ola:2nd line"]["started_by"], rows["ola:2nd line"]["stopped_by"]) == (
        "ola", "assigned to 2nd line", "resolved")


def test_status_lists_the_worst_clocks_with_their_agreement(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        store.save_page("zd", Page(tickets=[ticket(1)], events=[], cursor=None))
        stored(store, sla_clock(), ola_clock())
        assert [(row["agreement"], row["kind"], row["state"]) for row in store.worst_clocks()] == [("ola:2nd line", "ola", "breached")]


def test_a_team_name_carrying_a_secret_is_masked_where_it_is_stored(tmp_path: Path) -> None:
    token = "tok-3f9a8b7c6d5e4f3a2b1c"
    Secret(token, "test")
    team = f"team {token}"
    with Store.open(tmp_path / "store.db") as store:
        stored(store, ola_clock(agreement=f"ola:{team}", started_by=f"assigned to {team}"),
               sla_clock(attribution={f"team:{team}": 3 * H}))
        stored(store, ola_clock(agreement=f"ola:{team}", started_by=f"assigned to {team}", state="met"), sla_clock())
        [change] = store.verdict_changes("zd:1")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    assert token.encode() not in raw
    assert change["agreement"] == f"ola:team {MASK}"


# -- evidence is never destroyed -----------------------------------------------------------------


def test_new_terms_that_turn_a_met_clock_into_a_breach_leave_a_record_of_both(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        store.run_id = 7
        stored(store, sla_clock(), at=T0 + timedelta(hours=5))
        # the config now gives 2 h: the same 3 h is a breach by an hour, under version v2
        stored(store, sla_clock(policy_version="v2", state="breached", target_seconds=2 * H, breached_at=T0 + timedelta(hours=2)),
               at=T0 + timedelta(hours=6))
        [change] = store.verdict_changes("zd:1")
    assert {key: value for key, value in change.items() if key != "id"} == {
        "ticket_id": "zd:1", "agreement": "sla", "metric": "resolution", "cycle": 1, "changed_at": "2026-03-03T15:00:00.000Z",
        "run_id": 7, "before_state": "met", "after_state": "breached", "before_target": 4 * H, "after_target": 2 * H,
        "before_policy": "gold", "after_policy": "gold", "before_version": "v1", "after_version": "v2",
        "why": "terms changed: gold version v1 -> v2"}


def test_late_history_that_changes_a_verdict_is_recorded_as_history(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        stored(store, sla_clock(), ola_clock())
        # a late event: the ticket was reopened; the sla resolution runs again, the OLA's cycle is gone
        stored(store, sla_clock(state="running", stopped_at=None, elapsed_seconds=3 * H + 10 * M, stopped_by=""))
        changes = store.verdict_changes("zd:1")
    assert [(c["agreement"], c["before_state"], c["after_state"], c["before_target"], c["after_target"], c["why"],
             c["run_id"]) for c in changes] == [
        ("ola:2nd line", "breached", None, 2 * H, None, "no longer judged (its terms or the ticket's history changed)", None),
        ("sla", "met", "running", 4 * H, 4 * H, "history changed", None)]


def test_a_running_clock_moving_on_is_no_verdict_change(tmp_path: Path) -> None:
    running = sla_clock(state="running", stopped_at=None, elapsed_seconds=3 * H, stopped_by="")
    with Store.open(tmp_path / "store.db") as store:
        assert stored(store, running, at=T0 + timedelta(hours=3)) == 1
        # an hour and a minute on: over its 4 h, breached, still running; later more elapsed time
        breached = dataclasses.replace(running, state="breached", elapsed_seconds=4 * H + M, breached_at=T0 + timedelta(hours=4))
        assert stored(store, breached, at=T0 + timedelta(hours=4, minutes=1)) == 1
        assert stored(store, dataclasses.replace(breached, elapsed_seconds=5 * H), at=T0 + timedelta(hours=5)) == 0
        assert store.clock_rows("zd:1")[0]["elapsed_seconds"] == 5 * H  # written, so status is current
        # resolved at 14:00: stopped, still the breach it was (the same state, the same target)
        done = dataclasses.replace(breached, elapsed_seconds=5 * H, stopped_at=T0 + timedelta(hours=5), stopped_by="resolved")
        assert stored(store, done, at=T0 + timedelta(hours=5)) == 1
        assert stored(store, done, at=T0 + timedelta(hours=9)) == 0  # and judged again later: the same verdict
        assert store.verdict_changes("zd:1") == []


def test_a_verdict_replaced_under_other_terms_for_the_same_agreement_names_both(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        stored(store, sla_clock(cycle=2))
        # the renewed contract (another policy name) judges the agreement now; cycle 2 is no longer one
        stored(store, sla_clock(policy="gold-2027", policy_version="w1"))
        [change] = store.verdict_changes("zd:1")
    assert (change["cycle"], change["after_state"], change["after_policy"], change["after_version"], change["why"]) == (
        2, None, "gold-2027", "w1", "terms changed: gold version v1 -> gold-2027 w1")
