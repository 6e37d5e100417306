"""Jira Service Management records -> the normalised model. Pure functions of the raw JSON and the config.

What is handled here (see ../shared/reference/jira-api.md, sections 2.3, 3, 4.5, 5.2 and 11):

- Times come as ``2026-11-01T12:00:00.000+0100``, in the site's default user zone and with
  offsets that change with DST inside one response: each is parsed with its own offset, never
  read as UTC, and a time without one is refused.
- Statuses and priorities: ids are stable, names are renamed and localised. The raw value kept
  (and mapped) is the id where the config's table maps the id, else the name; so a site maps by
  id (``statuses = {"10007" = "waiting_customer"}``) or by name, and an unmapped value is
  reported by its readable name.
- Changelog items carry ids (``from``/``to``) and names (``fromString``/``toString``); "Link"
  items have no ``fieldId``, and a custom field may be *named* "Status" (its ``fieldId`` is
  ``customfield_…``), so an item is a status change by its ``fieldId`` when it has one.
- The field mapped to the ``group`` role (a select, a group picker, a Team field) is read from
  the same changelog: each change is a ``group`` event whose names are the item's display
  strings, the text :meth:`JiraRecords.ticket` takes for ``Ticket.group`` (an option's value, a
  group's or team's name); an item that carries no display string (possibly a deleted group,
  or a Team item shown by id) keeps its raw id, never dropped. A custom item without a
  ``fieldId`` is matched by the field's name, when the connector knows it.
- Comments come in two shapes: platform comments (``created`` a string, ``body`` ADF in v3 or
  text in v2, internal when ``jsdPublic`` is false or the ``sd.public.comment`` property says
  ``internal: true``) and JSM request comments (``created`` a ``DateDTO``, ``body`` text,
  ``public``). Internal comments never move a clock; sla-bridge's markers in them become
  ``note`` events.
- JSM's SLA fields are kept as they are, for reconciliation, never for verdicts; their three
  "nothing" shapes (null, no cycles at all, an error object outside a service project) are None.

Anything malformed raises ``ValueError`` naming the issue: the pull loop quarantines that record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bridge.framework.mapping import ValueMapper, instant
from bridge.framework.roster import AgentRoster
from bridge.model import EventKind, Ticket, TicketEvent, markers_in

__all__ = [
    "DEFAULT_PRIORITIES",
    "DEFAULT_STATUSES",
    "JiraRecords",
    "adf_text",
    "comment_is_internal",
]

# The statuses of JSM's built-in service project workflows, by their English names. A site in
# another language, or with renamed statuses, maps them in the config (by id is the stable way).
DEFAULT_STATUSES = {
    "Open": "open",
    "To Do": "new",
    "Waiting for support": "open",
    "In Progress": "open",
    "In progress": "open",
    "Work in progress": "open",
    "Escalated": "open",
    "Waiting for customer": "waiting_customer",
    "Pending": "on_hold",
    "Resolved": "resolved",
    "Done": "resolved",
    "Closed": "closed",
    "Canceled": "canceled",
    "Declined": "canceled",
}
DEFAULT_PRIORITIES = {"Highest": "p1", "High": "p2", "Medium": "p3", "Low": "p4", "Lowest": "p5"}

_ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
_ISSUE_ID = re.compile(r"[1-9][0-9]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_MILLIS_FROM = 10**11  # a number this large is milliseconds (1973 on); below it, seconds (until year 5138)


class JiraRecords:
    """Normalises one source's issues, their history and their SLA fields.

    ``fields`` maps a role (``customer``, ``service``, ``type``, ``group``) onto a Jira field id
    already resolved for this site (``customfield_10002`` for Organizations, ``issuetype``,
    ``components``); the connector resolves names from the config through ``/rest/api/3/field``.
    """

    def __init__(self, source: str, base_url: str, values: ValueMapper, fields: Mapping[str, str],
                 *, group_name: str | None = None) -> None:
        """``group_name`` is the display name of the field ``fields["group"]`` names, where the
        site's field list gives it one no other field shares: a changelog item of that custom
        field that comes without a ``fieldId`` is then still read as a group change."""
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.values = values
        self.fields = fields
        self.group_name = group_name

    def ticket(self, raw: Any, context: object = None) -> list[Ticket]:
        """One issue from ``/rest/api/3/search/jql`` (or ``issue/bulkfetch``); ``context`` is unused."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"an issue record is a {type(raw).__name__}, not an object")
        number, key = raw.get("id"), raw.get("key")
        name = f"issue {key}" if isinstance(key, str) and key else f"issue id {number!r}"
        if not isinstance(number, str) or not _ISSUE_ID.fullmatch(number):
            raise ValueError(f"{name}: id is {number!r}, not a numeric string")
        if not isinstance(key, str) or not _ISSUE_KEY.fullmatch(key):
            raise ValueError(f"issue id {number}: key is {key!r}, not an issue key like SUP-123")
        fields = raw.get("fields")
        if not isinstance(fields, Mapping):
            raise ValueError(f"{name}: fields is {type(fields).__name__}, not an object (ask the search for fields)")
        created = instant(fields.get("created"), f"{name}: fields.created")
        updated_text = fields.get("updated") or fields.get("created")
        updated = instant(updated_text, f"{name}: fields.updated")
        resolved = fields.get("resolutiondate")
        status = fields.get("status")
        if not isinstance(status, Mapping):
            raise ValueError(f"{name}: fields.status is {status!r}, not a status object (is status among the fields asked for?)")
        status_raw = _pick(status.get("id"), status.get("name"), self.values.statuses, f"{name}: fields.status")
        if status_raw is None:
            raise ValueError(f"{name}: fields.status has neither an id nor a name")
        priority = fields.get("priority")
        if priority is not None and not isinstance(priority, Mapping):
            raise ValueError(f"{name}: fields.priority is {priority!r}, not a priority object")
        priority_raw = _pick(priority.get("id"), priority.get("name"), self.values.priorities, f"{name}: fields.priority") if priority else None
        labels = fields.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(label, str) for label in labels)):
            raise ValueError(f"{name}: fields.labels is {labels!r}, not a list of labels")
        return [Ticket(
            source=self.source,
            system="jira",
            external_id=number,  # the id survives a move to another project; the key does not
            key=key,
            url=f"{self.base_url}/browse/{key}",
            title=_text(fields.get("summary")) or "",
            status=self.values.status(status_raw),
            status_raw=status_raw,
            priority=self.values.priority(priority_raw),
            priority_raw=priority_raw,
            customer=self._field("customer", fields),
            requester=_account(fields.get("reporter"), f"{name}: fields.reporter"),
            assignee=_account(fields.get("assignee"), f"{name}: fields.assignee"),
            group=self._field("group", fields),
            service=self._field("service", fields),
            type=self._field("type", fields),
            created_at=created,
            updated_at=updated,
            resolved_at=instant(resolved, f"{name}: fields.resolutiondate") if resolved is not None else None,
            fields={field: value for field, value in fields.items() if field.startswith("customfield_")},
            tags=list(labels or []),
            version=str(updated_text),
        )]

    def _field(self, role: str, fields: Mapping[str, Any]) -> str | None:
        spec = self.fields.get(role)
        return None if spec is None else _value_text(fields.get(spec))

    def events(self, issue_id: Any, histories: Any, comments: Any, roster: AgentRoster, *, scope: str = "") -> list[TicketEvent]:
        """The history of one issue that matters: status, priority and (where the ``group`` role is
        mapped) group changes from its changelog (``values`` of ``issue/{key}/changelog``, or
        ``changeHistories`` of ``changelog/bulkfetch``), replies from its public comments (an
        agent's iff ``roster`` says the author was an agent when they wrote it), and the
        sla-bridge markers in its internal comments.

        ``issue_id`` is the numeric issue id (``Ticket.external_id``), never the key: the events
        must land on the same ticket as :meth:`ticket`'s. ``scope`` (the issue's project key)
        qualifies the roster's users: an agent of one service project is not one of another's,
        so the connector keeps them as ``PROJECT/accountId``.
        """
        number = str(issue_id) if isinstance(issue_id, int | str) and not isinstance(issue_id, bool) else None
        if number is None or not _ISSUE_ID.fullmatch(number):
            raise ValueError(f"the history of issue {issue_id!r}: not a numeric issue id (pass the id, not the key)")
        name = f"issue id {number}"
        if not isinstance(histories, list):
            raise ValueError(f"{name}: the changelog is {type(histories).__name__}, not a list of histories")
        if not isinstance(comments, list):
            raise ValueError(f"{name}: the comments are {type(comments).__name__}, not a list")
        ticket_id = f"{self.source}:{number}"
        result: list[TicketEvent] = []
        for history in histories:
            result.extend(self._changes(ticket_id, name, history))
        for comment in comments:
            result.extend(self._comment(ticket_id, name, comment, roster, scope))
        return result

    def _changes(self, ticket_id: str, name: str, history: Any) -> Iterable[TicketEvent]:
        if not isinstance(history, Mapping) or not isinstance(history.get("id"), str | int):
            raise ValueError(f"{name}: a changelog history without an id ({history!r:.80})")
        where = f"{name}: changelog history {history['id']}"
        items = history.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            raise ValueError(f"{where}: items is {type(items).__name__}, not a list")
        at: datetime | None = None
        seen = {"status": 0, "priority": 0, "group": 0}
        for item in items:
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: an item is {item!r:.80}, not an object")
            field = self._item_field(item)
            if field is None:
                continue
            at = at or _moment(history.get("created"), f"{where}: created")
            # Counted per field, so that the id is the same whether the history came whole
            # (issue changelog) or filtered to these fields (changelog/bulkfetch fieldIds).
            seen[field] += 1
            if field == "group":
                yield TicketEvent(ticket_id, f"g{history['id']}:{seen[field]}", "group", at,
                                  from_value=_shown(item.get("from"), item.get("fromString"), f"{where}: group from"),
                                  to_value=_shown(item.get("to"), item.get("toString"), f"{where}: group to"),
                                  author=_account(history.get("author"), f"{where}: author"))
                continue
            table = self.values.statuses if field == "status" else self.values.priorities
            before = _pick(item.get("from"), item.get("fromString"), table, f"{where}: {field} from")
            after = _pick(item.get("to"), item.get("toString"), table, f"{where}: {field} to")
            if field == "status":
                if after is None:
                    raise ValueError(f"{where}: a status change to nothing")
                yield TicketEvent(ticket_id, f"s{history['id']}:{seen[field]}", "status", at,
                                  from_value=self.values.status(before) if before else None, to_value=self.values.status(after))
            else:
                yield TicketEvent(ticket_id, f"p{history['id']}:{seen[field]}", "priority", at,
                                  from_value=self.values.priority(before) if before else None,
                                  to_value=self.values.priority(after) if after else None)

    def _item_field(self, item: Mapping[str, Any]) -> str | None:
        """Which history this changelog item belongs to: "status", "priority", "group" or none.

        By ``fieldId`` where the item has one (a custom field may be *named* "Status"); else by
        ``field``, which is the field's name for a custom item (compared without case: Jira is
        not consistent in it) and the id for Jira's own.
        """
        group = self.fields.get("group")
        if "fieldId" in item:
            ident = item.get("fieldId")
            if ident in ("status", "priority"):
                return str(ident)
            return "group" if group is not None and ident == group else None
        name = item.get("field")
        if name in ("status", "priority"):
            return str(name)
        if group is None or not isinstance(name, str):
            return None
        if item.get("fieldtype") == "custom":
            named = self.group_name is not None and name.casefold() == self.group_name.casefold()
            return "group" if named and group.startswith("customfield_") else None
        return "group" if name == group else None

    def _comment(self, ticket_id: str, name: str, comment: Any, roster: AgentRoster, scope: str) -> list[TicketEvent]:
        if not isinstance(comment, Mapping) or not isinstance(comment.get("id"), str | int):
            raise ValueError(f"{name}: a comment without an id ({comment!r:.80})")
        where = f"{name}: comment {comment['id']}"
        created = comment.get("created")
        when = _date_dto(created, f"{where}: created") if isinstance(created, Mapping) else _moment(created, f"{where}: created")
        author = _account(comment.get("author"), f"{where}: author")
        if comment_is_internal(comment, where):
            # An internal note never moves a clock; the markers in it say which of sla-bridge's
            # notes the issue already holds (whichever store posted them).
            text = _body_text(comment.get("body"), f"{where}: body")
            return [TicketEvent(ticket_id, f"n{comment['id']}:{index}", "note", when, to_value=marker, author=author)
                    for index, marker in enumerate(markers_in(text), start=1)]
        if isinstance(comment.get("author"), Mapping) and comment["author"].get("accountType") == "app":
            return []  # an app's public comment (an automation's acknowledgement) is no one's reply
        who = f"{scope}/{author}" if scope and author is not None else author
        reply: EventKind = "agent_reply" if roster.was_agent(who, when) else "customer_reply"
        return [TicketEvent(ticket_id, f"c{comment['id']}", reply, when, author=author)]

    def sla_fields(self, raw: Any, field_ids: Iterable[str]) -> dict[str, Any]:
        """JSM's SLA field values of one issue, by field id, as JSM sent them; None where JSM has
        nothing: null, an SLA with no cycle at all (``completedCycles: []``, no ``ongoingCycle``),
        or the error object a non-service project answers with. Only for reconciliation."""
        name = _issue_name(raw)
        fields = raw.get("fields") if isinstance(raw, Mapping) else None
        if not isinstance(fields, Mapping):
            raise ValueError(f"{name}: fields is not an object")
        result: dict[str, Any] = {}
        for field_id in field_ids:
            value = fields.get(field_id)
            if value is None:
                result[field_id] = None
            elif not isinstance(value, Mapping):
                raise ValueError(f"{name}: SLA field {field_id} is {value!r:.80}, not an SLA object")
            elif "errorMessage" in value or "errorMessages" in value:
                result[field_id] = None  # "The service project you are trying to view does not exist."
            else:
                completed, ongoing = value.get("completedCycles"), value.get("ongoingCycle")
                if (completed is not None and not isinstance(completed, list)) or (ongoing is not None and not isinstance(ongoing, Mapping)):
                    raise ValueError(f"{name}: SLA field {field_id} has cycles of an unknown shape")
                if "completedCycles" not in value and "ongoingCycle" not in value and "id" not in value:
                    raise ValueError(f"{name}: SLA field {field_id} is {value!r:.80}, not an SLA object")
                result[field_id] = dict(value) if completed or ongoing else None
        return result


