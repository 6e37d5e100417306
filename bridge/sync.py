"""The pipeline cron runs: pull every source, evaluate what changed, push the difference.

Safe to run every few minutes and to kill at any instant:

- **pull**: each page is committed with its cursor (the store's rule), so a killed pull repeats at
  most one page.
- **evaluate**: only tickets pulled since the last evaluation, plus tickets with a clock still
  running (their state moves with ``now``), plus everything when the policies or calendars
  changed. Clocks are replaced per ticket; the mark moves only after all are stored.
- **push**: plans carry only the difference from the journal. Every item is journaled as an intent
  before it is sent and confirmed after; on the next run an unconfirmed note is looked for on the
  ticket (its marker) before anything is sent again, so a note is posted once, whatever happened.

One source failing (bad credentials, a vendor down past the retry bound) is recorded and the
others go on; the run then exits 3. The core never imports a connector by name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bridge.config import Config
from bridge.credits import breach_credit_percent
from bridge.errors import NotFound, SourceError
from bridge.evaluator import Clock, evaluate_ticket
from bridge.model import WritebackPlan, from_iso, to_iso
from bridge.policy import Policy, build_policies
from bridge.store import Store
from bridge.writeback import Pushed, plan_ticket

__all__ = ["SourceStats", "Sync", "clock_from_row", "clock_row"]

log = logging.getLogger("sla_bridge.sync")
CRASH_ENV = "_SLA_BRIDGE_CRASH_AT"  # tests: "point" or "point:n" kills the run there (SIGKILL)


def _crash_point(name: str) -> None:
    """A named place where the crash-safety tests kill the run; free when the variable is unset."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, count = wanted.rpartition(":")
    if not count.isdigit():
        point, count = wanted, "1"
    if point != name:
        return
    seen = int(os.environ.get(f"{CRASH_ENV}_SEEN", "0")) + 1
    os.environ[f"{CRASH_ENV}_SEEN"] = str(seen)
    if seen >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class SourceStats:
    """What one run did to one source: the `runs` table keeps it per source."""

    tickets_pulled: int = 0
    events_pulled: int = 0
    quarantined: int = 0
    requests: int = 0
    tickets_evaluated: int = 0
    clocks_changed: int = 0
    writes_sent: int = 0
    notes_sent: int = 0
    conflicts: int = 0
    writes_refused: int = 0
    unmapped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_class: str | None = None


def clock_row(clock: Clock, evaluated_at: str) -> dict[str, Any]:
    iso = lambda m: to_iso(m) if m is not None else None  # noqa: E731
    return {
        "ticket_id": clock.ticket_id, "metric": clock.metric, "cycle": clock.cycle, "policy": clock.policy,
        "policy_version": clock.policy_version, "state": clock.state, "target_seconds": clock.target_seconds,
        "elapsed_seconds": clock.elapsed_seconds, "paused_seconds": clock.paused_seconds,
        "started_at": iso(clock.started_at), "stopped_at": iso(clock.stopped_at), "due_at": iso(clock.due_at),
        "breached_at": iso(clock.breached_at), "at_risk": int(clock.at_risk), "evaluated_at": evaluated_at,
    }


def clock_from_row(row: Mapping[str, Any]) -> Clock:
    parse = lambda t: from_iso(t) if t else None  # noqa: E731
    return Clock(
        ticket_id=row["ticket_id"], metric=row["metric"], cycle=row["cycle"], policy=row["policy"],
        policy_version=row["policy_version"], state=row["state"], target_seconds=row["target_seconds"],
        elapsed_seconds=row["elapsed_seconds"], paused_seconds=row["paused_seconds"], started_at=parse(row["started_at"]),
        stopped_at=parse(row["stopped_at"]), due_at=parse(row["due_at"]), breached_at=parse(row["breached_at"]),
        at_risk=bool(row["at_risk"]),
    )


