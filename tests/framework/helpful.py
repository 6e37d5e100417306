"""A connector for "Helpful", a made-up helpdesk, written with the framework alone.

Its API: ``GET /api/tickets?changed_since=<ms>&page_token=..`` (minute-granular, history
inline: states, replies, team handoffs), ``PATCH /api/tickets/{id}`` (fields and labels), ``GET|POST /api/tickets/{id}/notes``
(pages linked by ``next``). The whole connector is this file: it declares, the core runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from bridge.framework.contract import Connector, CredentialCheck, FieldInfo, ItemResult, WritebackResult, WriteCapabilities
from bridge.framework.paginators import NextUrlPaginator, Request, TokenPaginator
from bridge.framework.source import SourceConfig
from bridge.framework.streams import FromWatermark, Stream, paginate
from bridge.model import Ticket, TicketEvent, WritebackPlan, from_iso, note_item


class HelpfulConfig(SourceConfig):
    system: Literal["helpful"] = "helpful"


class HelpfulConnector(Connector):
    system = "helpful"
    config_model = HelpfulConfig
    writes = WriteCapabilities(status_field=True, tags=True, notes=True, tag_word="labels")
    default_statuses = {"open": "open", "waiting": "waiting_customer", "done": "resolved", "closed": "closed", "deleted": "deleted"}
    default_priorities = {"critical": "p1", "high": "p2", "normal": "p3", "low": "p4"}

    def check_credentials(self) -> CredentialCheck:
        return CredentialCheck(self.http.get_json("/api/me")["name"])

    def list_fields(self) -> list[FieldInfo]:
        return [FieldInfo("sla_status", "SLA status", "text")]

    def streams(self) -> Sequence[Stream]:
        return [Stream(
            "tickets", Request("/api/tickets", {"limit": 25}),
            paginator=lambda: TokenPaginator(token="next_page_token", param="page_token"),
            resume=FromWatermark(position=lambda raw: (from_iso(raw["changed"]), str(raw["id"])),
                                 since=lambda request, at: request.with_params(changed_since=int(at.timestamp() * 1000)),
                                 overlap=timedelta(minutes=1), granularity=timedelta(minutes=1)),
            records="tickets", normalise=self.ticket,
        )]

    def ticket(self, raw: Mapping[str, Any], context: object) -> list[Ticket | TicketEvent]:
        created, number = from_iso(raw["created"]), raw["id"]
        ticket = Ticket(self.name, self.system, str(number), f"H-{number}", raw["subject"], self.values.status(raw["state"]),
                        raw["state"], created, from_iso(raw["changed"]), priority=self.values.priority(raw["urgency"]),
                        priority_raw=raw["urgency"], customer=raw["account"], tags=list(raw["labels"]), group=raw["team"])
        return [ticket, *(self.event(ticket.id, item) for item in raw["history"])]

    def event(self, ticket_id: str, item: Mapping[str, Any]) -> TicketEvent:
        at = from_iso(item["at"])
        if item["kind"] == "team":  # handed between teams: what OLAs run on
            return TicketEvent(ticket_id, item["id"], "group", at, item["from"], item["to"])
        if item["kind"] == "state":
            before = self.values.status(item["from"]) if item.get("from") else None
            return TicketEvent(ticket_id, item["id"], "status", at, before, self.values.status(item["to"]))
        return TicketEvent(ticket_id, item["id"], "agent_reply" if item["by"] == "agent" else "customer_reply", at)

    def writable(self, ticket: Ticket) -> bool:
        return ticket.status_raw not in ("closed", "deleted")

    def write_one(self, plan: WritebackPlan) -> WritebackResult:
        """Fields and labels in one PATCH, each note in a POST: a result per item."""
        results = []
        if plan.set_fields or plan.add_tags or plan.remove_tags:
            change = {**plan.set_fields, "add_labels": plan.add_tags, "remove_labels": plan.remove_tags}
            answer = self.http.request("PATCH", f"/api/tickets/{plan.external_id}", json=change, accept=(404, 409))
            outcome = "refused" if answer.status_code >= 400 else "sent"
            results += [ItemResult(item, outcome, answer.reason_phrase) for item in plan.items() if not item.startswith("note:")]
        for note in plan.notes:
            answer = self.http.request("POST", f"/api/tickets/{plan.external_id}/notes", json={"body": note.body, "internal": True},
                                       accept=(404, 422), idempotent=False)
            results.append(ItemResult(note_item(note.marker), "refused" if answer.status_code >= 400 else "sent", answer.reason_phrase))
        return WritebackResult(plan.ticket_id, tuple(results))

    def note_exists(self, external_id: str, marker: str) -> bool:
        pages = paginate(self.http, Request(f"/api/tickets/{external_id}/notes"), NextUrlPaginator(path="next"), records="notes")
        return any(marker in note["body"] for data in pages for note in data["notes"])