def comment_is_internal(comment: Mapping[str, Any], where: str = "a comment") -> bool:
    """Whether a comment is an internal note: JSM's ``public: false``, the platform's
    ``jsdPublic: false``, or the ``sd.public.comment`` property with ``internal: true``
    (present when asked for with ``expand=properties``). Any one of them makes it internal."""
    for flag in ("public", "jsdPublic"):
        value = comment.get(flag)
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{where}: {flag} is {value!r}, not true or false")
        if value is False:
            return True
    properties = comment.get("properties")
    if properties is not None and not isinstance(properties, list):
        raise ValueError(f"{where}: properties is {type(properties).__name__}, not a list")
    for prop in properties or ():
        if isinstance(prop, Mapping) and prop.get("key") == "sd.public.comment":
            value = prop.get("value")
            if isinstance(value, Mapping) and value.get("internal") in (True, "true"):
                return True
    return False


def adf_text(document: Any) -> str:
    """The text of an Atlassian Document Format node: inline nodes run together (a marker may be
    split across text nodes by marks), blocks on their own lines. Iterative: no depth limit."""
    parts: list[str] = []
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):  # a separator pushed below
            parts.append(node)
            continue
        if not isinstance(node, Mapping):
            continue
        kind = node.get("type")
        found = node.get("attrs")
        attrs: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        if kind == "text":
            parts.append(node["text"] if isinstance(node.get("text"), str) else "")
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind in ("mention", "emoji", "status", "date") and isinstance(attrs.get("text"), str):
            parts.append(attrs["text"])
        elif kind in ("inlineCard", "blockCard", "embedCard") and isinstance(attrs.get("url"), str):
            parts.append(attrs["url"])
        content = node.get("content")
        if isinstance(content, list):
            if kind not in _INLINE:
                stack.append("\n")
            stack.extend(reversed(content))
    return "".join(parts)