class Sync:
    """One run over a store. ``transports`` lets tests and the demo route a source to a sandbox."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        now: datetime,
        run_id: int,
        transports: Mapping[str, httpx.BaseTransport] | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.run_id = run_id
        self.transports = dict(transports or {})
        self.progress = progress
        self.stats: dict[str, SourceStats] = {}
        self._connectors: dict[str, Any] = {}
        self._policies: list[Policy] | None = None
        self._pushed: dict[str, Pushed] = {}  # per ticket, as read by the last plan()

    # -- helpers --------------------------------------------------------------------------

    def stat(self, source: str) -> SourceStats:
        return self.stats.setdefault(source, SourceStats())

    def failed(self, source: str) -> bool:
        return self.stat(source).error is not None

    def _fail(self, source: str, error: SourceError) -> None:
        stats = self.stat(source)
        stats.error, stats.error_class = str(error), type(error).__name__
        log.info("%s", error)  # the CLI prints it once, as an Error line

    def connector(self, source: str) -> Any:
        if source not in self._connectors:
            from connectors import open_connector  # the registry, never a connector by name

            self._connectors[source] = open_connector(self.config, source, transport=self.transports.get(source))
        return self._connectors[source]

    def policies(self) -> list[Policy]:
        if self._policies is None:
            self._policies = build_policies(self.config)
        return self._policies

    def close(self) -> None:
        for name, connector in self._connectors.items():
            self.stat(name).requests += connector.http.requests_made
            self.stat(name).unmapped = connector.unmapped()
            connector.http.client.close()
        self._connectors.clear()

    # -- pull -----------------------------------------------------------------------------

    def pull(self, sources: Iterable[str]) -> None:
        for source in sources:
            stats = self.stat(source)
            try:
                connector = self.connector(source)
                cursors = {row["stream"]: row["cursor"] for row in self.store.db["sync_state"].rows_where("source = ?", [source])}
                if self.store.mark(f"history_from:{source}") is None:
                    horizon = connector.history_start(self.now)
                    if horizon is not None:
                        self.store.set_mark(f"history_from:{source}", to_iso(horizon))
                for page in connector.pull(cursors, now=self.now):
                    counts = self.store.save_page(source, page)
                    stats.tickets_pulled += counts.tickets
                    stats.events_pulled += counts.events
                    stats.quarantined += counts.quarantined
                    if self.progress:
                        self.progress(source, stats.tickets_pulled + stats.events_pulled)
                    _crash_point("pull:page")
            except SourceError as error:
                self._fail(source, error)

    # -- evaluate -------------------------------------------------------------------------

    def evaluate(self, sources: Iterable[str]) -> None:
        policies = self.policies()
        fingerprint = ",".join(sorted(p.version for p in policies))
        started = to_iso(self.now)
        for source in sources:
            stats = self.stat(source)
            mark = self.store.mark(f"evaluated_run:{source}")
            everything = mark is None or self.store.mark(f"policies:{source}") != fingerprint
            horizon_text = self.store.mark(f"history_from:{source}")
            horizon = from_iso(horizon_text) if horizon_text else None
            for chunk in self.store.ticket_id_chunks(source, pulled_after_run=None if everything else int(mark)):
                with self.store.db.atomic():
                    for ticket, events in self.store.load(chunk):
                        if horizon is not None and ticket.created_at < horizon:
                            # Created before the history sla-bridge pulled: its clocks would be guesses.
                            policy, clocks = None, []
                        else:
                            policy, clocks = evaluate_ticket(ticket, events, policies, self.now)
                        stats.clocks_changed += self.store.replace_clocks(ticket.id, [clock_row(c, started) for c in clocks])
                        if policy is not None and policy.credits is not None:
                            self._record_breach_credits(ticket.customer, policy, clocks)
                        stats.tickets_evaluated += 1
            _crash_point("evaluate:done")
            with self.store.db.atomic():
                self.store.set_mark(f"evaluated_run:{source}", str(self.run_id))
                self.store.set_mark(f"policies:{source}", fingerprint)

    def _record_breach_credits(self, customer: str | None, policy: Policy, clocks: list[Clock]) -> None:
        terms = policy.credits
        assert terms is not None
        for clock in clocks:
            if not clock.breached:
                continue
            percent = breach_credit_percent(terms.per_breach, clock)
            self.store.db["credits"].upsert({
                "id": f"breach:{clock.ticket_id}:{clock.metric}:{clock.cycle}", "customer": customer, "period": None,
                "kind": "breach", "ticket_id": clock.ticket_id, "metric": clock.metric, "cycle": clock.cycle,
                "policy": policy.name, "percent": percent, "amount": round(terms.monthly_fee * percent / 100, 2),
                "currency": terms.currency, "reason": f"missed by {clock.overrun_seconds}s", "computed_at": to_iso(self.now),
            }, pk="id")

    # -- plan and push --------------------------------------------------------------------

    def _plan_chunks(self, source: str, size: int = 500) -> Iterator[list[WritebackPlan]]:
        """Plans in chunks of ``size`` tickets, so memory stays flat however large the store."""
        settings = self.config.sources[source].writeback
        if not settings.enabled:
            return
        contracts = {p.name: p.contract for p in self.policies()}
        for chunk in self.store.clocked_ticket_id_chunks(source, size):
            marks = ",".join("?" * len(chunk))
            by_ticket: dict[str, list[Clock]] = {}
            for row in self.store.db.query(f"select * from sla_clocks where ticket_id in ({marks}) order by ticket_id, metric, cycle", chunk):
                by_ticket.setdefault(row["ticket_id"], []).append(clock_from_row(row))
            credits: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
            for row in self.store.db.query(f"select * from credits where kind = 'breach' and ticket_id in ({marks})", chunk):
                credits.setdefault(row["ticket_id"], {})[(row["metric"], row["cycle"])] = row
            journal = self.store.journal(chunk)
            plans = []
            for ticket in self.store.tickets(chunk):
                clocks = by_ticket[ticket.id]
                pushed = self._pushed[ticket.id] = _pushed(journal.get(ticket.id, []))
                plan = plan_ticket(ticket, clocks, settings, pushed, contract=contracts.get(clocks[0].policy, ""),
                                   credits=credits.get(ticket.id))
                if plan is not None:
                    plans.append(plan)
            yield plans

    def recover(self, source: str) -> None:
        """Notes whose push may have happened (a crash, an unknown outcome): look before re-sending."""
        connector = None
        for row in self.store.intents(source):
            if not row["item"].startswith("note:"):
                continue  # tags and fields are idempotent: the plan simply sends them again
            connector = connector or self.connector(source)
            try:
                found = connector.note_exists(row["external_id"], row["pending"])
            except NotFound:
                self.store.journal_forget(row["ticket_id"], row["item"])  # the ticket is gone
                continue
            if found:
                self.store.journal_confirm(row["ticket_id"], [row["item"]])
            elif not self._still_breached(row["pending"]):
                self.store.journal_forget(row["ticket_id"], row["item"])  # a late event un-breached it

    def _still_breached(self, marker: str) -> bool:
        ticket_id, metric, cycle = marker.strip("[]").removeprefix("sla-bridge:").rsplit(":", 2)
        row = self.store.db.execute("select state from sla_clocks where ticket_id = ? and metric = ? and cycle = ?",
                                    [ticket_id, metric, int(cycle)]).fetchone()
        return row is not None and row[0] == "breached"

    def push(self, sources: Iterable[str], *, dry_run: bool = False) -> dict[str, list[WritebackPlan]]:
        planned: dict[str, list[WritebackPlan]] = {}
        for source in sources:
            if self.failed(source):
                continue  # its data is stale this run; do not write from it
            try:
                if not dry_run:
                    self.recover(source)
                planned[source] = []
                for plans in self._plan_chunks(source):
                    if dry_run:
                        planned[source].extend(plans)
                    elif plans:
                        self._push_chunk(source, plans)
                    self._pushed.clear()
            except SourceError as error:
                self._fail(source, error)
        return planned

    def _push_chunk(self, source: str, plans: list[WritebackPlan]) -> None:
        self.store.journal_intend(
            self.run_id, [entry for plan in plans for entry in _intents(plan, self._pushed.get(plan.ticket_id, Pushed()))]
        )
        connector = self.connector(source)
        for plan in [p for p in plans if p.notes]:  # one by one: each note journaled as soon as it is sent
            self._settle(source, plan, connector.apply(plan))
        bulk = [p for p in plans if not p.notes]
        for plan, result in zip(bulk, connector.apply_all(bulk), strict=True):
            self._settle(source, plan, result)

    def _settle(self, source: str, plan: WritebackPlan, result: Any) -> None:
        _crash_point("push:sent")  # between a push and its journal entry
        stats = self.stat(source)
        items = [item for _, item, _ in _intents(plan, self._pushed.get(plan.ticket_id, Pushed()))]
        if result.sent:
            self.store.journal_confirm(plan.ticket_id, items)
            stats.writes_sent += 1
            stats.notes_sent += len(plan.notes)
        elif result.conflict:
            stats.conflicts += 1  # intents stay open: the next run re-plans from what it pulls
        else:
            # Refused for good (gone, read-only): record it so it is reported once, not retried forever.
            self.store.journal_refuse(plan.ticket_id, items)
            stats.writes_refused += 1
            log.info("source %r: ticket %s refused the write-back: %s", source, plan.external_id, result.detail)

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(stats) for name, stats in sorted(self.stats.items())}


def _pushed(rows: list[dict[str, Any]]) -> Pushed:
    """The journal's view of a ticket. An unconfirmed intent may or may not have landed: its field
    counts as unknown (sent again) and its tags as maybe present (removed if unwanted)."""
    field_value = None
    tags: set[str] = set()
    maybe: set[str] = set()
    notes = set()
    for row in rows:
        done = row["state"] in ("sent", "refused")
        if row["item"] == "field":
            field_value = json.loads(row["value"]) if done and row["value"] is not None else None
        elif row["item"] == "tags":
            confirmed = set(json.loads(row["value"])) if row["value"] is not None else set()
            tags = confirmed
            maybe = confirmed | (set(json.loads(row["pending"])) if row.get("pending") else set())
        elif row["item"].startswith("note:") and done:
            notes.add(row["item"][len("note:"):])
    return Pushed(field=field_value, tags=frozenset(tags), maybe_tags=frozenset(maybe | tags), notes=frozenset(notes))


def _intents(plan: WritebackPlan, pushed: Pushed) -> list[tuple[str, str, str]]:
    entries = []
    if plan.set_fields:
        entries.append((plan.ticket_id, "field", json.dumps(next(iter(plan.set_fields.values())))))
    if plan.add_tags or plan.remove_tags:
        # the managed tags on the ticket once this push lands: confirmed ones, plus added, minus removed
        after = (set(pushed.tags) | set(plan.add_tags)) - set(plan.remove_tags)
        entries.append((plan.ticket_id, "tags", json.dumps(sorted(after))))
    for note in plan.notes:
        entries.append((plan.ticket_id, f"note:{note.marker}", note.marker))
    return entries
