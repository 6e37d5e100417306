"""Push: the planned difference, journaled item by item, and settled item by item.

Every item (a field by its id, the tags, each note by its marker) is journaled as an intent
before its plan is sent and settled as the connector reports it: ``sent`` becomes the confirmed
value; ``refused`` is kept with its reason, its cause and a time to retry (the planner plans it
again once the cause may have changed: :mod:`bridge.pipeline.plan`); ``conflict`` (or no report
at all) leaves the intent open for the next run to plan again from what it pulls. Before
pushing, a note whose outcome is unknown (a crash, a timeout) is confirmed by its marker in the
ticket's pulled history, else looked for on the ticket, so each breach gets exactly one note
whatever happened.

Three guards come first, each leaving the source partial (exit 3) with a line saying why:

- **only the present state is written**: the clocks must have been evaluated for an instant
  within :data:`EVALUATION_TOLERANCE` of the helpdesk's clock (``evaluate --now`` with another
  instant is for reports; ``--dry-run`` plans at any instant). Otherwise nothing is written;
- **no note on a history not known to be fresh**: notes are planned only when the source's data
  is complete (the ``complete_to`` mark the pull keeps) to within :data:`NOTES_FRESHNESS` of the
  helpdesk's clock: a store restored from a backup, or new, must pull before it can know which
  notes the tickets carry. Otherwise notes are held; fields and tags (idempotent) still go;
- **a value the source did not keep is noticed**: a field journaled as sent, on a ticket pulled
  after that push, that the source shows empty (a drop-down without that option drops it
  silently) is reported and treated as a refusal, so it is retried after a back-off, not every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bridge.edges.store import Store
from bridge.engine.durations import format_duration
from bridge.errors import BadRequest, NotFound, SourceError
from bridge.framework.contract import Connector, WritebackResult
from bridge.framework.source import WritebackConfig
from bridge.model import Ticket, WritebackPlan, field_item, from_iso, note_item, to_iso
from bridge.pipeline.faults import crash_point
from bridge.pipeline.plan import (
    REFUSAL_BACKOFF,
    REFUSAL_BACKOFF_MAX,
    Pushed,
    intents,
    note_marker,
    notes_due,
    plan_ticket,
    pushed_from_journal,
    refusal_backoff,
    refusal_cause,
    refusal_key,
)
from bridge.pipeline.report import SourceStats

__all__ = ["EVALUATION_TOLERANCE", "NOTES_FRESHNESS", "Push"]

log = logging.getLogger("sla_bridge.push")

# How far the instant the clocks were evaluated for may be from the helpdesk's clock for a push
# to write them: a cron run evaluates and pushes within seconds; `--now` elsewhere is refused.
EVALUATION_TOLERANCE = timedelta(minutes=10)
# How recent the point the source's history is complete to must be for notes to be planned:
# older, a note posted since (by another store, or before a restored backup) may be missed.
NOTES_FRESHNESS = timedelta(minutes=15)
PUSHES_KEPT = 50  # pushes remembered until the pulled data covers them (runs more often than the export lag)


class Push:
    """The write-back of one source in one run."""

    def __init__(self, store: Store, connector: Connector, settings: WritebackConfig, contracts: Mapping[str, str], *,
                 run_id: int, stats: SourceStats) -> None:
        self.store, self.connector, self.settings, self.contracts = store, connector, settings, contracts
        self.run_id, self.stats = run_id, stats
        self.source = connector.name
        self.at = datetime.now(timezone.utc)  # the instant refusals' back-off is counted from: see run()
        self.hold_notes = False
        self.items_sent = self.items_refused = 0
        self.settled_run: int | None = None  # the latest run whose writes the pulled data covers
        self.settled_before: int | None = None  # ... as it was before this run's pull

    def run(self, *, dry_run: bool = False) -> list[WritebackPlan]:
        """Push (or, dry, only plan) everything that differs; the plans when dry."""
        if not self.settings.enabled:
            return []
        if next(self.store.clocked_ticket_id_chunks(self.source, 1), None) is None and not self.store.intents(self.source):
            return []  # no clock, no open intent: nothing this push could write
        evaluated = self._mark_instant(f"evaluated_at:{self.source}")
        if dry_run:
            self.at = evaluated or datetime.now(timezone.utc)  # a dry run plans for the instant evaluated
        else:
            self.at = self._helpdesk_now()
            if not self._evaluated_for_now(evaluated):
                return []
        self.hold_notes = bool(self.settings.notes) and not self._history_fresh()
        planned: list[WritebackPlan] = []
        try:
            if not dry_run:
                self.recover()
                self._settle_pushes()
            for chunk in self.plans(dry_run=dry_run):
                if dry_run:
                    planned.extend(plan for plan, _ in chunk)
                elif chunk:
                    self._push_chunk(chunk)
        except SourceError:
            if not dry_run:
                self._wrap_up(finished=False)  # what was written stays known; the source's error is reported
            raise
        if not dry_run:
            self._wrap_up(finished=True)
        return planned

    def _wrap_up(self, *, finished: bool) -> None:
        if self.items_sent:
            self._record_push()
        self._conclude(finished=finished)

    # -- the guards -------------------------------------------------------------------------

    def _mark_instant(self, name: str) -> datetime | None:
        text = self.store.mark(name)
        if not text:
            return None
        try:
            return from_iso(text)
        except ValueError:
            log.warning("source %r: mark %s holds %r, not an instant; treated as missing", self.source, name, text)
            return None

    def _helpdesk_now(self) -> datetime:
        """The helpdesk's clock (its ``Date`` header), else this machine's."""
        clock = self.connector.http.server_time()
        if clock is None:
            self.connector.check_credentials()  # one cheap request: its Date says the helpdesk's time
            clock = self.connector.http.server_time()
        return clock if clock is not None else datetime.now(timezone.utc)

    def _evaluated_for_now(self, evaluated: datetime | None) -> bool:
        if evaluated is None:
            self.stats.problem(
                f"source {self.source!r}: the store does not say which instant its clocks were evaluated for; run "
                "`sla-bridge evaluate` (or `sync`) first. Nothing was written")
            return False
        if abs(evaluated - self.at) <= EVALUATION_TOLERANCE:
            return True
        complete = self._mark_instant(f"complete_to:{self.source}")
        if complete is not None and evaluated >= complete and evaluated < self.at:
            # The evaluation stopped where the data does (bridge.pipeline.evaluate): the store is stale.
            self.stats.problem(
                f"source {self.source!r}: clocks evaluated for {to_iso(evaluated)}, as far as the store has this source's data "
                f"complete (a stream that has not reached its end yet, or a store restored or not pulled for a while); the "
                f"helpdesk's clock says {to_iso(self.at)}: push writes only the present state. Run `sla-bridge pull` (or `sync`) "
                "first. Nothing was written")
        else:
            self.stats.problem(
                f"source {self.source!r}: clocks evaluated for {to_iso(evaluated)}, the helpdesk's clock says {to_iso(self.at)}: "
                "push writes only the present state; run evaluate without --now, or use --dry-run. Nothing was written")
        return False

    def _history_fresh(self) -> bool:
        complete = self._mark_instant(f"complete_to:{self.source}")
        return complete is not None and complete >= self.at - NOTES_FRESHNESS

    # -- recovering, planning ---------------------------------------------------------------

    def recover(self) -> None:
        """Notes whose push may have happened (a crash, an unknown outcome): look before re-sending."""
        rows = self.store.intents(self.source)
        seen = self.store.notes_seen(sorted({row["ticket_id"] for row in rows if row["item"].startswith("note:")}))
        for row in rows:
            if row["item"].startswith("field:") and row["item"] != f"field:{self.settings.status_field}":
                self.store.journal_forget(row["ticket_id"], row["item"])  # a field the config no longer writes
                continue
            if not row["item"].startswith("note:"):
                continue  # fields and tags are idempotent: the plan simply sends them again
            if row["pending"] in seen.get(row["ticket_id"], ()):
                self.store.journal_confirm(row["ticket_id"], [row["item"]])  # the ticket's history shows it
                continue
            try:
                found = self.connector.note_exists(row["external_id"], row["pending"])
            except NotFound:
                self.store.journal_forget(row["ticket_id"], row["item"])  # the ticket is gone
                continue
            if found:
                self.store.journal_confirm(row["ticket_id"], [row["item"]])
            elif not self._still_breached(row["ticket_id"], row["pending"]):
                self.store.journal_forget(row["ticket_id"], row["item"])  # a late event un-breached it

    def _still_breached(self, ticket_id: str, marker: str) -> bool:
        """Whether the clock a note's marker names (of any agreement) is breached as stored."""
        return any(clock.breached and note_marker(clock) == marker for clock in self.store.clocks([ticket_id]).get(ticket_id, []))

    def plans(self, size: int = 500, *, dry_run: bool = True) -> Iterator[list[tuple[WritebackPlan, Pushed]]]:
        """Plans in chunks of ``size`` tickets, so memory stays flat however large the store."""
        general_cause = refusal_cause(self.settings)
        for chunk in self.store.clocked_ticket_id_chunks(self.source, size):
            clocks = self.store.clocks(chunk)
            credits = self.store.breach_credits(chunk)
            journal = self.store.journal(chunk)
            seen = self.store.notes_seen(chunk)
            pulled = self.store.pulled(chunk) if self.settings.status_field and not dry_run else {}
            plans = []
            for ticket in self.store.tickets(chunk):
                if not self.connector.writable(ticket):
                    continue  # gone, or read-only in this helpdesk: nothing to write to
                own = clocks[ticket.id]
                rows = journal.get(ticket.id, [])
                if ticket.id in pulled:
                    rows = self._notice_not_kept(ticket, rows, *pulled[ticket.id])
                pushed = pushed_from_journal(rows, seen=seen.get(ticket.id, ()), at=self.at,
                                             causes=(general_cause, refusal_cause(self.settings, ticket)))
                if self.hold_notes:
                    self.stats.notes_held += len(notes_due(own, pushed))
                plan = plan_ticket(ticket, own, self.settings, pushed, contract=self.contracts.get(own[0].policy, ""),
                                   credits=credits.get(ticket.id), hold_notes=self.hold_notes, contracts=self.contracts)
                if plan is not None:
                    plans.append((plan, pushed))
            yield plans

    def _notice_not_kept(self, ticket: Ticket, rows: list[dict[str, Any]], pulled_run: int | None,
                         pulled_at: str | None) -> list[dict[str, Any]]:
        """The journal rows of ``ticket``, with a status value the source accepted and then did not
        keep turned into a refusal (reported, retried after a back-off or a config change).

        Kept or not shows in two ways: the ticket was read again after the push and shows the
        field empty; or it was not read again although the source's data was complete past that
        push already before this run's pull (:meth:`_settle_pushes`), so the write changed
        nothing, yet the value as read before it is not the one sent (a drop-down drops a value
        without an option, and changes nothing).
        """
        field_id = self.settings.status_field
        assert field_id is not None
        item = field_item(field_id)
        checked = []
        for row in rows:
            if row["item"] == item and row["state"] == "sent" and row["value"] is not None and row["run_id"] is not None:
                # the ticket row itself was read after the push (not just touched by new history)?
                read_after = (pulled_run is not None and pulled_run > row["run_id"] and pulled_at is not None
                              and row["updated_at"] is not None and pulled_at > row["updated_at"])
                known, value = self.connector.field_value(ticket, field_id)
                emptied = read_after and value in (None, "")
                # Not read again is only a verdict once a whole further pull has passed since the data
                # first covered the push: a ticket changed again inside the export's lag is missing from
                # that first pull (its updated_at is past the data's end) and shows in the next one.
                unchanged = (not read_after and self.settled_before is not None and row["run_id"] <= self.settled_before
                             and value != json.loads(row["value"]))
                if known and (emptied or unchanged):
                    row = self._not_kept(ticket, row)
            checked.append(row)
        return checked

    def _settle_pushes(self) -> None:
        """Which past pushes the source's data now covers: their writes would show in what was pulled.

        ``pushes:<source>`` lists (run, helpdesk instant at the end of its push) for runs that
        wrote; a run is settled once ``complete_to:<source>`` passes its instant, and the highest
        settled run is kept as ``settled_push:<source>`` (every earlier run's writes came before).
        """
        settled = self.store.mark(f"settled_push:{self.source}")
        self.settled_run = int(settled) if settled and settled.isdigit() else None
        self.settled_before = self.settled_run  # covered already before this run's pull
        complete = self._mark_instant(f"complete_to:{self.source}")
        pushes = self._pushes()
        if complete is None or not pushes:
            return
        covered = [run for run, at in pushes if from_iso(at) <= complete]
        if covered:
            self.settled_run = max([*covered, self.settled_run or 0])
            with self.store.atomic():
                self.store.set_mark(f"settled_push:{self.source}", str(self.settled_run))
                self.store.set_mark(f"pushes:{self.source}", json.dumps([[run, at] for run, at in pushes if run > self.settled_run]))

    def _pushes(self) -> list[tuple[int, str]]:
        try:
            return [(int(run), str(at)) for run, at in json.loads(self.store.mark(f"pushes:{self.source}") or "[]")]
        except (ValueError, TypeError):
            return []

    def _record_push(self) -> None:
        """This run wrote: remember until when (the helpdesk's clock), to know when its writes show."""
        clock = self.connector.http.server_time() or datetime.now(timezone.utc)
        pushes = [*self._pushes(), (self.run_id, to_iso(max(clock, self.at)))][-PUSHES_KEPT:]
        self.store.set_mark(f"pushes:{self.source}", json.dumps([[run, at] for run, at in pushes]))

    def _not_kept(self, ticket: Ticket, row: dict[str, Any]) -> dict[str, Any]:
        sent, item, count = json.loads(row["value"]), row["item"], int(row.get("refusals") or 0)
        reason = f"the source did not keep value {sent!r}"
        cause, retry_at = refusal_cause(self.settings), self.at + refusal_backoff(count)
        with self.store.atomic():
            self.store.journal_intend(self.run_id, [(ticket.id, item, row["value"])])
            self.store.journal_refuse(ticket.id, [item], reason=reason, cause=cause, retry_at=retry_at)
        self.stats.not_kept[item] = self.stats.not_kept.get(item, 0) + 1
        self.stats.refusal_reasons.setdefault(item, f"{reason} (ticket {ticket.external_id})")
        log.info("source %r: ticket %s does not show %s = %r as pushed; retried after %s", self.source, ticket.external_id,
                 item, sent, format_duration(int((retry_at - self.at).total_seconds())))
        return {**row, "state": "refused", "cause": cause, "retry_at": to_iso(retry_at), "refusals": count + 1}

    # -- pushing, settling -----------------------------------------------------------------

    def _already_noted(self, chunk: list[tuple[WritebackPlan, Pushed]]) -> list[tuple[WritebackPlan, Pushed]]:
        """Where the history does not show notes, look on the ticket before posting one: a new or
        restored store must not post a note the ticket already holds. Found notes are journaled
        as sent and left out of the plan."""
        if self.connector.writes.notes_in_history:
            return chunk
        kept = []
        for plan, pushed in chunk:
            found = [note for note in plan.notes if self.connector.note_exists(plan.external_id, note.marker)]
            if found:
                items = [note_item(note.marker) for note in found]
                with self.store.atomic():
                    self.store.journal_intend(self.run_id, [(plan.ticket_id, item, note.marker) for item, note in zip(items, found, strict=True)])
                    self.store.journal_confirm(plan.ticket_id, items)
                plan.notes = [note for note in plan.notes if note not in found]
            if not plan.is_empty():
                kept.append((plan, pushed))
        return kept

    def _push_chunk(self, chunk: list[tuple[WritebackPlan, Pushed]]) -> None:
        chunk = self._already_noted(chunk)
        if not chunk:
            return
        self.store.journal_intend(self.run_id, [entry for plan, pushed in chunk for entry in intents(plan, pushed)])
        by_ticket = {plan.ticket_id: (plan, pushed) for plan, pushed in chunk}
        try:
            for result in self.connector.write([plan for plan, _ in chunk]):
                entry = by_ticket.pop(result.ticket_id, None)
                if entry is None:
                    log.warning("source %r: the connector reported on ticket %s, which was not in the plan", self.source,
                                result.ticket_id)
                    continue
                self._settle(*entry, result)
        except BadRequest as error:
            # A refusal every ticket would meet (a field of ours the helpdesk does not take): the
            # connector stops the source; the intents stay open, so the next run writes them again.
            self._count_stopping_refusal(error, [plan for plan, _ in by_ticket.values()])
            raise
        for plan, _ in by_ticket.values():  # never reported: the intents stay open for the next run
            log.warning("source %r: no result for ticket %s; left for the next run", self.source, plan.external_id)
            self.stats.conflicts += 1

    def _count_stopping_refusal(self, error: BadRequest, unsettled: Iterable[WritebackPlan]) -> None:
        named = sorted({field_item(field_id) for plan in unsettled for field_id in plan.set_fields if field_id in error.detail})
        for item in named:
            self.stats.refuse(item, error.detail)
        self.items_refused += len(named)

    def _settle(self, plan: WritebackPlan, pushed: Pushed, result: WritebackResult) -> None:
        crash_point("push:sent")  # between a push and its journal entry
        outcomes = result.outcomes()
        details = {item.item: item.detail for item in result.items}
        items = plan.items()
        sent = [item for item in items if outcomes.get(item) == "sent"]
        refused = [item for item in items if outcomes.get(item) == "refused"]
        if sent:
            self.store.journal_confirm(plan.ticket_id, sent)
            self.stats.writes_sent += 1
            self.stats.notes_sent += sum(1 for item in sent if item.startswith("note:"))
            self.items_sent += len(sent)
        if refused:
            # Kept with why, what it depended on and when to try again: retried once any may have changed.
            # Items of ours that landed with it changed the ticket: its version then is not one to watch.
            cause = refusal_cause(self.settings, None if sent else plan.ticket)
            groups: dict[tuple[str, int], list[str]] = {}
            for item in refused:
                groups.setdefault((details.get(item) or result.detail, pushed.refusals.get(item, 0)), []).append(item)
            for (reason, count), group in groups.items():
                self.store.journal_refuse(plan.ticket_id, group, reason=reason, cause=cause, retry_at=self.at + refusal_backoff(count))
                for item in group:
                    self.stats.refuse(refusal_key(item), f"{reason} (ticket {plan.external_id})" if reason else f"ticket {plan.external_id}")
            self.stats.writes_refused += 1
            self.items_refused += len(refused)
            log.info("source %r: ticket %s refused the write-back: %s", self.source, plan.external_id, result.detail)
        if len(sent) + len(refused) < len(items):
            self.stats.conflicts += 1  # intents stay open: the next run re-plans from what it pulls

    # -- what the run says ------------------------------------------------------------------

    def _conclude(self, *, finished: bool) -> None:
        """The lines that make this source's push partial: held notes, values not kept, all refused."""
        name = self.source
        if self.stats.notes_held:
            complete = self.store.mark(f"complete_to:{name}")
            self.stats.problem(
                f"source {name!r}: {self.stats.notes_held} breach note(s) held: the store knows this source's ticket history only "
                f"up to {complete or 'no point yet'}, more than {format_duration(int(NOTES_FRESHNESS.total_seconds()))} before "
                f"the helpdesk's clock ({to_iso(self.at)}), so a note may already be on its ticket (a restored or new store). "
                "Run `sla-bridge pull` or `sync` first; fields and tags were written")
        title = self.connector.title or self.connector.system
        for item, count in sorted(self.stats.not_kept.items()):
            self.stats.problem(
                f"source {name!r}: {title} did not keep {count} value(s) sla-bridge wrote to {item} "
                f"({self.stats.refusal_reasons.get(item, '')}): a drop-down without that option drops it silently. Add the options "
                f"breached, at_risk, on_track and met to the field, or point sources.{name}.writeback.status_field at a text field; "
                f"retried after {_backoff_text()} or once the write-back settings change")
        if finished and self.items_refused and not self.items_sent:
            counts = ", ".join(f"{key} ({count})" for key, count in sorted(self.stats.refused.items()))
            sample = next((self.stats.refusal_reasons[key] for key in sorted(self.stats.refused) if key in self.stats.refusal_reasons), "")
            self.stats.problem(
                f"source {name!r}: every write this run was refused: {counts}" + (f"; e.g. {sample}" if sample else "")
                + f". Retried once the write-back settings or the ticket change, or after {_backoff_text()}; "
                "`sla-bridge status` lists them")


def _backoff_text() -> str:
    first, most = (format_duration(int(d.total_seconds())) for d in (REFUSAL_BACKOFF, REFUSAL_BACKOFF_MAX))
    return f"a back-off ({first}, doubling, at most {most})"

