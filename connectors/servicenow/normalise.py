"""ServiceNow task records and their sys_audit history -> the normalised model. Pure functions of the raw JSON and the config.

What is handled here (see ../shared/reference/servicenow-api.md, sections 2.4-2.7, 3.1, 3.3 and 12):

- Records come in raw mode (``sysparm_display_value=false``, ``sysparm_exclude_reference_link=true``):
  every value a string, ``""`` for nothing, references as bare sys_ids, date-times naive
  ``YYYY-MM-DD HH:MM:SS`` that are UTC. UTC is attached, never the local zone. A display value
  (a date-time in the API user's zone, which looks just like UTC) is refused, not guessed at.
- Choice codes (state, hold reason, priority) differ per instance: their labels come from
  ``sys_choice`` (:class:`Choices`), the table's own rows over task's.
- A status is the state *and* the hold reason: "On Hold" waiting for the caller is not "On Hold"
  waiting for a vendor. The config maps either by codes ("3/1", "3") or by labels
  ("On Hold/Awaiting Caller", "On Hold"); an unmapped one is reported by its labels.
- sys_audit rows come in sys_id order, not time order; one update writes several rows that
  share a time and a checkpoint (state and hold_reason together give one status change;
  incident_state only mirrors state). Comments (customer-visible) are replies; work notes
  (internal) never move a clock, and only sla-bridge's markers in them are kept, as ``note``
  events, so the bridge's own notes pulled back change nothing.
- The column the ``group`` role maps onto (``assignment_group`` of ``assignment_group.name``) is
  read from sys_audit too, as ``group`` events. A reference's audit rows hold sys_ids: they are
  named as the record's dot-walk names them (:attr:`ServiceNowRecords.group_names`, learned from
  the records and from the connector's look-up); an id no one could name keeps its sys_id.

Anything malformed raises ``ValueError`` naming the record: the pull loop quarantines it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from bridge.framework.mapping import ValueMapper
from bridge.framework.roster import AgentRoster
from bridge.model import EventKind, Ticket, TicketEvent, markers_in

__all__ = [
    "CALLER_FIELDS",
    "DEFAULT_PRIORITIES",
    "DEFAULT_STATUSES",
    "HISTORY_FIELDS",
    "JOURNAL_ADDITION",
    "Choices",
    "ServiceNowRecords",
    "raw_time",
]

# The base system's labels (reference §2.7). Keys "State/Hold reason" are the combined form;
# a plain state label applies to every hold reason not listed. Instances that rename or
# translate labels, or add states, map them in the config (by code is the stable way: "3/1").
DEFAULT_STATUSES = {
    # incident (and problem-like tables using the same labels)
    "New": "new",
    "In Progress": "open",
    "On Hold": "on_hold",
    "On Hold/Awaiting Caller": "waiting_customer",
    "On Hold/Awaiting Vendor": "waiting_third_party",
    "On Hold/Awaiting Problem": "on_hold",
    "On Hold/Awaiting Change": "on_hold",
    "Resolved": "resolved",
    "Closed": "closed",
    "Canceled": "canceled",
    "Cancelled": "canceled",  # the CSM case's spelling
    # sn_customerservice_case
    "Open": "open",
    "Awaiting Info": "waiting_customer",
    # the task family (sc_req_item, sc_task): Pending waits on something other than the customer
    # (an approval, a fulfilment step); the three Closed states end the work. Closed Complete is
    # closed, not resolved: nothing reopens it and no one confirms it, so it is no "resolved,
    # awaiting confirmation". Incomplete and Skipped end it too; a cancelled or rejected request
    # also lands there, but so does work that failed, and canceled would take the record out of
    # the SLA's count: closed keeps a late one counted (an instance that uses them for
    # cancellation maps "Closed Incomplete" = "canceled").
    "Pending": "on_hold",
    "Work in Progress": "open",
    "Closed Complete": "closed",
    "Closed Incomplete": "closed",
    "Closed Skipped": "closed",
}
DEFAULT_PRIORITIES = {"1 - Critical": "p1", "2 - High": "p2", "3 - Moderate": "p3", "4 - Low": "p4", "5 - Planning": "p5"}

# Who raised the record, by table; every other task table has caller_id (incident) or none.
CALLER_FIELDS = {"sn_customerservice_case": "contact", "sc_req_item": "requested_for"}
# The old value sys_audit gives a journal entry (comments, work notes) after the insert.
JOURNAL_ADDITION = "JOURNAL FIELD ADDITION"
# Users whose public comments are no one's reply: the instance's own automation.
_AUTOMATION_USERS = ("system",)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TERMINAL = ("resolved", "closed", "canceled")

_SYS_ID = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")
_CHOICE_ELEMENTS = ("state", "hold_reason", "priority")


def raw_time(text: object, what: str) -> datetime:
    """A raw ServiceNow date-time (``YYYY-MM-DD HH:MM:SS``, naive, stored in UTC) as an aware UTC instant.

    Any other form is refused: a display value (``02.03.2026 09:14:05``, or the same pattern in
    the API user's zone) would shift every clock by that zone's offset.
    """
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise ValueError(f"{what} is {text!r}, not a raw date-time YYYY-MM-DD HH:MM:SS (ask for sysparm_display_value=false)")
    try:
        # fromisoformat reads this exact form (checked above) at a tenth of strptime's cost
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    except ValueError as error:
        raise ValueError(f"{what} is {text!r}, not a date-time ({error})") from None


class Choices:
    """The labels of the choice codes of state, hold reason and priority, from sys_choice rows.

    ``rows`` are ``{name, element, value, label, sequence, dependent_value}`` (all strings), of the
    table and of ``task``: a table's own row overrides task's for the same element and value, as
    the instance's forms do. A hold reason's ``dependent_value`` is the state it belongs to.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._labels: dict[tuple[str, str], str] = {}
        self._depends: dict[tuple[str, str], str] = {}
        own: set[tuple[str, str]] = set()
        for row in rows:
            if not isinstance(row, Mapping):
                raise ValueError(f"a sys_choice row is {row!r:.80}, not an object")
            element, value, label = row.get("element"), row.get("value"), row.get("label")
            if element not in _CHOICE_ELEMENTS or not isinstance(value, str) or not value:
                continue  # another element, or a row the query should not have returned
            if not isinstance(label, str):
                raise ValueError(f"sys_choice {element} {value!r}: label is {label!r}, not text")
            key = (element, value)
            from_task = row.get("name") == "task"
            if key in own or (from_task and key in self._labels):
                continue  # the table's own row stands; a second row of the same standing is a duplicate
            if not from_task:
                own.add(key)
            self._labels[key] = label.strip() or value
            dependent = row.get("dependent_value")
            if isinstance(dependent, str) and dependent:
                self._depends[key] = dependent
            else:
                self._depends.pop(key, None)

    def label(self, element: str, code: str) -> str | None:
        """The label of ``code`` of ``element`` (``state``, ``hold_reason``, ``priority``), if the instance has one."""
        return self._labels.get((element, code))

    def holds_in(self, hold_code: str, state_code: str) -> bool:
        """Whether hold reason ``hold_code`` applies in state ``state_code``: a hold reason left
        behind when the record moved on (data is messy) is not part of its status. Unknown: yes."""
        depends = self._depends.get(("hold_reason", hold_code))
        return depends is None or depends == state_code


class ServiceNowRecords:
    """Normalises one source's records of one table and their sys_audit history.

    ``fields`` maps a role (``customer``, ``service``, ``type``, ``group``) onto a column of the
    record or one dot-walk (``company.name``), both as the Table API returns them. ``names``
    (sys_id -> display name) turns a reference's sys_id into a name where the connector resolved
    it; otherwise the sys_id is kept. ``status_field`` is the write-back column, kept in
    ``Ticket.fields`` with the ``u_`` columns so the core can read back what it wrote.

    The ``group`` role's column (the reference a dot-walk goes through) is read from sys_audit as
    well (:attr:`history_fields`). Its audit rows hold what the column holds: for a dot-walk, the
    referenced record's sys_id, named by :attr:`group_names` (sys_id -> the dot-walked text), which
    :meth:`ticket` fills from every record that carries the column with its dot-walk and the
    connector from its look-up of the ids no record named (:meth:`unnamed_groups`).
    """

    def __init__(self, source: str, base_url: str, table: str, values: ValueMapper, fields: Mapping[str, str],
                 choices: Choices, *, names: Mapping[str, str] | None = None, status_field: str | None = None) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.table = table
        self.values = values
        self.fields = fields
        self.choices = choices
        self.names = names or {}
        self.status_field = status_field
        self.caller_field = CALLER_FIELDS.get(table, "caller_id")
        # The caller's user name by record, where the record carries the dot-walk
        # (``caller_id.user_name``): sys_audit names users by user name, the record by sys_id.
        self.callers: dict[str, str] = {}
        group = fields.get("group")
        column, _, walked = group.partition(".") if group else ("", "", "")
        self.group_column: str | None = column or None  # the column whose changes are group events
        self.group_name_field: str | None = walked or None  # the referenced record's field that names it
        self.group_names: dict[str, str] = {}  # the group column's sys_id -> the dot-walked name
        self.history_fields = HISTORY_FIELDS + ((column,) if column and column not in HISTORY_FIELDS else ())

    # -- records ----------------------------------------------------------------------------

    def ticket(self, raw: Any, context: object = None) -> list[Ticket]:
        """One record from ``/api/now/table/{table}`` in raw mode; ``context`` is unused."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a {self.table} record is a {type(raw).__name__}, not an object")
        sys_id, number = raw.get("sys_id"), raw.get("number")
        name = f"{self.table} {number}" if isinstance(number, str) and number else f"{self.table} record {sys_id!r}"
        if not isinstance(sys_id, str) or not _SYS_ID.fullmatch(sys_id):
            raise ValueError(f"{name}: sys_id is {sys_id!r}, not a sys_id (32 hex digits)")
        if not isinstance(number, str) or not number.strip():
            raise ValueError(f"{name}: number is {number!r}, not a record number like INC0010042")
        text = _Fields(raw, name)
        created = text.get("opened_at") or text.get("sys_created_on")
        if created is None:
            raise ValueError(f"{name}: neither opened_at nor sys_created_on is set (are they among sysparm_fields?)")
        updated = text.get("sys_updated_on")
        if updated is None:
            raise ValueError(f"{name}: sys_updated_on is not set (is it among sysparm_fields?)")
        if "state" not in raw:
            raise ValueError(f"{name}: state is missing (is it among sysparm_fields?)")
        state, hold = text.get("state") or "", text.get("hold_reason") or ""
        status_raw = self._status_raw(state, hold)
        status = self.values.status(status_raw)
        version = text.get("sys_mod_count")
        if version is not None and not _DIGITS.fullmatch(version):
            raise ValueError(f"{name}: sys_mod_count is {version!r}, not a count")
        priority_raw = self._priority_raw(text.get("priority"))
        resolved = text.get("resolved_at")
        if resolved is None and status in _TERMINAL:
            # sc_req_item has no resolved_at, and closed_at is set on open records too (messy
            # data): it stands in only for a record that is done.
            resolved = text.get("closed_at")
        when = f"{name}: "
        caller_user = text.get(self.caller_user_field)
        if caller_user is not None:
            self.callers[sys_id] = caller_user
        if self.group_column and self.group_name_field:
            reference, walked = text.get(self.group_column), text.get(f"{self.group_column}.{self.group_name_field}")
            if reference is not None and walked is not None:
                self.group_names[reference] = walked  # its name now, as every record's group reads it
        return [Ticket(
            source=self.source,
            system="servicenow",
            external_id=sys_id,  # the number can be renumbered; the sys_id never changes
            key=number,
            url=f"{self.base_url}/nav_to.do?uri={self.table}.do?sys_id={sys_id}",
            title=text.get("short_description") or "",
            status=status,
            status_raw=status_raw,
            priority=self.values.priority(priority_raw),
            priority_raw=priority_raw,
            customer=self._role("customer", text),
            requester=text.get(self.caller_field),
            assignee=text.get("assigned_to"),
            group=self._role("group", text),
            service=self._role("service", text),
            type=self._role("type", text),
            created_at=raw_time(created, when + ("opened_at" if text.get("opened_at") else "sys_created_on")),
            updated_at=raw_time(updated, when + "sys_updated_on"),
            resolved_at=raw_time(resolved, when + ("resolved_at" if text.get("resolved_at") else "closed_at")) if resolved else None,
            fields=self._pulled_fields(raw, text),
            tags=[],
            version=version,
        )]

    @property
    def caller_user_field(self) -> str:
        """The dot-walk that gives the caller's user name (``caller_id.user_name``): ask for it in
        ``sysparm_fields`` so that :meth:`events` knows the caller's own comments."""
        return f"{self.caller_field}.user_name"

    @property
    def group_reference_field(self) -> str | None:
        """The reference column under the ``group`` role's dot-walk (``assignment_group``), if it is
        one: ask for it in ``sysparm_fields`` with the dot-walk, so each record names its group's sys_id."""
        return self.group_column if self.group_name_field else None

    def unnamed_groups(self, audit_rows: Iterable[Any]) -> list[str]:
        """The sys_ids in the group column's audit rows that :attr:`group_names` does not name yet,
        in sorted order (rows that are not sys_audit rows are left to :meth:`events` to refuse)."""
        if not self.group_name_field:
            return []  # the column itself is the name: nothing to look up
        found: set[str] = set()
        for row in audit_rows:
            if isinstance(row, Mapping) and row.get("fieldname") == self.group_column:
                found.update(value for value in (row.get("oldvalue"), row.get("newvalue"))
                             if isinstance(value, str) and _SYS_ID.fullmatch(value) and value not in self.group_names)
        return sorted(found)

    def group_name(self, value: str) -> str | None:
        """The group an audit row's value names, as :meth:`ticket` gives ``Ticket.group`` for it (an id
        no record or look-up named: the sys_id itself)."""
        if not value:
            return None
        text = self.group_names.get(value, value) if self.group_name_field else value
        return self.names.get(text, text)

    def _role(self, role: str, text: _Fields) -> str | None:
        spec = self.fields.get(role)
        value = text.get(spec) if spec else None
        return self.names.get(value, value) if value is not None else None

    def _pulled_fields(self, raw: Mapping[str, Any], text: _Fields) -> dict[str, Any]:
        wanted = [key for key in raw if isinstance(key, str) and key.startswith("u_")]
        if self.status_field and self.status_field in raw:
            wanted.append(self.status_field)
        return {key: text.value(key) for key in wanted}

    def _status_raw(self, state: str, hold: str) -> str:
        """The raw status kept and mapped: the first of "STATE/HOLD", "Label/Hold label", "STATE",
        "Label" that the statuses table holds; otherwise the labels (what ``unmapped`` reports)."""
        if not state:
            return ""
        label = self.choices.label("state", state)
        if hold and not self.choices.holds_in(hold, state):
            hold = ""
        hold_label = self.choices.label("hold_reason", hold) if hold else None
        readable = label or state
        candidates = [state, label] if not hold else [
            f"{state}/{hold}", f"{readable}/{hold_label or hold}" if label or hold_label else None, state, label]
        for key in candidates:
            if key is not None and key in self.values.statuses:
                return key
        return f"{readable}/{hold_label or hold}" if hold else readable

    def _priority_raw(self, code: str | None) -> str | None:
        """The priority's label ("2 - High"), or its code where the priorities table maps the code."""
        if not code:
            return None
        if code in self.values.priorities:
            return code
        return self.choices.label("priority", code) or code

    # -- history ----------------------------------------------------------------------------

    def events(self, sys_id: Any, audit_rows: Any, roster: AgentRoster, *, caller_user: str | None,
               own_user: str | None) -> list[TicketEvent]:
        """The history of one record that matters, from its sys_audit rows (in any order).

        Status changes (state and hold reason of one update together), priority changes, public
        comments as replies (an agent's iff ``roster`` says the user was an agent when they wrote
        it; ``caller_user``'s are always the customer's, even where the caller is an agent too;
        ``own_user``'s and the instance's own automation's are no one's), and the sla-bridge
        markers in work notes as ``note`` events, and changes of the ``group`` role's column as
        ``group`` events (not the insert's row: the ticket's group is where it starts). Users are
        user names, as sys_audit gives them;
        ``caller_user=None`` takes the caller's from the record as :meth:`ticket` read it, if it
        carried :attr:`caller_user_field`.
        """
        if not isinstance(sys_id, str) or not _SYS_ID.fullmatch(sys_id):
            raise ValueError(f"the history of {self.table} record {sys_id!r}: not a sys_id (32 hex digits)")
        name = f"{self.table} record {sys_id}"
        if not isinstance(audit_rows, list | tuple):
            raise ValueError(f"{name}: the sys_audit rows are {type(audit_rows).__name__}, not a list")
        rows = [_AuditRow.read(row, name, sys_id, self.history_fields) for row in audit_rows]
        caller_user = caller_user if caller_user is not None else self.callers.get(sys_id)
        ticket_id = f"{self.source}:{sys_id}"
        result: list[TicketEvent] = []
        current: dict[str, str | None] = {"state": None, "hold_reason": None}
        for update in _updates(rows):
            # status, priority, replies, notes: one update's events in one order whatever its rows' sys_ids
            result.extend(self._status_change(ticket_id, [row for row in update if row.field in current], current))
            order = self.history_fields
            for row in sorted(update, key=lambda row: (order.index(row.field) if row.field else len(order), row.sys_id)):
                if row.field and row.field == self.group_column:
                    result.extend(self._group_change(ticket_id, row))
                if row.field == "priority":
                    result.append(self._priority_change(ticket_id, row))
                elif row.field == "comments":
                    result.extend(self._reply(ticket_id, row, roster, caller_user, own_user))
                elif row.field == "work_notes":
                    result.extend(TicketEvent(ticket_id, f"n{row.sys_id}:{index}", "note", row.at, to_value=marker, author=row.user)
                                  for index, marker in enumerate(markers_in(row.new), start=1))
        return result

    def _status_change(self, ticket_id: str, update: list[_AuditRow], current: dict[str, str | None]) -> list[TicketEvent]:
        """One status event for the state and hold-reason rows of one update, if they changed it."""
        if not update:
            return []
        before, after = dict(current), dict(current)
        for row in update:  # in checkpoint order: a field's first row says what it was, its last what it is
            if row is _first(update, row.field):
                before[row.field] = row.old
            after[row.field] = row.new
        current.update(after)
        if not after["state"]:
            return []  # a hold reason changed while the state is unknown: no status to say
        old = self._status_raw(before["state"] or "", before["hold_reason"] or "")
        new = self._status_raw(after["state"] or "", after["hold_reason"] or "")
        if old == new:
            return []
        anchor = _first(update, "state") or update[0]
        return [TicketEvent(ticket_id, f"s{anchor.sys_id}", "status", anchor.at,
                            from_value=self.values.status(old) if old else None, to_value=self.values.status(new), author=anchor.user)]

    def _priority_change(self, ticket_id: str, row: _AuditRow) -> TicketEvent:
        old, new = self._priority_raw(row.old), self._priority_raw(row.new)
        return TicketEvent(ticket_id, f"p{row.sys_id}", "priority", row.at, from_value=self.values.priority(old) if old else None,
                           to_value=self.values.priority(new) if new else None, author=row.user)

    def _group_change(self, ticket_id: str, row: _AuditRow) -> list[TicketEvent]:
        if row.insert and not row.old:
            return []  # the insert: the group it was created in is no change (the first change's old value says it)
        old, new = self.group_name(row.old), self.group_name(row.new)
        if old == new:
            return []
        return [TicketEvent(ticket_id, f"g{row.sys_id}", "group", row.at, from_value=old, to_value=new, author=row.user)]

    def _reply(self, ticket_id: str, row: _AuditRow, roster: AgentRoster, caller_user: str | None,
               own_user: str | None) -> list[TicketEvent]:
        if row.user is not None and (row.user == own_user or row.user in _AUTOMATION_USERS):
            return []  # sla-bridge never writes comments; the instance's automation replies for no one
        agent = row.user != caller_user and roster.was_agent(row.user, row.at)
        kind: EventKind = "agent_reply" if agent else "customer_reply"
        return [TicketEvent(ticket_id, f"c{row.sys_id}", kind, row.at, author=row.user)]


def _updates(rows: list[_AuditRow]) -> list[list[_AuditRow]]:
    """A record's rows in time order, grouped by the update that wrote them."""
    groups: dict[tuple[datetime, int, str], list[_AuditRow]] = {}
    for row in sorted(rows, key=lambda row: row.order):
        groups.setdefault(row.update, []).append(row)
    return list(groups.values())


def _first(update: list[_AuditRow], field: str) -> _AuditRow | None:
    return next((row for row in update if row.field == field), None)


# What sys_audit is asked for (and the ``group`` role's column, per source: ServiceNowRecords.history_fields)
HISTORY_FIELDS = ("state", "hold_reason", "priority", "comments", "work_notes")


class _AuditRow:
    """One sys_audit row, checked: ``order`` sorts a record's rows into time order, ``update``
    groups the rows one update wrote (same time, same checkpoint); ``insert``: a row the record's
    insert wrote (checkpoint 0: no update has a sys_mod_count of 0)."""

    __slots__ = ("at", "field", "insert", "new", "old", "order", "sys_id", "update", "user")

    def __init__(self, sys_id: str, field: str, old: str, new: str, user: str | None, at: datetime, checkpoint: str) -> None:
        self.sys_id, self.field, self.old, self.new, self.user, self.at = sys_id, field, old, new, user, at
        # A checkpoint is a number: "10" comes after "9"
        number = int(checkpoint) if _DIGITS.fullmatch(checkpoint) else -1
        # One update's rows share a checkpoint even where their times straddle a second; without one, the time says
        self.update = (EPOCH, number, checkpoint) if checkpoint else (at, number, checkpoint)
        self.order = (at, number, checkpoint, sys_id)
        self.insert = checkpoint == "0"

    @classmethod
    def read(cls, raw: Any, name: str, document: str, fields: tuple[str, ...] = HISTORY_FIELDS) -> _AuditRow:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{name}: a sys_audit row is {raw!r:.80}, not an object")
        sys_id = raw.get("sys_id")
        if not isinstance(sys_id, str) or not _SYS_ID.fullmatch(sys_id):
            raise ValueError(f"{name}: a sys_audit row's sys_id is {sys_id!r}, not a sys_id (32 hex digits)")
        where = f"{name}: sys_audit row {sys_id}"
        text = _Fields(raw, where)
        key = text.get("documentkey")
        if key is not None and key != document:
            raise ValueError(f"{where}: documentkey is {key!r}, another record's")
        field = text.get("fieldname")
        if field is None:
            raise ValueError(f"{where}: fieldname is not set")
        at = raw_time(raw.get("sys_created_on"), f"{where}: sys_created_on")
        old, new = text.get("oldvalue") or "", text.get("newvalue") or ""
        if field in ("comments", "work_notes") and old not in ("", JOURNAL_ADDITION):
            raise ValueError(f"{where}: a {field} row whose oldvalue is {old[:80]!r}, not {JOURNAL_ADDITION!r}")
        return cls(sys_id, field if field in fields else "", old, new, text.get("user"), at,
                   text.get("record_checkpoint") or "")


class _Fields:
    """A raw-mode row's values as text, ``""`` read as nothing; any other shape raises naming the row.

    A reference with its link (``{"link", "value"}``, when ``exclude_reference_link`` was left
    out) reads as its sys_id; a display value (``{"display_value", ...}``) is refused.
    """

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.raw = raw
        self.where = where

    def value(self, key: str) -> Any:
        value = self.raw.get(key)
        if isinstance(value, Mapping):
            if "display_value" in value:
                raise ValueError(f"{self.where}: {key} is a display value ({value!r:.80}); ask for sysparm_display_value=false")
            value = value.get("value")
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{self.where}: {key} is {value!r:.80}, not text (raw values are strings)")
        return value

    def get(self, key: str) -> str | None:
        value = self.value(key)
        return value or None
