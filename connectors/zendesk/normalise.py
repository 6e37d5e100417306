"""Zendesk records -> the normalised model. Pure functions of the raw JSON and the config.

See BEHAVIOR.md for the vendor quirks handled here (deleted tickets, polymorphic custom fields,
the two shapes of change events, agent vs customer comments).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from bridge.config import SourceConfig
from bridge.errors import SkippableRecordError
from bridge.model import Ticket, TicketEvent, from_iso

__all__ = ["DEFAULT_PRIORITIES", "DEFAULT_STATUSES", "ZendeskMapper"]

# Zendesk's built-in values onto the canonical ones; config entries add to or replace these.
DEFAULT_STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "waiting_customer",
    "hold": "on_hold",
    "solved": "resolved",
    "closed": "closed",
    "deleted": "deleted",  # only in exports; absent from the OpenAPI enum
}
DEFAULT_PRIORITIES = {"urgent": "p1", "high": "p2", "normal": "p3", "low": "p4"}
DEFAULT_FIELDS = {"customer": "organization", "group": "group", "type": "type"}


class ZendeskMapper:
    """Maps one source's records; counts the raw values its config does not map."""

    def __init__(self, source: str, config: SourceConfig) -> None:
        self.source = source
        self.base_url = config.url
        self.statuses = {**DEFAULT_STATUSES, **config.statuses}
        self.priorities = {**DEFAULT_PRIORITIES, **config.priorities}
        self.fields = {**DEFAULT_FIELDS, **config.fields}
        self.unmapped: Counter[str] = Counter()

    def status(self, raw: str | None) -> str:
        if raw is None:
            return "new"
        if raw in self.statuses:
            return self.statuses[raw]
        self.unmapped[f"status {raw!r}"] += 1
        return raw  # kept raw: reported, never a crash

    def priority(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        if raw in self.priorities:
            return self.priorities[raw]
        self.unmapped[f"priority {raw!r}"] += 1
        return None

    def ticket(self, raw: Mapping[str, Any], names: Mapping[str, Mapping[int, str]]) -> Ticket:
        """One exported ticket; ``names`` holds sideloaded ``organizations`` and ``groups`` by id."""
        number = raw.get("id")
        if not isinstance(number, int):
            raise SkippableRecordError("ticket without an integer id", source=self.source, record_id=str(number))
        try:
            created = _instant(raw["created_at"])
            updated = _instant(raw.get("updated_at") or raw["created_at"])
        except (KeyError, TypeError, ValueError) as error:
            raise SkippableRecordError(
                f"ticket {number}: unreadable created_at/updated_at ({error})", source=self.source, record_id=str(number)
            ) from None
        custom = {str(item.get("id")): item.get("value") for item in raw.get("custom_fields") or [] if isinstance(item, dict)}
        status_raw = raw.get("status")
        return Ticket(
            source=self.source,
            system="zendesk",
            external_id=str(number),
            key=f"#{number}",
            url=f"{self.base_url}/agent/tickets/{number}",
            title=raw.get("subject") or "",
            status=self.status(status_raw),
            status_raw=status_raw or "",
            priority=self.priority(raw.get("priority")),
            priority_raw=raw.get("priority"),
            customer=self._field("customer", raw, custom, names),
            requester=_text(raw.get("requester_id")),
            assignee=_text(raw.get("assignee_id")),
            group=self._field("group", raw, custom, names),
            service=self._field("service", raw, custom, names),
            type=self._field("type", raw, custom, names),
            created_at=created,
            updated_at=updated,
            fields=custom,
            tags=[tag for tag in raw.get("tags") or [] if isinstance(tag, str)],
            version=raw.get("updated_at"),  # safe_update's updated_stamp
        )

    def _field(self, name: str, raw: Mapping[str, Any], custom: Mapping[str, Any], names: Mapping[str, Mapping[int, str]]) -> str | None:
        spec = self.fields.get(name)
        if spec is None:
            return None
        if spec.startswith("custom_field:"):
            return _text(custom.get(spec.split(":", 1)[1]))
        if spec in ("organization", "group"):
            ref = raw.get(f"{spec}_id")
            if ref is None:
                return None
            return names.get(f"{spec}s", {}).get(ref) or _text(ref)  # the name when sideloaded
        return _text(raw.get(spec))

    def events(self, raw: Mapping[str, Any], agents: set[int]) -> list[TicketEvent]:
        """The clock-moving parts of one ticket event: status and priority changes, public comments."""
        number = raw.get("ticket_id")
        if not isinstance(number, int):
            raise SkippableRecordError("ticket event without a ticket_id", source=self.source, record_id=str(raw.get("id")))
        try:
            at = _instant(raw["created_at"]) if raw.get("created_at") else datetime.fromtimestamp(int(raw["timestamp"]), timezone.utc)
        except (KeyError, TypeError, ValueError) as error:
            raise SkippableRecordError(f"ticket event {raw.get('id')}: no usable time ({error})", source=self.source, record_id=str(raw.get("id"))) from None
        ticket_id = f"{self.source}:{number}"
        result: list[TicketEvent] = []
        for child in raw.get("child_events") or []:
            if not isinstance(child, dict) or "id" not in child:
                continue
            kind = child.get("event_type") or child.get("type")
            if kind == "Comment":
                if child.get("public") is not True:
                    continue  # internal notes (ours included) never move a clock
                author = child.get("author_id")
                try:
                    when = _instant(child["created_at"]) if child.get("created_at") else at
                except (TypeError, ValueError) as error:
                    raise SkippableRecordError(f"ticket event {raw.get('id')}: unreadable comment time ({error})",
                                               source=self.source, record_id=str(raw.get("id"))) from None
                reply = "agent_reply" if author in agents else "customer_reply"
                result.append(TicketEvent(ticket_id, f"c{child['id']}", reply, when, author=_text(author)))
                continue
            if kind not in ("Create", "Change"):
                continue
            for name, value, previous in _changes(child):
                if name == "status":
                    result.append(TicketEvent(
                        ticket_id, f"s{child['id']}", "status", at,
                        from_value=self.status(previous) if previous else None, to_value=self.status(value),
                    ))
                elif name == "priority":
                    result.append(TicketEvent(
                        ticket_id, f"p{child['id']}", "priority", at,
                        from_value=self.priority(previous) if previous else None, to_value=self.priority(value),
                    ))
        return result


def _changes(child: Mapping[str, Any]) -> Iterable[tuple[str, Any, Any]]:
    """Both shapes: the export's ``{"status": "open", "previous_value": "new"}`` and the
    audit-style ``{"field_name": "status", "value": "open", "previous_value": "new"}``."""
    if "field_name" in child:
        yield str(child["field_name"]), child.get("value"), child.get("previous_value")
        return
    for name in ("status", "priority"):
        if name in child:
            yield name, child[name], child.get("previous_value")


def _instant(text: str) -> datetime:
    return from_iso(text)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
