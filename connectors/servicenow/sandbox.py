"""A local emulator of the ServiceNow paths sla-bridge uses: the Table API, sys_audit,
sys_journal_field, sys_choice, sys_dictionary, sys_user_has_role, the Batch API and
``/oauth_token.do``.

Faithful where the connector could tell the difference (../shared/reference/servicenow-api.md,
sections 1 to 6, 9 and 12; routes and parameters from the Table API's OpenAPI document in
../shared/vendor-specs):

- ``GET /api/now/table/{t}`` (also ``/api/now/v1/...`` and ``/api/now/v2/...``): ``{"result": [...]}``,
  every value a string and ``""`` for null (booleans ``"true"``/``"false"``); on v1 a query that
  matches nothing is a 404 ``No Record found``, elsewhere 200 ``[]``. ``sysparm_limit`` (default
  10000) and ``sysparm_offset``; ``X-Total-Count`` (left out with ``sysparm_no_count=true``); a
  ``Link`` header ``<url>;rel="first",<url>;rel="prev",<url>;rel="next",<url>;rel="last"`` naming
  only what applies, absent when one page holds everything (or with
  ``sysparm_suppress_pagination_header=true``), its URLs made by :meth:`SandboxServer.link`.
- Row ACLs (``acl_hidden``, :meth:`ServiceNowSandbox.hide`) apply *after* the limit, as the
  instance's do: a page comes back short, even empty, while more rows exist, and ``Link`` and
  ``X-Total-Count`` still count the hidden rows. A hidden record's GET and PATCH are 404s.
- Encoded queries: ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``IN``, ``NOT IN``, ``LIKE``,
  ``NOT LIKE``, ``STARTSWITH``, ``ENDSWITH``, ``ISEMPTY``, ``ISNOTEMPTY``, ``BETWEEN a@b``; ``^``,
  ``^OR``, ``^NQ``; ``ORDERBY``/``ORDERBYDESC`` (wherever they stand, for the whole union);
  dot-walking through references (``role.name``, ``user.active``). Choice and integer fields
  compare as numbers, date-times as UTC ``YYYY-MM-DD HH:MM:SS`` literals (a date alone is
  midnight; ``javascript:gs.dateGenerate('d','t')`` is read in the API user's zone). A term on a
  field the table lacks, an operator the instance does not know, or a literal that does not
  parse is dropped silently (``glide.invalid_query.returns_no_rows=false``, the default): a typo
  returns everything, as on a real instance. Without ``sysparm_query``, ``name=value`` parameters
  filter instead (``&active=true&state=2``).
- ``sysparm_fields`` (unknown names left out; ``a.b`` names dot-walk and come back under the
  key ``"a.b"``); ``sysparm_display_value`` ``false``/``true``/``all``: display date-times in the
  API user's zone (``user_zone``) with no zone marker, choices by label, references as
  ``{"display_value", "link"}`` (``all``: with ``value``), journals as the rendered stream newest
  first; ``sysparm_exclude_reference_link``. Raw journal fields read ``""``, in a PATCH answer too.
- ``GET``/``PATCH``/``PUT /api/now/table/{t}/{sys_id}``: 404 for a missing or ACL-hidden record;
  a PATCH answers 200 with the whole record (no body with ``X-no-response-body: true``), moves
  ``sys_updated_on``, ``sys_updated_by`` and ``sys_mod_count``, writes ``sys_audit`` rows for the
  fields it changed (``state`` and ``incident_state`` both), appends ``sys_journal_field`` rows
  (and audit rows with old value ``JOURNAL FIELD ADDITION``) for ``work_notes``/``comments``;
  unknown fields and ``sys_`` fields are ignored silently; a field a data policy refuses
  (:meth:`ServiceNowSandbox.refuse`) is a 403. Every journal entry written through the API is
  kept in ``api_journal``, so a test can prove the connector never wrote ``comments``. ``POST``
  on the story's table creates a record (201, audited like any insert), ``DELETE`` removes one
  (204). A write without ``Content-Type`` is a 400, one that is not JSON a 415; the other tables
  refuse writes (403, an ACL).
- ``sys_audit``: ``tablename``, ``documentkey``, ``fieldname``, ``oldvalue``, ``newvalue``,
  ``user`` (a user name), ``sys_created_on``, ``record_checkpoint``; booleans ``1``/``0``; an
  insert writes rows with an empty old value; rows come back in ``sys_id`` order (random GUIDs,
  so not time order) unless ORDERBY says otherwise. ``sys_journal_field``: ``element``,
  ``element_id``, ``value``, ``sys_created_by``, ``sys_created_on``. Without the audit_viewer role
  (``audit_viewer=False``) both answer 200 ``[]``, as a row ACL does (Assumption: like row
  ACLs, ``X-Total-Count`` and ``Link`` still count the rows withheld).
- ``sys_choice`` (the table's rows, and task's for the elements the table inherits),
  ``sys_dictionary`` (a collection row with an empty element, then the columns), ``sys_user``,
  ``sys_user_group``, ``core_company``, ``sys_user_role``, ``sys_user_has_role`` (``itil`` for
  agents; the API user has ``itil`` and ``audit_viewer``).
- Tables: ``incident`` (states 1 New, 2 In Progress, 3 On Hold with hold reason 1 Awaiting
  Caller, 6 Resolved, 7 Closed, 8 Canceled; caller ``caller_id``, customer ``company``),
  ``sn_customerservice_case`` (1 New, 10 Open, 18 Awaiting Info, 6 Resolved, 3 Closed, 7
  Cancelled; ``contact`` and ``account``) and ``sc_req_item`` (the task family: -5 Pending, 1
  Open, 2 Work in Progress, 3 Closed Complete, 4 Closed Incomplete, 7 Closed Skipped;
  ``requested_for``). One of them (``table``) holds the story; the other two are empty. Each
  has ``u_sla_status`` (a string) and ``u_service`` (a choice field).
- ``POST /api/now/v1/batch``: items run serially, each with its own status, bodies base64 both
  ways, ``exclude_response_headers`` honoured; items the "REST Batch API request timeout" (30 s,
  :meth:`ServiceNowSandbox.batch_timeout`) left unrun are listed in ``unserviced_requests``.
- ``POST /oauth_token.do``: ``client_credentials`` (and ``password``) grants from a form body
  only (a JSON body is a 400), tokens expiring ``expires_in`` (1799) seconds later by the
  sandbox's clock; an expired or unknown bearer is a 401, as are bad basic credentials.
- Errors ``{"error": {"message", "detail"}, "status": "failure"}``. Rate-limit rules
  (``rate_rules``, requests per hour per resource for the API user): 429 with ``Retry-After``,
  ``X-RateLimit-Limit``, ``X-RateLimit-Reset`` (epoch seconds) and ``X-RateLimit-Rule`` (the
  rule's sys_id), and never ``X-RateLimit-Remaining``; the same headers on every answer a rule
  counted. An exhausted semaphore (:meth:`ServiceNowSandbox.semaphores_exhausted`, or an
  injected ``429`` without ``retry_after``) answers 429 without any header.

The story (:mod:`connectors.kit.story`) told in ServiceNow's words: incidents ``INC00100NN``
with deterministic 32-hex sys_ids (:meth:`ServiceNowSandbox.external_id`), customers as
``core_company`` rows, requesters as callers, the story's agents as ``itil`` users, its groups
as ``sys_user_group`` rows, p1..p4 from impact and urgency, public comments as ``comments``,
internal notes as ``work_notes``, waiting for the customer as On Hold / Awaiting Caller, a
handoff as an update of ``assignment_group`` (audited with the groups' sys_ids, old and new, as
sys_audit keeps references; the reassignment count goes up with it). The
"Autoclose Incidents" job closes incidents resolved more than 7 days before, once a day at
03:00:00 UTC, and an admin's bulk list edit changes 40 records' category in one second: many
records share one ``sys_updated_on`` second. Deleted tickets are gone (404, absent from lists;
their audit rows stay).

Hooks for tests: ``customer_replies``, ``agent_replies``, ``agent_edits``, ``hand_off``, ``delete_group``, ``noted``,
``malform``, ``unknown_value``, ``busy_ticket`` (None, see there), ``long_history``,
``downgrade``, ``hide``, ``refuse``, ``batch_timeout``, ``semaphores_exhausted``;
``comments_by`` and ``api_journal`` show what was made customer-visible.

Seeded and deterministic: the same ``seed``, ``tickets``, ``anchor`` and ``table`` give the
same data, sys_ids included.

Assumptions (what the reference does not pin down, chosen here): the wording of the errors
other than the rate-limit, 401 and 404 ones the reference quotes (``Invalid table``, ``Requested
URI does not represent any resource``, the data-policy and ACL texts); rows tied on every ORDERBY
key come back in sys_id order, and a query without ORDERBY in sys_id order; with
``sysparm_no_count=true`` the ``Link`` header has no ``last``; v1's 404 looks at the rows left
after the ACLs; LIKE, STARTSWITH and ENDSWITH ignore case while ``=`` and ``IN`` do not; ``!=``
keeps empty values; a PATCH that changes nothing writes nothing (no audit row, no
``sys_mod_count`` bump, as GlideRecord skips an update without changes) yet answers 200; with
``X-no-response-body`` the answer is a 200 with an empty body; PUT behaves as PATCH; the
insert's audit rows carry ``record_checkpoint`` 0 and each update the new ``sys_mod_count``;
rate-limit windows are clock hours, every version of a route is one resource, and Batch API
items count against no rule but the batch's own; the semaphore 429's body; an OAuth error's
body (``{"error": "server_error", "error_description": "access_denied"}``); sys_dictionary's
``internal_type`` and ``reference`` as plain names; a resolved incident stays ``active``
until closed; the task family's Closed Skipped is 7; sc_req_item items do not auto-close; a change of
``assignment_group`` alone raises ``reassignment_count`` (one of ``assigned_to`` does not); a deleted
group's sys_id stays in the records and audit rows that held it, and dot-walks through it read ``""``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from bridge.framework.sandbox import WritebackSummary
from connectors.kit.server import SandboxServer, json_response
from connectors.kit.story import CUSTOMERS, GROUPS, REQUESTERS, SERVICES, Step, TicketStory, tell

__all__ = ["AGENT_NAMES", "TABLES", "QueryError", "ServiceNowSandbox"]

UTC = timezone.utc
DATE = "%Y-%m-%d %H:%M:%S"
Query = dict[str, list[str]]
Row = dict[str, str]
AGENT_NAMES = ("beth.anglin", "don.goodliffe", "bud.richman", "fred.luddy")
ADMIN = "admin"
SYSTEM = "system"  # the user scheduled jobs run as
JOURNAL_ADDITION = "JOURNAL FIELD ADDITION"
AUTOCLOSE = timedelta(days=7)  # glide.ui.autoclose.time
BATCH_TIMEOUT_MS = 30_000  # the "REST Batch API request timeout" quota rule
ITEM_MS = 45  # what one PATCH costs inside a batch, for execution_time
AUDIT_READ_TABLES = ("sys_audit", "sys_journal_field")  # what the audit_viewer role opens
SERVICE_LABELS = {"email": "Email", "vpn": "VPN", "printing": "Printing"}
PRIORITY_LABELS = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
SCALE_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
IMPACT_URGENCY = {"p1": ("1", "1"), "p2": ("1", "2"), "p3": ("2", "2"), "p4": ("2", "3")}  # -> priority 1..4
PRIORITY_OF = {("1", "1"): "1", ("1", "2"): "2", ("2", "1"): "2", ("1", "3"): "3", ("2", "2"): "3", ("3", "1"): "3",
               ("2", "3"): "4", ("3", "2"): "4", ("3", "3"): "5"}  # the default Priority Lookup Rules
UNKNOWN_STATE = ("21", "Awaiting Evidence")  # a state an instance added, which no default maps


@dataclass(frozen=True)
class TableKind:
    """What one task table calls things: its states, its caller and customer fields."""

    name: str
    prefix: str  # of its numbers
    label: str
    caller: str  # the field naming the requester
    customer: str  # the field naming the customer's company (or account)
    states: dict[str, str]  # code -> label, in sequence; {} where the table uses task's
    story: dict[str, str]  # canonical story status -> state code
    closed: str  # what the autoclose job sets ("" where nothing auto-closes)
    resolved: str  # the state whose records the autoclose job closes
    inactive: frozenset[str]  # states in which the record is no longer active
    hold_reason: bool = False


TASK_STATES = {"-5": "Pending", "1": "Open", "2": "Work in Progress", "3": "Closed Complete", "4": "Closed Incomplete",
               "7": "Closed Skipped"}
TABLES = {
    "incident": TableKind(
        "incident", "INC", "Incident", "caller_id", "company",
        {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"},
        {"new": "1", "open": "2", "waiting_customer": "3", "resolved": "6"}, "7", "6", frozenset({"7", "8"}), hold_reason=True),
    "sn_customerservice_case": TableKind(
        "sn_customerservice_case", "CS", "Case", "contact", "account",
        {"1": "New", "10": "Open", "18": "Awaiting Info", "6": "Resolved", "3": "Closed", "7": "Cancelled"},
        {"new": "1", "open": "10", "waiting_customer": "18", "resolved": "6"}, "3", "6", frozenset({"3", "7"})),
    "sc_req_item": TableKind(
        "sc_req_item", "RITM", "Requested Item", "requested_for", "company", {},
        {"new": "1", "open": "2", "waiting_customer": "-5", "resolved": "3"}, "", "3", frozenset({"3", "4", "7"})),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # GUID, string, integer, boolean, glide_date_time, reference, journal_input, choice
    label: str
    reference: str = ""
    owner: str = ""  # the table whose dictionary defines it
    max_length: int = 40
    choice: bool = False


class Table:
    """One table: its columns (in dictionary order), its rows by sys_id and its display field."""

    def __init__(self, name: str, columns: Iterable[Column], display: str, *, indexed: str = "") -> None:
        self.name, self.display, self.indexed = name, display, indexed
        sys = [Column("sys_id", "GUID", "Sys ID", owner=name, max_length=32), Column("sys_created_on", "glide_date_time", "Created", owner=name),
               Column("sys_created_by", "string", "Created by", owner=name), Column("sys_updated_on", "glide_date_time", "Updated", owner=name),
               Column("sys_updated_by", "string", "Updated by", owner=name), Column("sys_mod_count", "integer", "Updates", owner=name)]
        self.columns: dict[str, Column] = {c.name: c for c in [*sys, *(c if c.owner else _owned(c, name) for c in columns)]}
        self.rows: dict[str, Row] = {}
        self._order: list[str] | None = None  # sys_ids sorted, cached until a row is added
        self.index: dict[str, set[str]] = {}  # value of the `indexed` column -> sys_ids

    def add(self, row: Row) -> Row:
        full = {name: "" for name in self.columns}
        full.update(row)
        self.rows[full["sys_id"]] = full
        self._order = None
        if self.indexed:
            self.index.setdefault(full[self.indexed], set()).add(full["sys_id"])
        return full

    def remove(self, sys_id: str) -> None:
        row = self.rows.pop(sys_id, None)
        self._order = None
        if row is not None and self.indexed:
            self.index.get(row[self.indexed], set()).discard(sys_id)

    def ordered(self) -> list[Row]:
        """Rows in sys_id order: the order of a query without ORDERBY."""
        if self._order is None:
            self._order = sorted(self.rows)
        return [self.rows[sys_id] for sys_id in self._order]


def _owned(column: Column, owner: str) -> Column:
    return Column(column.name, column.type, column.label, column.reference, owner, column.max_length, column.choice)


def _col(name: str, kind: str = "string", label: str = "", reference: str = "", *, owner: str = "", max_length: int = 40,
         choice: bool = False) -> Column:
    return Column(name, kind, label or name.replace("_", " ").capitalize(), reference, owner, max_length, choice)


def _task_columns(kind: TableKind) -> list[Column]:
    task = [
        _col("number", label="Number", owner="task"),
        _col("short_description", label="Short description", owner="task", max_length=160),
        _col("description", label="Description", owner="task", max_length=4000),
        _col("state", "integer", "State", owner="task", choice=True),
        _col("priority", "integer", "Priority", owner="task", choice=True),
        _col("impact", "integer", "Impact", owner="task", choice=True),
        _col("urgency", "integer", "Urgency", owner="task", choice=True),
        _col("active", "boolean", "Active", owner="task"),
        _col("opened_at", "glide_date_time", "Opened", owner="task"),
        _col("opened_by", "reference", "Opened by", "sys_user", owner="task", max_length=32),
        _col("closed_at", "glide_date_time", "Closed", owner="task"),
        _col("closed_by", "reference", "Closed by", "sys_user", owner="task", max_length=32),
        _col("assigned_to", "reference", "Assigned to", "sys_user", owner="task", max_length=32),
        _col("assignment_group", "reference", "Assignment group", "sys_user_group", owner="task", max_length=32),
        _col("company", "reference", "Company", "core_company", owner="task", max_length=32),
        _col("contact_type", "string", "Channel", owner="task", choice=True),
        _col("made_sla", "boolean", "Made SLA", owner="task"),
        _col("reassignment_count", "integer", "Reassignment count", owner="task"),
        _col("sys_class_name", "string", "Task type", owner="task", max_length=80),
        _col("work_notes", "journal_input", "Work notes", owner="task", max_length=4000),
        _col("comments", "journal_input", "Additional comments", owner="task", max_length=4000),
        _col("close_notes", "string", "Close notes", owner="task", max_length=4000),
    ]
    own = kind.name
    if own == "incident":
        task += [_col("caller_id", "reference", "Caller", "sys_user", owner=own, max_length=32),
                 _col("incident_state", "integer", "Incident state", owner=own, choice=True),
                 _col("hold_reason", "integer", "On hold reason", owner=own, choice=True),
                 _col("resolved_at", "glide_date_time", "Resolved", owner=own),
                 _col("resolved_by", "reference", "Resolved by", "sys_user", owner=own, max_length=32),
                 _col("close_code", "string", "Resolution code", owner=own, choice=True),
                 _col("category", "string", "Category", owner=own, choice=True)]
    elif own == "sn_customerservice_case":
        task += [_col("contact", "reference", "Contact", "customer_contact", owner=own, max_length=32),
                 _col("account", "reference", "Account", "customer_account", owner=own, max_length=32),
                 _col("resolved_at", "glide_date_time", "Resolved", owner=own),
                 _col("resolved_by", "reference", "Resolved by", "sys_user", owner=own, max_length=32),
                 _col("category", "string", "Category", owner=own, choice=True)]
    else:
        task += [_col("requested_for", "reference", "Requested for", "sys_user", owner=own, max_length=32),
                 _col("stage", "string", "Stage", owner=own, choice=True),
                 _col("category", "string", "Category", owner=own, choice=True)]
    task += [_col("u_service", "choice", "Service", owner=own, choice=True), _col("u_sla_status", "string", "SLA status", owner=own)]
    return task


USER_COLUMNS = [_col("user_name", label="User ID"), _col("name", label="Name"), _col("first_name"), _col("last_name"),
                _col("email", max_length=100), _col("time_zone", label="Time zone", choice=True), _col("active", "boolean"),
                _col("company", "reference", "Company", "core_company", max_length=32), _col("title")]


def _other_tables() -> list[Table]:
    return [
        Table("sys_user", USER_COLUMNS, "name"),
        Table("customer_contact", [*USER_COLUMNS, _col("account", "reference", "Account", "customer_account", max_length=32)], "name"),
        Table("core_company", [_col("name"), _col("customer", "boolean"), _col("vendor", "boolean")], "name"),
        Table("customer_account", [_col("name"), _col("number"), _col("customer", "boolean")], "name"),
        Table("sys_user_group", [_col("name"), _col("description", max_length=1000), _col("active", "boolean")], "name"),
        Table("sys_user_role", [_col("name"), _col("description", max_length=1000)], "name"),
        Table("sys_user_has_role", [_col("user", "reference", "User", "sys_user", max_length=32),
                                    _col("role", "reference", "Role", "sys_user_role", max_length=32),
                                    _col("state"), _col("inherited", "boolean")], "user"),
        Table("sys_choice", [_col("name", label="Table"), _col("element"), _col("value"), _col("label"), _col("sequence", "integer"),
                             _col("dependent_value"), _col("inactive", "boolean"), _col("language")], "label"),
        Table("sys_dictionary", [_col("name", label="Table"), _col("element", label="Column name"), _col("column_label"),
                                 _col("internal_type"), _col("reference"), _col("max_length", "integer"), _col("active", "boolean"),
                                 _col("mandatory", "boolean"), _col("choice", "integer")], "column_label"),
        Table("sys_audit", [_col("tablename"), _col("documentkey", max_length=32), _col("fieldname"), _col("oldvalue", max_length=4000),
                            _col("newvalue", max_length=4000), _col("user"), _col("reason"), _col("record_checkpoint", "integer"),
                            _col("internal_checkpoint")], "documentkey", indexed="documentkey"),
        Table("sys_journal_field", [_col("name", label="Table"), _col("element"), _col("element_id", max_length=32),
                                    _col("value", max_length=4000)], "value", indexed="element_id"),
    ]


class QueryError(ValueError):
    """A part of an encoded query the instance would drop silently."""


Predicate = Callable[[Row], bool]


class _Encoded:
    """An encoded query, compiled against one table: its ^NQ groups and its ORDERBYs."""

    OPERATORS = ("ISNOTEMPTY", "ISEMPTY", "NOT IN", "NOT LIKE", "STARTSWITH", "ENDSWITH", "BETWEEN", "LIKE", "IN",
                 "!=", ">=", "<=", "=", ">", "<")
    FIELD = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")

    def __init__(self, text: str, table: Table, box: ServiceNowSandbox) -> None:
        self.table, self.box = table, box
        self.order: list[tuple[str, bool]] = []
        self.groups: list[list[list[Predicate]]] = []  # OR of groups; each an AND of terms; each an OR of conditions
        self.keys: list[set[str] | None] = []  # per group: the values its term on the table's indexed column allows
        text = text.replace("^^", "\x00")  # an escaped caret inside a value
        for group in text.split("^NQ") if text else []:
            terms: list[list[Predicate]] = []
            term_keys: list[set[str] | None] = []  # per term: the indexed values it allows (None: any)
            for part in group.split("^"):
                part = part.replace("\x00", "^")
                if not part or part == "EQ":
                    continue
                if part.startswith("ORDERBY"):
                    self._order_by(part)
                    continue
                alternative = part.startswith("OR")
                condition = self._condition(part[2:] if alternative else part)
                if condition is None:
                    continue  # dropped silently, as glide.invalid_query.returns_no_rows=false does
                if alternative and terms:
                    terms[-1].append(condition)
                    term_keys[-1] = None  # an OR widens the term: the index cannot narrow it
                else:
                    terms.append([condition])
                    term_keys.append(self._keys_of(part))
            self.groups.append(terms)
            narrowing = [keys for keys in term_keys if keys is not None]
            self.keys.append(set.intersection(*narrowing) if narrowing else None)

    def _keys_of(self, part: str) -> set[str] | None:
        """The values a term ``<indexed>=v`` or ``<indexed>INa,b`` allows (None: not such a term)."""
        column = self.table.indexed
        if not column:
            return None
        if part.startswith(f"{column}IN"):
            return set(part[len(column) + 2:].split(","))
        if part.startswith(f"{column}="):
            return {part[len(column) + 1:]}
        return None

    def _order_by(self, part: str) -> None:
        desc = part.startswith("ORDERBYDESC")
        name = part.removeprefix("ORDERBYDESC" if desc else "ORDERBY")
        if self.box.column(self.table, name) is not None and all(n != name for n, _ in self.order):
            self.order.append((name, desc))

    def matches(self, row: Row) -> bool:
        if not self.groups:
            return True
        return any(all(any(c(row) for c in term) for term in terms) for terms in self.groups)

    def _condition(self, part: str) -> Predicate | None:
        found = self.FIELD.match(part)
        if found is None:
            return None
        path, rest = found.group(), part[found.end():]
        operator = next((op for op in self.OPERATORS if rest.startswith(op)), None)
        column = self.box.column(self.table, path)
        if operator is None or column is None:
            return None
        literal = rest[len(operator):]
        try:
            return self._predicate(path, column, operator, literal)
        except QueryError:
            return None

    def _predicate(self, path: str, column: Column, operator: str, literal: str) -> Predicate:
        def value(row: Row) -> str:
            return self.box.walk(self.table, row, path)

        if operator == "ISEMPTY":
            return lambda row: value(row) == ""
        if operator == "ISNOTEMPTY":
            return lambda row: value(row) != ""
        if operator in ("LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH"):
            needle = literal.lower()
            test: Callable[[str], bool] = {
                "LIKE": lambda v: needle in v, "NOT LIKE": lambda v: needle not in v,
                "STARTSWITH": lambda v: v.startswith(needle), "ENDSWITH": lambda v: v.endswith(needle)}[operator]
            return lambda row: test(value(row).lower())
        if operator in ("IN", "NOT IN"):
            wanted = {self._normal(column, item) for item in literal.split(",")}
            inside = operator == "IN"
            return lambda row: (value(row) in wanted) == inside
        if operator == "BETWEEN":
            low, _, high = literal.partition("@")
            lo, hi = self._key(column, self._normal(column, low)), self._key(column, self._normal(column, high))
            return lambda row: value(row) != "" and lo <= self._key(column, value(row)) <= hi
        wanted_value = self._normal(column, literal)
        if operator == "=":
            return lambda row: value(row) == wanted_value
        if operator == "!=":
            return lambda row: value(row) != wanted_value
        bound = self._key(column, wanted_value)
        compare: Callable[[Any, Any], bool] = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                                               "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}[operator]
        return lambda row: value(row) != "" and compare(self._key(column, value(row)), bound)

    def _normal(self, column: Column, literal: str) -> str:
        """The stored form of a literal (date-times as UTC text, booleans as true/false)."""
        if column.type == "glide_date_time":
            return self.box.date_literal(literal)
        if column.type == "boolean":
            return {"1": "true", "0": "false"}.get(literal, literal)
        return literal

    @staticmethod
    def _key(column: Column, value: str) -> Any:
        if column.type == "integer":
            try:
                return int(value)
            except ValueError:
                raise QueryError(f"{value!r} is not a number") from None
        return value

    def sort(self, rows: list[Row]) -> list[Row]:
        for path, desc in reversed(self.order):
            column = self.box.column(self.table, path)
            assert column is not None

            def key(row: Row, path: str = path, column: Column = column) -> tuple[int, Any]:
                raw = self.box.walk(self.table, row, path)
                if column.type == "integer":
                    try:
                        return (1, int(raw))
                    except ValueError:
                        return (0, 0)
                return (1 if raw else 0, raw)

            rows = sorted(rows, key=key, reverse=desc)
        return rows


@dataclass
class _RateRule:
    sys_id: str
    resource: str  # "METHOD /now/..." as the rule names it
    per_hour: int
    counts: dict[int, int] = field(default_factory=dict)  # hour window start (epoch) -> requests


class ServiceNowSandbox(SandboxServer):
    """The emulator. Read its state in tests: ``tables``, ``api_journal``, ``requests``; change it through the hooks."""

    first_stream = "/api/now/table/incident"
    page_size = 500

    def __init__(
        self,
        tickets: int = 200,
        *,
        seed: int = 1,
        anchor: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
        username: str = "sla.bridge",
        password: str = "sandbox-password",
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",
        expires_in: int = 1799,
        instance: str = "sandbox",
        table: str = "incident",
        user_zone: str = "America/Los_Angeles",
        acl_hidden: Iterable[str] = (),
        rate_rules: dict[str, int] | None = None,
        audit_viewer: bool = True,
        deal: tuple[int, int] = (0, 1),
    ) -> None:
        if table not in TABLES:
            raise ValueError(f"table {table!r}: the sandbox serves {', '.join(TABLES)}")
        self.base_url = f"https://{instance}.service-now.com"
        super().__init__(clock=clock)
        self.anchor = (anchor or self.now()).astimezone(UTC).replace(microsecond=0)
        self.seed, self.table, self.kind = seed, table, TABLES[table]
        self.first_stream = f"/api/now/table/{table}"
        self.username, self.password, self.token = username, password, password
        self.client_id, self.client_secret, self.expires_in = client_id, client_secret, expires_in
        self.user_zone = ZoneInfo(user_zone)
        self.hidden: set[str] = set(acl_hidden)
        self.audit_viewer = audit_viewer
        self.rules = [_RateRule(self._guid("rate_rule", resource), resource, per_hour) for resource, per_hour in (rate_rules or {}).items()]
        self._counted: _RateRule | None = None  # the rule that counted the request being answered
        self.tokens: dict[str, datetime] = {}  # access token -> when it expires
        self.refused: dict[str, str] = {}  # field -> the data policy's message
        self.api_journal: list[dict[str, str]] = []  # every journal entry written through the API
        self.malformed: set[str] = set()
        self.batch_budget: int | None = None  # items the next batch runs before its timeout
        self.semaphore_rejections = 0
        self._rng = random.Random(f"servicenow:{seed}")
        self._checkpoint = 0
        self._last_autoclose: datetime | None = None
        self._created = 0  # records created through the API
        self.tables: dict[str, Table] = {t.name: t for t in _other_tables()}
        for kind in TABLES.values():
            self.tables[kind.name] = Table(kind.name, _task_columns(kind), "number")
        self.numbers: dict[int, str] = {}  # story number -> sys_id, deleted ones included
        self._people()
        self._choices()
        self._dictionary()
        self._seed(tickets, seed, deal)

    @classmethod
    def for_demo(cls, tickets: int, seed: int, *, deal: tuple[int, int] = (0, 1)) -> ServiceNowSandbox:
        """Real time; rate-limit rules a demo of 1500 tickets never meets (a run's pull takes about 20
        Table API requests and its write-back 60 batches of 25: the rules allow a hundred times that
        an hour, or more)."""
        return cls(tickets, seed=seed, deal=deal, rate_rules={"GET /now/table/{tableName}": 20_000, "POST /now/batch": 6_000})

    @classmethod
    def for_tests(cls, tickets: int, *, anchor: datetime) -> ServiceNowSandbox:
        return cls(tickets, seed=11, anchor=anchor, clock=lambda: anchor)

    # -- ids, times -----------------------------------------------------------------------

    def _guid(self, *parts: object) -> str:
        """A deterministic sys_id for a named thing (the same on every run with the same seed)."""
        return hashlib.md5(":".join(map(str, ("servicenow", self.seed, *parts))).encode()).hexdigest()

    def _random_guid(self) -> str:
        """A sys_id for an audit or journal row: random-looking, so sys_id order is not time order."""
        return f"{self._rng.getrandbits(128):032x}"

    def stamp(self, moment: datetime) -> str:
        return moment.astimezone(UTC).strftime(DATE)

    def date_literal(self, text: str) -> str:
        """A query's date-time literal as stored (UTC text); QueryError when the instance would drop it."""
        generated = re.fullmatch(r"javascript:gs\.dateGenerate\('(\d{4}-\d{2}-\d{2})',\s*'(\d{2}:\d{2}:\d{2})'\)", text)
        if generated:  # read in the API user's zone (the trap the reference warns about)
            local = datetime.strptime(f"{generated.group(1)} {generated.group(2)}", DATE).replace(tzinfo=self.user_zone)
            return self.stamp(local)
        for form in (DATE, "%Y-%m-%d"):
            try:
                return datetime.strptime(text, form).strftime(DATE)
            except ValueError:
                continue
        raise QueryError(f"{text!r} is not a date-time")

    def external_id(self, number: int) -> str:
        """The sys_id of story ticket ``number`` (what the connector's tickets carry as their id)."""
        return self.numbers.get(number) or self._guid(self.table, "record", number)

    # -- the world ------------------------------------------------------------------------

    def _people(self) -> None:
        created = self.stamp(self.anchor - timedelta(days=400))
        base = {"sys_created_on": created, "sys_updated_on": created, "sys_created_by": ADMIN, "sys_updated_by": ADMIN,
                "sys_mod_count": "0"}
        users, companies = self.tables["sys_user"], self.tables["core_company"]
        accounts, contacts = self.tables["customer_account"], self.tables["customer_contact"]
        self.companies: list[str] = []
        for index, name in enumerate(CUSTOMERS):
            sys_id = self._guid("company", index)
            companies.add({**base, "sys_id": sys_id, "name": name, "customer": "true", "vendor": "false"})
            accounts.add({**base, "sys_id": sys_id, "name": name, "number": f"ACCT{1000 + index:07d}", "customer": "true"})
            self.companies.append(sys_id)
        self.groups = []
        for index, name in enumerate(GROUPS):
            sys_id = self._guid("group", index)
            self.tables["sys_user_group"].add({**base, "sys_id": sys_id, "name": name, "description": f"{name} team", "active": "true"})
            self.groups.append(sys_id)
        zone = self.user_zone.key
        self.users: dict[str, str] = {}  # user_name -> sys_id

        def user(user_name: str, name: str, email: str, time_zone: str, company: str = "", title: str = "") -> str:
            sys_id = self._guid("user", user_name)
            first, _, last = name.partition(" ")
            row = users.add({**base, "sys_id": sys_id, "user_name": user_name, "name": name, "first_name": first, "last_name": last,
                             "email": email, "time_zone": time_zone, "active": "true", "company": company, "title": title})
            self.users[user_name] = sys_id
            return row["sys_id"]

        user(self.username, "SLA Bridge Integration", "sla-bridge@provider.example", zone, title="Integration user")
        user(ADMIN, "System Administrator", "admin@provider.example", "UTC", title="Administrator")
        self.agents = [user(n, n.replace(".", " ").title(), f"{n}@provider.example", "Europe/Berlin", title="Support agent")
                       for n in AGENT_NAMES]
        self.requesters: dict[tuple[int, int], str] = {}
        for customer, name in enumerate(CUSTOMERS):
            slug = name.lower().split()[0]
            for index in range(REQUESTERS):
                sys_id = user(f"{slug}.user{index + 1:02d}", f"{name.split()[0]} User{index + 1:02d}", f"user{index + 1}@{slug}.example",
                              "Europe/London", self.companies[customer])
                contacts.add({**users.rows[sys_id], "account": self.companies[customer]})
                self.requesters[(customer, index)] = sys_id
        roles = {}
        for role in ("itil", "audit_viewer", "admin", "snc_platform_rest_api_access", "sn_customerservice_agent"):
            roles[role] = self._guid("role", role)
            self.tables["sys_user_role"].add({**base, "sys_id": roles[role], "name": role, "description": f"The {role} role"})
        agent_roles = ("itil", "sn_customerservice_agent") if self.table == "sn_customerservice_case" else ("itil",)
        grants = [(self.username, ("itil", "audit_viewer", "snc_platform_rest_api_access")), (ADMIN, ("admin", "itil", "audit_viewer")),
                  *((n, agent_roles) for n in AGENT_NAMES)]
        for user_name, granted in grants:
            for role in granted:
                self.tables["sys_user_has_role"].add({**base, "sys_id": self._guid("has_role", user_name, role),
                                                      "user": self.users[user_name], "role": roles[role], "state": "active",
                                                      "inherited": "false"})

    def _choices(self) -> None:
        rows: list[tuple[str, str, str, str]] = []  # (table, element, value, label)
        rows += [("task", "state", v, label) for v, label in TASK_STATES.items()]
        rows += [("task", e, v, label) for e, labels in (("priority", PRIORITY_LABELS), ("impact", SCALE_LABELS), ("urgency", SCALE_LABELS))
                 for v, label in labels.items()]
        rows += [("task", "contact_type", v, v.title()) for v in ("email", "phone", "self-service", "chat")]
        for kind in TABLES.values():
            own = kind.name
            rows += [(own, "state", v, label) for v, label in kind.states.items()]
            if own == "incident":
                rows += [(own, "incident_state", v, label) for v, label in kind.states.items()]
                rows += [(own, "hold_reason", v, label) for v, label in
                         (("1", "Awaiting Caller"), ("3", "Awaiting Problem"), ("4", "Awaiting Vendor"), ("5", "Awaiting Change"))]
                rows += [(own, "priority", v, label) for v, label in PRIORITY_LABELS.items()]
                rows += [(own, "close_code", v, v) for v in ("Solved (Permanently)", "Solved (Work Around)", "Not Solved (Not Reproducible)")]
            if own == "sc_req_item":
                rows += [(own, "stage", v, v.replace("_", " ").title()) for v in ("waiting_for_approval", "fulfillment", "complete")]
            rows += [(own, "category", v, v.title()) for v in ("inquiry", "software", "hardware", "network")]
            rows += [(own, "u_service", v, SERVICE_LABELS[v]) for v in SERVICES]
        for sequence, (table, element, value, label) in enumerate(rows):
            self._choice(table, element, value, label, sequence)

    def _choice(self, table: str, element: str, value: str, label: str, sequence: int) -> None:
        created = self.stamp(self.anchor - timedelta(days=400))
        self.tables["sys_choice"].add({"sys_id": self._guid("choice", table, element, value), "name": table, "element": element,
                                       "value": value, "label": label, "sequence": str(sequence), "dependent_value": "",
                                       "inactive": "false", "language": "en", "sys_created_on": created, "sys_updated_on": created,
                                       "sys_created_by": ADMIN, "sys_updated_by": ADMIN, "sys_mod_count": "0"})

    def _dictionary(self) -> None:
        created = self.stamp(self.anchor - timedelta(days=400))
        seen: set[tuple[str, str]] = set()
        dictionary = self.tables["sys_dictionary"]

        def entry(owner: str, element: str, label: str, kind: str, reference: str = "", length: int = 40, choice: bool = False) -> None:
            if (owner, element) in seen:
                return
            seen.add((owner, element))
            dictionary.add({"sys_id": self._guid("dictionary", owner, element), "name": owner, "element": element, "column_label": label,
                            "internal_type": kind, "reference": reference, "max_length": str(length), "active": "true",
                            "mandatory": "false", "choice": "3" if choice else "0", "sys_created_on": created, "sys_updated_on": created,
                            "sys_created_by": ADMIN, "sys_updated_by": ADMIN, "sys_mod_count": "0"})

        entry("task", "", "Task", "collection")
        for kind in TABLES.values():
            entry(kind.name, "", kind.label, "collection")
            for column in self.tables[kind.name].columns.values():
                owner = column.owner if column.owner != kind.name or not column.name.startswith("sys_") else kind.name
                entry(owner, column.name, column.label, column.type, column.reference, column.max_length, column.choice)

    # -- the story ------------------------------------------------------------------------

    def _seed(self, count: int, seed: int, deal: tuple[int, int]) -> None:
        latest = self.anchor - timedelta(minutes=5)
        index, of = deal
        stories = [s for s in tell(count, seed=seed, latest=latest) if s.number % of == index]
        plans: list[tuple[datetime, int, int, Step | str]] = []
        by_number = {story.number: story for story in stories}
        for story in stories:
            plans.extend((step.at, story.number, position, step) for position, step in enumerate(story.steps))
        # A bulk list edit by an admin: 40 records' category in one second.
        bulk_at = (latest - timedelta(days=3)).replace(hour=9, minute=30, second=0)
        plans.extend((bulk_at, number, 10_000, "bulk") for number in sorted(by_number)[:40]
                     if by_number[number].created < bulk_at and not any(s.delete and s.at <= bulk_at for s in by_number[number].steps))
        for moment, number, _, step in sorted(plans, key=lambda plan: (plan[0], plan[1], plan[2])):
            if isinstance(step, Step):
                self._autoclose(moment)
                self._story_step(by_number[number], moment, step)
            else:
                self._update(self.numbers[number], {"category": "software"}, ADMIN, moment)
        self._autoclose(latest)

    def _autoclose(self, until: datetime) -> None:
        """The daily "Autoclose Incidents" job (03:00:00 UTC): records resolved more than 7 days
        before the run are closed by ``system``, every one of them in that same second."""
        if not self.kind.closed:
            return
        if self._last_autoclose is None:  # the job's last run before the story begins
            self._last_autoclose = (until - timedelta(hours=3)).replace(hour=3, minute=0, second=0, microsecond=0)
            return
        moment = self._last_autoclose + timedelta(days=1)
        while moment <= until:
            records = self.tables[self.table]
            for row in list(records.ordered()):
                resolved = row.get("resolved_at") or (row["sys_updated_on"] if row["state"] == self.kind.resolved else "")
                if row["state"] == self.kind.resolved and resolved and resolved <= self.stamp(moment - AUTOCLOSE):
                    self._update(row["sys_id"], {"state": self.kind.closed}, SYSTEM, moment)
            self._last_autoclose = moment
            moment += timedelta(days=1)

    def _story_step(self, story: TicketStory, moment: datetime, step: Step) -> None:
        number = story.number
        if step.first:
            self._create(story, moment)
            return
        sys_id = self.numbers[number]
        if sys_id not in self.tables[self.table].rows:
            return
        if step.delete:
            self._delete(sys_id)
            return
        row = self.tables[self.table].rows[sys_id]
        author = self._author(row, story, step)
        changes: dict[str, str] = {}
        if step.actor == "agent" and not row["assigned_to"]:
            changes["assigned_to"] = self.agents[story.agent - 1]
        if step.public is not None:
            text = f"Message on {row['number']}" if step.public else f"Internal: checking {row['number']} with 2nd line"
            changes["comments" if step.public else "work_notes"] = text
        if step.status:
            changes.update(self._state_change(row, step.status))
        if step.group is not None:
            changes["assignment_group"] = self.groups[step.group]
        self._update(sys_id, changes, author, moment)

    def _state_change(self, row: Row, status: str) -> dict[str, str]:
        code = self.kind.story[status]
        changes = {"state": code} if row["state"] != code else {}
        if self.kind.hold_reason:
            wanted = "1" if status == "waiting_customer" else ""
            if row["hold_reason"] != wanted:
                changes["hold_reason"] = wanted
        return changes

    def _author(self, row: Row, story: TicketStory, step: Step) -> str:
        if step.actor == "requester":
            return self._user_name(self.requesters[(story.customer, story.requester)])
        if step.actor == "agent":
            return AGENT_NAMES[story.agent - 1]
        return ADMIN

    def _user_name(self, sys_id: str) -> str:
        return self.tables["sys_user"].rows[sys_id]["user_name"]

    def _create(self, story: TicketStory, moment: datetime) -> None:
        kind = self.kind
        sys_id = self._guid(self.table, "record", story.number)
        self.numbers[story.number] = sys_id
        impact, urgency = IMPACT_URGENCY[story.priority]
        caller = self.requesters[(story.customer, story.requester)]
        opened = moment - timedelta(seconds=random.Random(f"opened:{self.seed}:{story.number}").randrange(5, 400))
        values = {
            "sys_id": sys_id, "number": f"{kind.prefix}{10000 + story.number:07d}", "short_description": f"Request {story.number}",
            "description": f"Customer report {story.number}", "state": kind.story["new"], "impact": impact, "urgency": urgency,
            "priority": PRIORITY_OF[(impact, urgency)], "active": "true", "opened_at": self.stamp(opened), "opened_by": caller,
            kind.caller: caller, "assignment_group": self.groups[story.group], "company": self.companies[story.customer],
            "contact_type": "self-service", "made_sla": "true", "reassignment_count": "0", "sys_class_name": self.table,
            "category": "inquiry", "u_service": story.service,
        }
        if kind.customer != "company":
            values[kind.customer] = self.companies[story.customer]
        if self.table == "incident":
            values["incident_state"] = values["state"]
        if self.table == "sc_req_item":
            values["stage"] = "fulfillment"
        first = story.steps[0]
        self._insert(values, self._user_name(caller), moment,
                     {"comments": f"Customer report {story.number}"} if first.public else {})

    def _insert(self, values: Row, user: str, moment: datetime, journal: dict[str, str]) -> None:
        table = self.tables[self.table]
        stamp = self.stamp(moment)
        row = table.add({**values, "sys_created_on": stamp, "sys_created_by": user, "sys_updated_on": stamp, "sys_updated_by": user,
                         "sys_mod_count": "0"})
        for name, column in table.columns.items():
            if name.startswith("sys_") or column.type == "journal_input" or not row[name]:
                continue
            self._audit(row["sys_id"], name, "", self._audit_value(column, row[name]), user, stamp, 0)
        for element, text in journal.items():
            self._journal(row["sys_id"], element, text, user, stamp, 0)

    def _delete(self, sys_id: str) -> None:
        self.tables[self.table].remove(sys_id)
        self.hidden.discard(sys_id)

    def _rules(self, row: Row, changes: dict[str, str], user: str, stamp: str) -> dict[str, str]:
        """What the instance's business rules add to a change of state or of assignment group."""
        group = changes.get("assignment_group")
        if group is not None and group != row["assignment_group"]:
            changes = {**changes, "reassignment_count": str(int(row["reassignment_count"] or 0) + 1)}
        state = changes.get("state")
        if state is None or state == row["state"]:
            return changes
        extra = dict(changes)
        if self.table == "incident":
            extra["incident_state"] = state
            if state != "3" and row["hold_reason"] and "hold_reason" not in changes:
                extra["hold_reason"] = ""
        if state == self.kind.resolved and "resolved_at" in self.tables[self.table].columns:
            extra.setdefault("resolved_at", stamp)
            extra.setdefault("resolved_by", self.users.get(user, ""))
            if self.table == "incident":
                extra.setdefault("close_code", "Solved (Permanently)")
                extra.setdefault("close_notes", "Resolved by the assignee")
        if state in self.kind.inactive or (self.table == "sc_req_item" and state == "3"):
            extra.setdefault("closed_at", stamp)
            extra.setdefault("closed_by", self.users.get(user, ""))
            extra["active"] = "false"
        elif row["active"] == "false":
            extra["active"] = "true"
        if row["state"] == self.kind.resolved and state != self.kind.closed and "resolved_at" in row:
            extra.setdefault("resolved_at", "")  # reopened
            extra.setdefault("resolved_by", "")
        return extra

    def _update(self, sys_id: str, changes: dict[str, str], user: str, moment: datetime) -> bool:
        """Apply a change as the instance would; False when it changes nothing (and nothing is written)."""
        table = self.tables[self.table]
        row = table.rows[sys_id]
        stamp = self.stamp(moment)
        changes = self._rules(row, changes, user, stamp)
        fields: list[tuple[str, str, str]] = []
        journal: list[tuple[str, str]] = []
        for name, value in changes.items():
            column = table.columns.get(name)
            if column is None or name.startswith("sys_"):
                continue  # an unknown field, or a system one: ignored without a word
            if column.type == "journal_input":
                if value:
                    journal.append((name, value))
                continue
            if row[name] != value:
                fields.append((name, row[name], value))
        if not fields and not journal:
            return False
        count = int(row["sys_mod_count"]) + 1
        for name, old, new in fields:
            row[name] = new
            column = table.columns[name]
            self._audit(sys_id, name, self._audit_value(column, old), self._audit_value(column, new), user, stamp, count)
        for element, text in journal:
            self._journal(sys_id, element, text, user, stamp, count)
        if stamp >= row["sys_updated_on"]:
            row["sys_updated_on"], row["sys_updated_by"] = stamp, user
        row["sys_mod_count"] = str(count)
        return True

    @staticmethod
    def _audit_value(column: Column, value: str) -> str:
        if column.type == "boolean":
            return {"true": "1", "false": "0"}.get(value, value)  # sys_audit keeps booleans as 1/0
        return value

    def _audit(self, sys_id: str, name: str, old: str, new: str, user: str, stamp: str, checkpoint: int) -> None:
        self._checkpoint += 1
        self.tables["sys_audit"].add({
            "sys_id": self._random_guid(), "tablename": self.table, "documentkey": sys_id, "fieldname": name, "oldvalue": old,
            "newvalue": new, "user": user, "reason": "", "record_checkpoint": str(checkpoint),
            "internal_checkpoint": f"{0x18c00000000 + self._checkpoint:x}00000001", "sys_created_on": stamp, "sys_created_by": user,
            "sys_updated_on": stamp, "sys_updated_by": user, "sys_mod_count": "0"})

    def _journal(self, sys_id: str, element: str, text: str, user: str, stamp: str, checkpoint: int) -> None:
        self.tables["sys_journal_field"].add({
            "sys_id": self._random_guid(), "name": self.table, "element": element, "element_id": sys_id, "value": text,
            "sys_created_on": stamp, "sys_created_by": user, "sys_updated_on": stamp, "sys_updated_by": user, "sys_mod_count": "0"})
        self._audit(sys_id, element, JOURNAL_ADDITION, text, user, stamp, checkpoint)

    # -- changing the world from a test ---------------------------------------------------

    def _record(self, number: int) -> Row:
        sys_id = self.numbers.get(number)
        row = self.tables[self.table].rows.get(sys_id or "")
        if row is None:
            raise KeyError(f"story ticket {number} is not in this sandbox's {self.table} (dealt elsewhere, or deleted)")
        return row

    def customer_replies(self, number: int, at: datetime | None = None, author: str | None = None) -> None:
        """The caller (or ``author``, a user name) adds a comment; a record on hold awaiting the
        caller, or resolved, goes back to in progress (the base system's rules)."""
        with self._lock:
            row = self._record(number)
            caller = author or self._user_name(row[self.kind.caller])
            changes = {"comments": "Any news?"}
            if row["state"] in (self.kind.story["waiting_customer"], self.kind.resolved):
                changes.update(self._state_change(row, "open"))
            self._update(row["sys_id"], changes, caller, at or self.now())

    def agent_replies(self, number: int, at: datetime | None = None, *, waiting: bool = False) -> None:
        """The assignee answers in a comment; ``waiting`` puts the record on hold awaiting the caller,
        otherwise a new record goes in progress."""
        with self._lock:
            row = self._record(number)
            agent = self._user_name(row["assigned_to"]) if row["assigned_to"] else AGENT_NAMES[0]
            changes = {"comments": "Could you send the logs?" if waiting else "Looking into it."}
            if waiting:
                changes.update(self._state_change(row, "waiting_customer"))
            elif row["state"] == self.kind.story["new"]:
                changes.update(self._state_change(row, "open"))
            self._update(row["sys_id"], changes, agent, at or self.now())

    def agent_edits(self, number: int, at: datetime | None = None, *, short_description: str | None = None) -> None:
        """An agent edits the record in the UI (moves ``sys_updated_on``, changes no state)."""
        with self._lock:
            row = self._record(number)
            text = short_description if short_description is not None else f"{row['short_description']} (edited)"
            self._update(row["sys_id"], {"short_description": text}, AGENT_NAMES[1], at or self.now())

    def hand_off(self, number: int, group: str, at: datetime | None = None) -> str:
        """An agent hands record ``number`` to the group named ``group`` (a new ``sys_user_group``
        row where none has that name); returns the group's sys_id."""
        with self._lock:
            row = self._record(number)
            groups = self.tables["sys_user_group"]
            sys_id = next((g["sys_id"] for g in groups.ordered() if g["name"] == group), None)
            if sys_id is None:
                sys_id = self._guid("group", group)
                stamp = self.stamp(self.anchor - timedelta(days=30))
                groups.add({"sys_id": sys_id, "name": group, "description": f"{group} team", "active": "true", "sys_created_on": stamp,
                            "sys_updated_on": stamp, "sys_created_by": ADMIN, "sys_updated_by": ADMIN, "sys_mod_count": "0"})
            agent = self._user_name(row["assigned_to"]) if row["assigned_to"] else AGENT_NAMES[0]
            self._update(row["sys_id"], {"assignment_group": sys_id}, agent, at or self.now())
            return sys_id

    def delete_group(self, group: str) -> None:
        """An admin deletes the group named ``group``: records and audit rows keep its sys_id."""
        with self._lock:
            groups = self.tables["sys_user_group"]
            for row in [g for g in groups.ordered() if g["name"] == group]:
                groups.remove(row["sys_id"])

    def noted(self, number: int, marker: str, at: datetime | None = None) -> None:
        """A work note by the integration user carrying ``marker`` (posted before this pull, by a
        run against another store); four minutes before the anchor unless ``at`` says."""
        with self._lock:
            row = self._record(number)
            moment = at or self.anchor - timedelta(minutes=4)
            self._update(row["sys_id"], {"work_notes": f"SLA breach recorded by sla-bridge. {marker}"}, self.username, moment)

    def long_history(self, number: int, entries: int, at: datetime | None = None) -> None:
        """``entries`` more work notes by agents, so the record's sys_audit rows fill more than one page."""
        with self._lock:
            row = self._record(number)
            moment = at or self.anchor - timedelta(minutes=4)
            for index in range(entries):
                self._update(row["sys_id"], {"work_notes": f"Checked again ({index + 1})"}, AGENT_NAMES[index % len(AGENT_NAMES)], moment)

    def malform(self, number: int) -> None:
        """Record ``number`` comes out malformed: its ``opened_at`` and ``sys_created_on`` are not
        date-times. (Its ``sys_updated_on`` stays readable: the instance sorts and pages by it.)"""
        with self._lock:
            self.malformed.add(self._record(number)["sys_id"])

    def unknown_value(self, number: int) -> str:
        """Record ``number`` moves to a state the instance added (a sys_choice row "Awaiting
        Evidence"), which no default maps; returns what the connector shows for it (the label)."""
        with self._lock:
            row = self._record(number)
            code, label = UNKNOWN_STATE
            if not any(r["element"] == "state" and r["value"] == code and r["name"] == self.table
                       for r in self.tables["sys_choice"].rows.values()):
                self._choice(self.table, "state", code, label, 900)
                if self.table == "incident":
                    self._choice(self.table, "incident_state", code, label, 901)
            self._update(row["sys_id"], {"state": code}, AGENT_NAMES[0], self.anchor - timedelta(minutes=4))
            return label

    def busy_ticket(self) -> int | None:
        """None: the suite's foreign-link case reads ``note_exists``, one sys_journal_field request
        that follows no link. (The sys_audit pages that do are :meth:`long_history`'s.)"""
        return None

    def downgrade(self, user_name: str) -> None:
        """The user loses the itil (and customer service agent) role: no longer an agent."""
        with self._lock:
            grants = self.tables["sys_user_has_role"]
            roles = {r["sys_id"] for r in self.tables["sys_user_role"].rows.values() if r["name"] in ("itil", "sn_customerservice_agent")}
            for sys_id, row in list(grants.rows.items()):
                if row["user"] == self.users[user_name] and row["role"] in roles:
                    grants.remove(sys_id)

    def hide(self, number: int) -> None:
        """A row ACL hides record ``number`` from the API user from now on."""
        with self._lock:
            self.hidden.add(self._record(number)["sys_id"])

    def refuse(self, field_name: str, message: str | None = None) -> None:
        """A data policy refuses writes of ``field_name`` through the API (403)."""
        with self._lock:
            self.refused[field_name] = message or f"Data Policy Exception: \n The following fields are read only: {field_name}"

    def batch_timeout(self, after: int) -> None:
        """The next batch hits the "REST Batch API request timeout" after ``after`` items: the rest are unserviced."""
        with self._lock:
            self.batch_budget = after

    def semaphores_exhausted(self, times: int = 1) -> None:
        """The next ``times`` API requests find every API_INT semaphore taken: 429 without any header."""
        with self._lock:
            self.semaphore_rejections += times

    def comments_by(self, user_name: str) -> list[str]:
        """The texts of customer-visible comments by ``user_name`` (the integration user's should be none)."""
        return [r["value"] for r in self.tables["sys_journal_field"].rows.values() if r["element"] == "comments" and r["sys_created_by"] == user_name]

    def work_notes(self, number: int) -> list[str]:
        sys_id = self.numbers[number]
        return [r["value"] for r in sorted(self.tables["sys_journal_field"].rows.values(), key=lambda r: r["sys_created_on"])
                if r["element"] == "work_notes" and r["element_id"] == sys_id]

    def writes(self) -> int:
        """Requests that could change something (a token request changes nothing)."""
        return sum(1 for method, path, _ in self.requests if method not in ("GET", "HEAD") and path != "/oauth_token.do")

    # -- what the core reads through the sandbox protocol ---------------------------------

    def source_config(self, url: str, token_env: str) -> dict[str, Any]:
        return {
            "system": "servicenow",
            "url": url,
            "start": (self.anchor - timedelta(days=100)).date().isoformat(),
            "auth": {"username": self.username, "password_env": token_env},
            "table": self.table,
            # Dot-walked to the names: a reference reads as a sys_id raw, and policies match names.
            "fields": {"customer": f"{self.kind.customer}.name", "group": "assignment_group.name"},
            "writeback": {"enabled": True, "status_field": "u_sla_status"},
        }

    def writeback_summary(self) -> WritebackSummary:
        tagged = sum(1 for row in self.tables[self.table].rows.values() if row["u_sla_status"])
        notes = [r["value"] for r in self.tables["sys_journal_field"].rows.values()
                 if r["element"] == "work_notes" and "[sla-bridge:" in r["value"]]
        return WritebackSummary(tickets_tagged=tagged, notes=notes)

    # -- reading rows ---------------------------------------------------------------------

    def column(self, table: Table, path: str) -> Column | None:
        """The column a (dot-walked) field name ends at; None when the table has no such field."""
        parts = path.split(".")
        for index, part in enumerate(parts):
            column = table.columns.get(part)
            if column is None:
                return None
            if index == len(parts) - 1:
                return column
            if column.type != "reference":
                return None
            table = self.tables[column.reference]
        return None

    def walk(self, table: Table, row: Row, path: str) -> str:
        """The raw value at a (dot-walked) field name ("" through an empty reference)."""
        if "." not in path:
            return row.get(path, "")
        _, target = self._owner(table, row, path)
        return target.get(path.rsplit(".", 1)[1], "") if target is not None else ""

    def _visible(self, table: Table, row: Row) -> bool:
        if table.name in AUDIT_READ_TABLES and not self.audit_viewer:
            return False
        return row["sys_id"] not in self.hidden

    def _display(self, table: Table, column: Column, raw: str, row: Row) -> str:
        if column.type == "journal_input":
            return self._journal_stream(row["sys_id"], column.name)
        if not raw:
            return ""
        if column.type == "glide_date_time":
            try:
                return datetime.strptime(raw, DATE).replace(tzinfo=UTC).astimezone(self.user_zone).strftime(DATE)
            except ValueError:
                return raw
        if column.type == "reference":
            target = self.tables[column.reference]
            found = target.rows.get(raw)
            return found.get(target.display, "") if found else ""
        if column.choice:
            return self._label(table.name, column.name, raw)
        return raw

    def _label(self, table: str, element: str, value: str) -> str:
        """A choice's label: the table's own row, else task's, else the value itself."""
        rows = self.tables["sys_choice"].rows
        for name in (table, "task"):
            found = rows.get(self._guid("choice", name, element, value))
            if found is not None:
                return found["label"]
        return value

    def _journal_stream(self, sys_id: str, element: str) -> str:
        entries = sorted((r for r in self.tables["sys_journal_field"].rows.values() if r["element_id"] == sys_id and r["element"] == element),
                         key=lambda r: r["sys_created_on"], reverse=True)
        kind = "Work notes" if element == "work_notes" else "Additional comments"
        users = {r["user_name"]: r["name"] for r in self.tables["sys_user"].rows.values()}
        parts = []
        for entry in entries:
            local = datetime.strptime(entry["sys_created_on"], DATE).replace(tzinfo=UTC).astimezone(self.user_zone).strftime(DATE)
            parts.append(f"{local} - {users.get(entry['sys_created_by'], entry['sys_created_by'])} ({kind})\n{entry['value']}\n\n")
        return "".join(parts)

    def _render(self, table: Table, row: Row, fields: list[str] | None, mode: str, links: bool) -> dict[str, Any]:
        names = fields if fields is not None else list(table.columns)
        out: dict[str, Any] = {}
        for name in names:
            column = self.column(table, name)
            if column is None:
                continue  # an unknown name in sysparm_fields: left out without a word
            owner, owner_row = self._owner(table, row, name)
            raw = owner_row.get(column.name, "") if owner_row is not None else ""
            if owner_row is not None and owner_row["sys_id"] in self.malformed and column.name in ("opened_at", "sys_created_on"):
                raw = "not a date"
            if column.type == "journal_input":
                raw = ""  # journals read back empty as raw values
            out[name] = self._shape(owner, column, raw, owner_row or {}, mode, links)
        return out

    def _owner(self, table: Table, row: Row, path: str) -> tuple[Table, Row | None]:
        """The table and row a dot-walked name's last part belongs to."""
        target: Row | None = row
        for part in path.split(".")[:-1]:
            column = table.columns[part]
            table = self.tables[column.reference]
            target = table.rows.get(target.get(part, "")) if target is not None else None
        return table, target

    def _shape(self, table: Table, column: Column, raw: str, row: Row, mode: str, links: bool) -> Any:
        if column.type == "reference" and raw:
            link = self.link(f"/api/now/table/{column.reference}/{raw}")
            if mode == "false":
                return {"link": link, "value": raw} if links else raw
            shown = self._display(table, column, raw, row)
            if mode == "true":
                return {"display_value": shown, "link": link} if links else shown
            return {"display_value": shown, "link": link, "value": raw} if links else {"display_value": shown, "value": raw}
        if mode == "false":
            return raw
        shown = self._display(table, column, raw, row)
        return shown if mode == "true" else {"display_value": shown, "value": raw}

    # -- HTTP -----------------------------------------------------------------------------

    def authorized(self, request: httpx.Request) -> bool:
        if request.url.path == "/oauth_token.do":
            return True  # it authenticates the client from its form
        header = request.headers.get("Authorization", "")
        if header == "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode():
            return True
        if header.startswith("Bearer "):
            expires = self.tokens.get(header.removeprefix("Bearer "))
            return expires is not None and self.now() < expires
        return False

    def unauthorized(self) -> httpx.Response:
        return self._error(401, "User Not Authenticated", "Required to provide Auth information")

    @staticmethod
    def _error(status: int, message: str, detail: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
        return json_response(status, {"error": {"message": message, "detail": detail}, "status": "failure"}, headers)

    def not_found(self) -> httpx.Response:
        return self._error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")

    def describe(self, request: httpx.Request, query: Query) -> Query:
        """A batch's log entry names its items (method and URL), so a test sees what it asked."""
        if request.url.path.endswith("/batch") and request.content:
            try:
                items = json.loads(request.content).get("rest_requests") or []
                return {**query, "rest_requests": [f"{i.get('method')} {i.get('url')}" for i in items if isinstance(i, dict)]}
            except (ValueError, AttributeError):
                return query
        return query

    def route(self, request: httpx.Request, path: str, query: Query, body: Any) -> httpx.Response:
        if path == "/oauth_token.do" and request.method == "POST":
            return self._oauth(request)
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "now"]:
            return json_response(404, {"error": {"message": "Not Found", "detail": None}, "status": "failure"})
        rest = parts[2:]
        if rest[:1] in (["v1"], ["v2"]):
            version, rest = rest[0], rest[1:]
        else:
            version = "latest"
        if rest == ["batch"] and request.method == "POST":
            return self._media_type(request) or self._batch(request, body)
        if rest[:1] == ["table"] and len(rest) in (2, 3):
            return self._table_route(request, rest[1], rest[2] if len(rest) == 3 else None, query, body, version)
        return self._error(400, "Requested URI does not represent any resource", None)

    def _table_route(self, request: httpx.Request, name: str, sys_id: str | None, query: Query, body: Any,
                     version: str) -> httpx.Response:
        table = self.tables.get(name)
        if table is None:
            return self._error(400, f"Invalid table {name}", None)
        method = request.method
        if sys_id is None and method == "GET":
            return self._list(request, table, query, version)
        if sys_id is not None and method == "GET":
            row = table.rows.get(sys_id)
            if row is None or not self._visible(table, row):
                return self.not_found()
            return json_response(200, {"result": self._render(table, row, *self._view(query))})
        if method in ("PATCH", "PUT", "POST"):
            refused = self._media_type(request)
            if refused is not None:
                return refused
        if sys_id is not None and method in ("PATCH", "PUT"):
            return self._patch(request, table, sys_id, query, body)
        if sys_id is None and method == "POST":
            return self._post(request, table, query, body)
        if sys_id is not None and method == "DELETE":
            return self._remove(table, sys_id)
        return self._error(405, "Method not Supported", f"the sandbox does not emulate {method} on this resource")

    def _media_type(self, request: httpx.Request) -> httpx.Response | None:
        """A write needs a JSON body: no Content-Type is a 400, another type a 415."""
        kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not kind:
            return self._error(400, "Content-Type header is missing", "A request with a body needs a Content-Type: application/json")
        if kind != "application/json":
            return self._error(415, "Unsupported Media Type", f"Content-Type {kind} is not supported: use application/json")
        return None

    @staticmethod
    def _one(query: Query, name: str, default: str = "") -> str:
        values = query.get(name)
        return values[0] if values else default

    def _view(self, query: Query) -> tuple[list[str] | None, str, bool]:
        fields = [f.strip() for f in self._one(query, "sysparm_fields").split(",") if f.strip()] or None
        mode = self._one(query, "sysparm_display_value", "false").lower()
        mode = mode if mode in ("true", "all") else "false"
        links = self._one(query, "sysparm_exclude_reference_link", "false").lower() != "true"
        return fields, mode, links

    def _list(self, request: httpx.Request, table: Table, query: Query, version: str) -> httpx.Response:
        try:
            limit = int(self._one(query, "sysparm_limit", "10000"))
            offset = int(self._one(query, "sysparm_offset", "0") or 0)
        except ValueError:
            return self._error(400, "Invalid value given for sysparm_limit or sysparm_offset", "they must be integers")
        if limit <= 0:
            return self._error(400, "Invalid value given for sysparm_limit", "sysparm_limit value must be a positive integer")
        if offset < 0:
            return self._error(400, "Invalid value given for sysparm_offset", "sysparm_offset value must not be negative")
        encoded = _Encoded(self._one(query, "sysparm_query") or self._pairs(query), table, self)
        matched = encoded.sort([row for row in self._candidates(table, encoded) if encoded.matches(row)])
        page = matched[offset : offset + limit]
        visible = [row for row in page if self._visible(table, row)]  # row ACLs after the limit, as the instance applies them
        if version == "v1" and not visible:
            return self._error(404, "No Record found", "Records matching query not found. Check query parameter or offset parameter")
        fields, mode, links = self._view(query)
        headers: dict[str, str] = {}
        no_count = self._one(query, "sysparm_no_count").lower() == "true"
        if not no_count:
            headers["X-Total-Count"] = str(len(matched))
        if self._one(query, "sysparm_suppress_pagination_header").lower() != "true":
            link = self._links(request.url.path, query, offset, limit, len(matched), with_last=not no_count)
            if link:
                headers["Link"] = link
        return json_response(200, {"result": [self._render(table, row, fields, mode, links) for row in visible]}, headers)

    @staticmethod
    def _pairs(query: Query) -> str:
        """``&active=true&state=2`` (the alternative to ``sysparm_query``, which wins when both are given) as an encoded query."""
        return "^".join(f"{name}={value}" for name, values in query.items() if not name.startswith("sysparm_") for value in values)

    def _candidates(self, table: Table, encoded: _Encoded) -> list[Row]:
        """The rows a query can match, in sys_id order: for a sys_audit query that names its
        documents in every group (``documentkeyIN...``), only theirs."""
        if not table.indexed or not encoded.groups or any(keys is None for keys in encoded.keys):
            return table.ordered()
        found = set().union(*(keys for keys in encoded.keys if keys is not None))
        sys_ids = sorted(s for key in found for s in table.index.get(key, ()))
        return [table.rows[s] for s in sys_ids]

    def _links(self, path: str, query: Query, offset: int, limit: int, total: int, *, with_last: bool) -> str | None:
        if offset == 0 and total <= limit:
            return None
        kept = {k: v for k, v in query.items() if k not in ("sysparm_offset", "sysparm_limit")}

        def url(at: int) -> str:
            return self.link(path, {**kept, "sysparm_limit": [str(limit)], "sysparm_offset": [str(at)]})

        parts = [(url(0), "first")]
        if offset > 0:
            parts.append((url(max(0, offset - limit)), "prev"))
        if offset + limit < total:
            parts.append((url(offset + limit), "next"))
        if with_last:
            parts.append((url(max(0, (total - 1) // limit * limit)), "last"))
        return ",".join(f'<{u}>;rel="{rel}"' for u, rel in parts)

    # -- writes ---------------------------------------------------------------------------

    def _patch(self, request: httpx.Request, table: Table, sys_id: str, query: Query, body: Any) -> httpx.Response:
        row = table.rows.get(sys_id)
        if row is None or not self._visible(table, row):
            return self.not_found()
        if table.name != self.table:
            return self._error(403, "Operation Failed", "ACL Exception Update Failed due to security constraints")
        if not isinstance(body, dict):
            return self._error(400, "Exception while reading request", "The payload is not a JSON object")
        changes = {str(k): self._coerce(v) for k, v in body.items()}
        for name in changes:
            if name in self.refused and name in table.columns:
                return self._error(403, "Operation Failed", self.refused[name])
        for element in ("comments", "work_notes"):
            if changes.get(element):
                self.api_journal.append({"sys_id": sys_id, "number": row["number"], "element": element, "value": changes[element],
                                         "user": self.username})
        self._update(sys_id, changes, self.username, self.now())
        if request.headers.get("X-no-response-body", "").lower() == "true":
            return httpx.Response(200)
        return json_response(200, {"result": self._render(table, row, *self._view(query))})

    def _post(self, request: httpx.Request, table: Table, query: Query, body: Any) -> httpx.Response:
        """A new record (201), numbered after the story's, with the instance's defaults for what the body leaves out."""
        if table.name != self.table:
            return self._error(403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        if not isinstance(body, dict):
            return self._error(400, "Exception while reading request", "The payload is not a JSON object")
        self._created += 1
        sys_id, number = self._guid(self.table, "api-record", self._created), f"{self.kind.prefix}{90_000 + self._created:07d}"
        values = {str(k): self._coerce(v) for k, v in body.items() if str(k) in table.columns and not str(k).startswith("sys_")}
        journal = {k: values.pop(k) for k in ("comments", "work_notes") if values.get(k)}
        defaults = {"state": self.kind.story["new"], "active": "true", "opened_at": self.stamp(self.now()),
                    "opened_by": self.users[self.username], "impact": "3", "urgency": "3", "sys_class_name": self.table}
        values = {**defaults, **values, "sys_id": sys_id, "number": number}
        values.setdefault("priority", PRIORITY_OF.get((values["impact"], values["urgency"]), "5"))
        if self.table == "incident":
            values["incident_state"] = values["state"]
        self._insert(values, self.username, self.now(), journal)
        self.api_journal += [{"sys_id": sys_id, "number": number, "element": element, "value": text, "user": self.username}
                             for element, text in journal.items()]
        return json_response(201, {"result": self._render(table, table.rows[sys_id], *self._view(query))},
                             {"Location": self.link(f"/api/now/table/{table.name}/{sys_id}")})

    def _remove(self, table: Table, sys_id: str) -> httpx.Response:
        row = table.rows.get(sys_id)
        if row is None or not self._visible(table, row):
            return self.not_found()
        if table.name != self.table:
            return self._error(403, "Operation Failed", "ACL Exception Delete Failed due to security constraints")
        self._delete(sys_id)
        return httpx.Response(204)

    @staticmethod
    def _coerce(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    def _batch(self, request: httpx.Request, body: Any) -> httpx.Response:
        items = body.get("rest_requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return self._error(400, "Invalid request", "rest_requests is required and must be a non-empty list")
        served: list[dict[str, Any]] = []
        unserviced: list[str] = []
        budget, self.batch_budget = self.batch_budget, None
        spent = 0
        for item in items:
            item_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            if (budget is not None and len(served) >= budget) or spent + ITEM_MS > BATCH_TIMEOUT_MS:
                unserviced.append(item_id)
                continue
            response = self._batch_item(request, item)
            spent += ITEM_MS
            answer: dict[str, Any] = {"id": item_id, "status_code": response.status_code,
                                      "status_text": httpx.codes.get_reason_phrase(response.status_code),
                                      "body": base64.b64encode(response.content).decode("ascii"), "execution_time": ITEM_MS}
            if not (isinstance(item, dict) and item.get("exclude_response_headers")):
                answer["headers"] = [{"name": k, "value": v} for k, v in response.headers.items() if k.lower() != "content-length"]
            if response.status_code >= 400:
                answer["error_message"] = answer["status_text"]
            served.append(answer)
        return json_response(200, {"batch_request_id": str(body.get("batch_request_id", "")), "serviced_requests": served,
                                   "unserviced_requests": unserviced})

    def _batch_item(self, outer: httpx.Request, item: Any) -> httpx.Response:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item.get("method"):
            return self._error(400, "Invalid request", "a rest_request needs an id, a method and a url")
        headers = {str(h.get("name")): str(h.get("value")) for h in item.get("headers") or [] if isinstance(h, dict)}
        try:
            content = base64.b64decode(item.get("body") or "", validate=True)
            body = json.loads(content) if content else {}
        except ValueError:
            return self._error(400, "Exception while reading request", "The body is not base64-encoded JSON")
        url = urlsplit(item["url"])
        inner = httpx.Request(str(item["method"]).upper(), f"{outer.url.scheme}://{outer.url.netloc.decode()}{item['url']}",
                              headers=headers, content=content)
        if url.path.strip("/").split("/")[-1] == "batch":
            return self._error(400, "Invalid request", "a batch cannot contain a batch")
        return self.route(inner, url.path.removesuffix(".json"), parse_qs(url.query), body)

    def _oauth(self, request: httpx.Request) -> httpx.Response:
        kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return json_response(400, {"error": "invalid_request", "error_description": "the request body must be form-encoded"})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        grant = form.get("grant_type")
        client_ok = form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret
        user_ok = grant != "password" or (form.get("username") == self.username and form.get("password") == self.password)
        if grant not in ("client_credentials", "password"):
            return json_response(400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r} is not enabled"})
        if not (client_ok and user_ok):
            return json_response(401, {"error": "server_error", "error_description": "access_denied"})
        token = base64.urlsafe_b64encode(hashlib.sha256(f"token:{self.seed}:{len(self.tokens)}".encode()).digest()).decode().rstrip("=")
        self.tokens[token] = self.now() + timedelta(seconds=self.expires_in)
        answer: dict[str, Any] = {"access_token": token, "scope": "useraccount", "token_type": "Bearer", "expires_in": self.expires_in}
        if grant == "password":
            answer["refresh_token"] = base64.urlsafe_b64encode(hashlib.sha256(f"refresh:{token}".encode()).digest()).decode().rstrip("=")
        return json_response(200, answer)

    # -- limits, faults -------------------------------------------------------------------

    @staticmethod
    def _resource(method: str, path: str) -> str:
        """The REST resource a rate-limit rule names: ``GET /now/table/{tableName}``, whatever the version."""
        parts = path.strip("/").split("/")[1:]  # drop "api"
        if len(parts) > 1 and parts[1] in ("v1", "v2"):
            parts.pop(1)
        if parts[1:2] == ["table"]:
            return f"{method} /now/table/{{tableName}}" + ("/{sys_id}" if len(parts) > 3 else "")
        return f"{method} /{'/'.join(parts)}"

    def limit(self, request: httpx.Request, path: str) -> httpx.Response | None:
        self._counted = None
        if not path.startswith("/api/"):
            return None
        if self.semaphore_rejections > 0:
            self.semaphore_rejections -= 1
            return self._semaphore()
        resource = self._resource(request.method, path)
        rule = next((r for r in self.rules if r.resource == resource), None)
        if rule is None:
            return None
        now = self.now().timestamp()
        window = int(now) // 3600 * 3600
        used = rule.counts.get(window, 0)
        if used >= rule.per_hour:
            reset = window + 3600
            api = "Batch API" if "batch" in resource else "Table API"
            return self._error(429, "Rate limit exceeded", f"Rate limit of {rule.per_hour} requests per hour for {api} exceeded",
                               {"Retry-After": str(max(1, int(reset - now))), **self._rate_headers(rule, reset)})
        rule.counts[window] = used + 1
        self._counted = rule
        return None

    @staticmethod
    def _rate_headers(rule: _RateRule, reset: int) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(rule.per_hour), "X-RateLimit-Reset": str(reset), "X-RateLimit-Rule": rule.sys_id}

    def decorate(self, response: httpx.Response, path: str) -> None:
        if self._counted is not None:
            reset = int(self.now().timestamp()) // 3600 * 3600 + 3600
            response.headers.update(self._rate_headers(self._counted, reset))

    def _semaphore(self) -> httpx.Response:
        return httpx.Response(429, headers={"Content-Type": "application/json"}, content=json.dumps(
            {"error": {"message": "Too many requests", "detail": "The maximum number of concurrent API transactions (API_INT semaphores) "
                                                                  "was reached"}, "status": "failure"}).encode())

    def error(self, status: int, headers: dict[str, str]) -> httpx.Response:
        if status == 429 and "Retry-After" not in headers:
            return self._semaphore()
        if status == 429:
            now = int(self.now().timestamp())
            reset = now + int(headers["Retry-After"])
            rule = self.rules[0] if self.rules else _RateRule(self._guid("rate_rule", "injected"), "GET /now/table/{tableName}", 100)
            return self._error(429, "Rate limit exceeded", f"Rate limit of {rule.per_hour} requests per hour for Table API exceeded",
                               {**headers, **self._rate_headers(rule, reset)})
        return self._error(status, "Internal server error", f"{status}", headers)

    def endless_page(self, request: httpx.Request, path: str, query: Query) -> httpx.Response | None:
        """An empty page whose ``Link`` always names a next page further on (as if ACLs hid everything)."""
        if request.method != "GET" or not path.endswith(f"/table/{self.table}"):
            return None
        limit = int(self._one(query, "sysparm_limit", "10000") or 10000)
        offset = int(self._one(query, "sysparm_offset", "0") or 0) + limit
        kept = {k: v for k, v in query.items() if k not in ("sysparm_offset", "sysparm_limit")}
        link = self.link(path, {**kept, "sysparm_limit": [str(limit)], "sysparm_offset": [str(offset)]})
        return json_response(200, {"result": []}, {"Link": f'<{link}>;rel="next"', "X-Total-Count": str(offset + limit * 2)})
