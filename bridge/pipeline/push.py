"""Push: the planned difference, journaled item by item, and settled item by item.

Every item (a field by its id, the tags, each note by its marker) is journaled as an intent
before its plan is sent and settled as the connector reports it: ``sent`` becomes the confirmed
value, ``refused`` is kept as done so it is reported once and never retried, ``conflict`` (or no
report at all) leaves the intent open for the next run to plan again from what it pulls. Before
pushing, a note whose outcome is unknown (a crash, a timeout) is looked for on the ticket by its
marker, so each breach gets exactly one note whatever happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from bridge.edges.store import Store
from bridge.errors import NotFound
from bridge.framework.contract import Connector, WritebackResult
from bridge.framework.source import WritebackConfig
from bridge.model import WritebackPlan
from bridge.pipeline.faults import crash_point
from bridge.pipeline.plan import Pushed, intents, marker_clock, plan_ticket, pushed_from_journal
from bridge.pipeline.report import SourceStats

__all__ = ["Push"]

log = logging.getLogger("sla_bridge.push")


class Push:
    """The write-back of one source in one run."""

    def __init__(self, store: Store, connector: Connector, settings: WritebackConfig, contracts: Mapping[str, str], *,
                 run_id: int, stats: SourceStats) -> None:
        self.store, self.connector, self.settings, self.contracts = store, connector, settings, contracts
        self.run_id, self.stats = run_id, stats
        self.source = connector.name

    def run(self, *, dry_run: bool = False) -> list[WritebackPlan]:
        """Push (or, dry, only plan) everything that differs; the plans when dry."""
        if not self.settings.enabled:
            return []
        if not dry_run:
            self.recover()
        planned: list[WritebackPlan] = []
        for chunk in self.plans():
            if dry_run:
                planned.extend(plan for plan, _ in chunk)
            elif chunk:
                self._push_chunk(chunk)
        return planned

    def plans(self, size: int = 500) -> Iterator[list[tuple[WritebackPlan, Pushed]]]:
        """Plans in chunks of ``size`` tickets, so memory stays flat however large the store."""
        for chunk in self.store.clocked_ticket_id_chunks(self.source, size):
            clocks = self.store.clocks(chunk)
            credits = self.store.breach_credits(chunk)
            journal = self.store.journal(chunk)
            plans = []
            for ticket in self.store.tickets(chunk):
                if not self.connector.writable(ticket):
                    continue  # gone, or read-only in this helpdesk: nothing to write to
                own = clocks[ticket.id]
                pushed = pushed_from_journal(journal.get(ticket.id, []))
                plan = plan_ticket(ticket, own, self.settings, pushed, contract=self.contracts.get(own[0].policy, ""),
                                   credits=credits.get(ticket.id))
                if plan is not None:
                    plans.append((plan, pushed))
            yield plans

    def recover(self) -> None:
        """Notes whose push may have happened (a crash, an unknown outcome): look before re-sending."""
        for row in self.store.intents(self.source):
            if row["item"].startswith("field:") and row["item"] != f"field:{self.settings.status_field}":
                self.store.journal_forget(row["ticket_id"], row["item"])  # a field the config no longer writes
                continue
            if not row["item"].startswith("note:"):
                continue  # fields and tags are idempotent: the plan simply sends them again
            try:
                found = self.connector.note_exists(row["external_id"], row["pending"])
            except NotFound:
                self.store.journal_forget(row["ticket_id"], row["item"])  # the ticket is gone
                continue
            if found:
                self.store.journal_confirm(row["ticket_id"], [row["item"]])
            elif self.store.clock_state(*marker_clock(row["pending"])) != "breached":
                self.store.journal_forget(row["ticket_id"], row["item"])  # a late event un-breached it

    def _push_chunk(self, chunk: list[tuple[WritebackPlan, Pushed]]) -> None:
        self.store.journal_intend(self.run_id, [entry for plan, pushed in chunk for entry in intents(plan, pushed)])
        by_ticket = {plan.ticket_id: plan for plan, _ in chunk}
        for result in self.connector.write([plan for plan, _ in chunk]):
            plan = by_ticket.pop(result.ticket_id, None)
            if plan is None:
                log.warning("source %r: the connector reported on ticket %s, which was not in the plan", self.source, result.ticket_id)
                continue
            self._settle(plan, result)
        for plan in by_ticket.values():  # never reported: the intents stay open for the next run
            log.warning("source %r: no result for ticket %s; left for the next run", self.source, plan.external_id)
            self.stats.conflicts += 1

    def _settle(self, plan: WritebackPlan, result: WritebackResult) -> None:
        crash_point("push:sent")  # between a push and its journal entry
        outcomes = result.outcomes()
        items = plan.items()
        sent = [item for item in items if outcomes.get(item) == "sent"]
        refused = [item for item in items if outcomes.get(item) == "refused"]
        if sent:
            self.store.journal_confirm(plan.ticket_id, sent)
            self.stats.writes_sent += 1
            self.stats.notes_sent += sum(1 for item in sent if item.startswith("note:"))
        if refused:
            # Refused for good (gone, read-only): recorded so it is reported once, not retried forever.
            self.store.journal_refuse(plan.ticket_id, refused)
            self.stats.writes_refused += 1
            log.info("source %r: ticket %s refused the write-back: %s", self.source, plan.external_id, result.detail)
        if len(sent) + len(refused) < len(items):
            self.stats.conflicts += 1  # intents stay open: the next run re-plans from what it pulls