_INLINE = {"text", "hardBreak", "mention", "emoji", "status", "date", "inlineCard", "mediaInline"}


def _body_text(body: Any, what: str) -> str:
    """A comment body: ADF (platform v3), or text (platform v2, JSM request comments)."""
    if body is None or isinstance(body, str):
        return body or ""
    if isinstance(body, Mapping):
        return adf_text(body)
    raise ValueError(f"{what} is a {type(body).__name__}, neither text nor an ADF document")


def _pick(ident: Any, label: Any, table: Mapping[str, str], what: str) -> str | None:
    """The raw value to keep for a status or priority: its id where the config maps the id, else its name."""
    for value in (ident, label):
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise ValueError(f"{what} is {value!r}, not a value")
    ident_text, label_text = _text(ident), _text(label)
    if ident_text is not None and ident_text in table:
        return ident_text
    return label_text or ident_text


def _shown(ident: Any, label: Any, what: str) -> str | None:
    """A group as a change item names it: its display string (an option's value, a group's or a
    team's name, as ``Ticket.group`` takes it from the field), else the raw id the item carries
    (a group deleted since, or an item Jira shows by id only), else None (no group)."""
    for value in (ident, label):
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise ValueError(f"{what} is {value!r:.80}, not a value")
    label_text = _text(label)
    return label_text if label_text is not None and label_text.strip() else _text(ident)


