"""Zendesk records -> the normalised model. Pure functions of the raw JSON and the config.

See BEHAVIOR.md for the vendor quirks handled here (deleted tickets, polymorphic custom fields,
the two shapes of change events, agent vs customer comments by the author's role when they
wrote, sla-bridge's markers in internal notes, group changes named as the ticket names its
group). Anything malformed raises: the pull loop quarantines that record, with the reason, and
the page goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bridge.framework.mapping import ValueMapper, instant
from bridge.framework.roster import AgentRoster
from bridge.model import EventKind, Ticket, TicketEvent, markers_in

__all__ = ["DEFAULT_FIELDS", "DEFAULT_PRIORITIES", "DEFAULT_STATUSES", "History", "ZendeskRecords", "sideloaded_names"]

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

Names = Mapping[str, Mapping[Any, Any]]
# Built-in fields the ticket holds as an id (``group_id``, ...); a change event names them so too.
_BY_ID = ("organization", "group", "assignee", "requester", "brand", "ticket_form", "custom_status")
_NAMED = ("organization", "group")  # read by name, as the ticket's sideloads name them


@dataclass(frozen=True, slots=True)
class History:
    """What the ticket-event export's records share: who was an agent when, and
    ``names(kind, id)``, the name of an ``organizations`` or ``groups`` id (None: unknown)."""

    roster: AgentRoster
    names: Callable[[str, str], Any]


def sideloaded_names(data: Any) -> Names:
    """The organisation and group names an export page sideloads, by id."""
    return {
        kind: {item["id"]: item.get("name") for item in data.get(kind) or [] if isinstance(item, dict) and "id" in item}
        for kind in ("organizations", "groups")
    }


class ZendeskRecords:
    """Normalises one source's tickets and ticket events."""

    def __init__(self, source: str, base_url: str, values: ValueMapper, fields: Mapping[str, str]) -> None:
        self.source = source
        self.base_url = base_url
        self.values = values
        self.fields = fields

    def ticket(self, raw: Any, names: Names) -> list[Ticket]:
        """One exported ticket; ``names`` holds sideloaded ``organizations`` and ``groups`` by id."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a ticket record is a {type(raw).__name__}, not an object")
        number = raw.get("id")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"ticket without an integer id ({number!r})")
        created = instant(raw.get("created_at"), f"ticket {number}: created_at")
        updated = instant(raw.get("updated_at") or raw.get("created_at"), f"ticket {number}: updated_at")
        custom = {str(item.get("id")): item.get("value") for item in _list(raw.get("custom_fields")) if isinstance(item, dict)}
        status_raw = raw.get("status")
        return [Ticket(
            source=self.source,
            system="zendesk",
            external_id=str(number),
            key=f"#{number}",
            url=f"{self.base_url}/agent/tickets/{number}",
            title=_text(raw.get("subject")) or "",
            status=self.values.status(status_raw),
            status_raw=_text(status_raw) or "",
            priority=self.values.priority(raw.get("priority")),
            priority_raw=_text(raw.get("priority")),
            customer=self._field("customer", raw, custom, names),
            requester=_text(raw.get("requester_id")),
            assignee=_text(raw.get("assignee_id")),
            group=self._field("group", raw, custom, names),
            service=self._field("service", raw, custom, names),
            type=self._field("type", raw, custom, names),
            created_at=created,
            updated_at=updated,
            fields=custom,
            tags=[tag for tag in _list(raw.get("tags")) if isinstance(tag, str)],
            version=_text(raw.get("updated_at")),  # safe_update's updated_stamp
        )]

    def _field(self, name: str, raw: Mapping[str, Any], custom: Mapping[str, Any], names: Names) -> str | None:
        spec = self.fields.get(name)
        if spec is None:
            return None
        if spec.startswith("custom_field:"):
            return _text(custom.get(spec.split(":", 1)[1]))
        if spec in ("organization", "group"):
            ref = raw.get(f"{spec}_id")
            if ref is None:
                return None
            found = names.get(f"{spec}s", {}).get(ref) if isinstance(ref, int | str) else None
            return _text(found) or _text(ref)  # the name when sideloaded
        if spec not in raw and f"{spec}_id" in raw:
            return _text(raw.get(f"{spec}_id"))  # assignee, requester, brand, custom_status: an id
        return _text(raw.get(spec))

    def events(self, raw: Any, history: History) -> list[TicketEvent]:
        """The parts of one ticket event that matter: status and priority changes, changes of
        the field mapped to ``group`` (named as ``Ticket.group`` names it), public comments (an
        agent's reply iff the roster says the author was an agent when they wrote it), and the
        sla-bridge markers in internal notes (``note`` events, which move no clock)."""
        roster = history.roster
        if not isinstance(raw, Mapping):
            raise ValueError(f"a ticket event is a {type(raw).__name__}, not an object")
        number = raw.get("ticket_id")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"ticket event {raw.get('id')} without an integer ticket_id")
        if raw.get("created_at"):
            at = instant(raw["created_at"], f"ticket event {raw.get('id')}: created_at")
        else:
            stamp = raw.get("timestamp")
            if not isinstance(stamp, int) or isinstance(stamp, bool):
                raise ValueError(f"ticket event {raw.get('id')}: no usable time")
            at = datetime.fromtimestamp(stamp, timezone.utc)
        ticket_id = f"{self.source}:{number}"
        group_key = self._history_key("group")
        result: list[TicketEvent] = []
        for child in _list(raw.get("child_events")):
            if not isinstance(child, dict) or "id" not in child:
                continue
            kind = child.get("event_type") or child.get("type")
            if kind == "Comment":
                author = child.get("author_id")
                when = instant(child["created_at"], f"ticket event {raw.get('id')}: comment time") if child.get("created_at") else at
                if child.get("public") is not True:
                    # An internal note never moves a clock; the markers in it say which of
                    # sla-bridge's notes the ticket already holds (whichever store posted them).
                    result.extend(TicketEvent(ticket_id, f"n{child['id']}:{index}", "note", when, to_value=marker, author=_text(author))
                                  for index, marker in enumerate(_markers(child), start=1))
                    continue
                reply: EventKind = "agent_reply" if roster.was_agent(_text(author), when) else "customer_reply"
                result.append(TicketEvent(ticket_id, f"c{child['id']}", reply, when, author=_text(author)))
                continue
            if kind not in ("Create", "Change"):
                continue
            for name, value, previous in _changes(child, group_key):
                if name == group_key and kind == "Change":
                    # Only changes: the evaluator takes the first one's from_value (or Ticket.group) as the
                    # group before it. An id no look-up names keeps its text, as Ticket.group does.
                    result.append(TicketEvent(
                        ticket_id, f"g{child['id']}", "group", at, from_value=self._name("group", previous, history),
                        to_value=self._name("group", value, history), author=_text(raw.get("updater_id")),
                    ))
                if name == "status":
                    result.append(TicketEvent(
                        ticket_id, f"s{child['id']}", "status", at,
                        from_value=self.values.status(previous) if previous else None, to_value=self.values.status(value),
                    ))
                elif name == "priority":
                    result.append(TicketEvent(
                        ticket_id, f"p{child['id']}", "priority", at,
                        from_value=self.values.priority(previous) if previous else None, to_value=self.values.priority(value),
                    ))
        return result

    def _history_key(self, role: str) -> str | None:
        """How a change event names the field mapped to ``role``: ``group_id`` for the built-in
        group, the field's id for ``custom_field:ID`` (the audit's ``field_name``), else the name."""
        spec = self.fields.get(role)
        if spec is None:
            return None
        if spec.startswith("custom_field:"):
            return spec.split(":", 1)[1]
        return f"{spec}_id" if spec in _BY_ID else spec

    def _name(self, role: str, value: Any, history: History) -> str | None:
        """``value`` of the field mapped to ``role`` as ``Ticket`` carries it: a group or an
        organisation by its name when known, else the id's text; any other field as text."""
        ref = _text(value)
        spec = self.fields.get(role)
        if ref is None or spec not in _NAMED:
            return ref
        return _text(history.names(f"{spec}s", ref)) or ref


def _markers(comment: Mapping[str, Any]) -> list[str]:
    """sla-bridge's markers in a comment event, from its ``body`` and its ``html_body`` (either may be absent)."""
    texts = [value for value in (comment.get("body"), comment.get("html_body")) if isinstance(value, str)]
    return list(dict.fromkeys(marker for text in texts for marker in markers_in(text)))


def _changes(child: Mapping[str, Any], extra: str | None = None) -> Iterable[tuple[str, Any, Any]]:
    """Both shapes: the export's ``{"status": "open", "previous_value": "new"}`` and the
    audit-style ``{"field_name": "status", "value": "open", "previous_value": "new"}``; ``extra``
    is one more field read in the export's shape (``group_id``)."""
    if "field_name" in child:
        yield str(child["field_name"]), child.get("value"), child.get("previous_value")
        return
    for name in dict.fromkeys(("status", "priority", extra)):
        if name is not None and name in child:
            yield name, child[name], child.get("previous_value")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