def _account(user: Any, what: str) -> str | None:
    if user is None:
        return None
    if not isinstance(user, Mapping):
        raise ValueError(f"{what} is {user!r:.80}, not a user object")
    return _text(user.get("accountId"))


def _value_text(value: Any) -> str | None:
    """A field's value as text: Organizations and components by name, options by value, request
    types by name, users by account id; a list joined with commas."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        texts = [text for text in (_value_text(item) for item in value) if text]
        return ",".join(texts) or None
    if isinstance(value, Mapping):
        request_type = value.get("requestType")
        if isinstance(request_type, Mapping):
            return _text(request_type.get("name")) or _text(request_type.get("id"))
        for key in ("value", "name", "accountId", "key", "id"):
            if isinstance(value.get(key), str | int) and not isinstance(value.get(key), bool):
                return _text(value[key])
        return None
    return _text(value)


def _issue_name(raw: Any) -> str:
    if isinstance(raw, Mapping):
        if isinstance(raw.get("key"), str):
            return f"issue {raw['key']}"
        return f"issue id {raw.get('id')!r}"
    return f"an issue record ({type(raw).__name__})"


def _moment(value: Any, what: str) -> datetime:
    """A changelog or comment time: text with an offset; the bulk changelog's spec example shows
    a number, read as epoch milliseconds or seconds by its size."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        millis = value if abs(value) >= _EPOCH_MILLIS_FROM else value * 1000
        return _EPOCH + timedelta(milliseconds=millis)
    return instant(value, what)


def _date_dto(value: Mapping[str, Any], what: str) -> datetime:
    """JSM's ``DateDTO``: ``epochMillis`` is the instant; ``jira`` and ``iso8601`` only if it is absent."""
    millis = value.get("epochMillis")
    if isinstance(millis, int) and not isinstance(millis, bool):
        return _EPOCH + timedelta(milliseconds=millis)
    return instant(value.get("jira") or value.get("iso8601"), what)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
