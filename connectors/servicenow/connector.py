"""The ServiceNow connector: one stream of records, their history from sys_audit, write-back through the Batch API.

Requests, cheapest route first (BEHAVIOR.md has the figures and the reasons):

- look-ups once per run: the table's choice codes from ``sys_choice`` (never hard-coded: every
  instance configures its own), and the agents from ``sys_user_has_role`` (users with ``itil`` or
  ``sn_customerservice_agent``), observed into the source's roster of who was an agent when;
- ``records``: the Table API on the configured table, raw values (``sysparm_display_value=false``:
  naive ``YYYY-MM-DD HH:MM:SS`` strings that are UTC), only the fields needed, 500 a page, ordered
  by ``sys_updated_on`` then ``sys_id`` and paged by *keyset* (the next page is the records after
  the last one's (time, sys_id)), never by offset while records change. The lower bound is a
  plain UTC literal (``javascript:gs.dateGenerate`` would read it in the API user's zone). The
  cursor is a watermark of the records read, each walk starting again a little before it, so
  records sharing one ``sys_updated_on`` second are never skipped. A page that row ACLs
  shortened (the limit applies before them) is not the end; an empty one whose ``Link`` header
  still names a next page is followed by that offset;
- history: ``sys_audit`` rows of a page's records, 100 records a request, for state, hold
  reason, priority, comments (public), work notes (internal) and the ``group`` role's column
  (``assignment_group``): so the customer's and the agent's replies are told apart from work
  notes, sla-bridge's own work notes, pulled back after each write, move no clock, and the
  assignment-group history (OLAs) is there;
- group names: sys_audit holds a reference's sys_ids. Each record names its own group (the
  column and its dot-walk, ``assignment_group`` and ``assignment_group.name``); the ids in the
  history that no record read this run named are looked up, one ``sys_user_group`` request for
  a page's new ones (``sys_idIN...``, 100 ids a request), and no id is asked for twice a run.

Write-back: the status field and, on breach, ``work_notes`` (internal), 25 records per Batch API
request (``POST /api/now/v1/batch``), each item a ``PATCH /api/now/table/{table}/{sys_id}``.
Never ``comments``, which the customer sees: :func:`patch_body` is the one place a body is made
and refuses it, and a test reads the source to prove no other path writes one.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from bridge.edges.credentials import Secret
from bridge.edges.http import SourceClient
from bridge.errors import AuthenticationFailed, BadRequest, NotFound, PaginationError, PermissionDenied
from bridge.framework import (
    ClientCredentials,
    Connector,
    CredentialCheck,
    FieldInfo,
    FromWatermark,
    KeysetPaginator,
    NextUrlPaginator,
    Paginator,
    Request,
    SourceConfig,
    Stream,
    Turn,
    WritebackResult,
    WriteCapabilities,
    paginate,
)
from bridge.framework.mapping import vendor_text
from bridge.model import QuarantinedRecord, Ticket, TicketEvent, WritebackPlan
from connectors.servicenow.config import ServiceNowSourceConfig
from connectors.servicenow.normalise import (
    DEFAULT_PRIORITIES,
    DEFAULT_STATUSES,
    HISTORY_FIELDS,
    Choices,
    ServiceNowRecords,
    raw_time,
)

__all__ = ["ServiceNowConnector", "patch_body"]

log = logging.getLogger("sla_bridge.servicenow")

PAGE_SIZE = 500  # records a page: well inside the Table API's 60 s transaction quota
AUDIT_IDS = 100  # sys_ids per sys_audit request: about 3.3 KB of URL
AUDIT_PAGE = 1000
BATCH_SIZE = 25  # PATCHes per Batch API request, inside its 30 s timeout
OVERLAP = timedelta(minutes=2)  # re-read before the watermark: a long transaction commits its sys_updated_on late
AGENT_ROLES = ("itil", "sn_customerservice_agent")
# The table a reference column points at, where the base system fixes it (task's dictionary); any other
# column the ``group`` role dot-walks through is looked up in sys_dictionary, once a run.
REFERENCE_TABLES = {"assignment_group": "sys_user_group"}
CUSTOMER_FACING = "comments"  # the journal the customer sees: sla-bridge never writes it
INTERNAL_JOURNAL = "work_notes"
BASE_FIELDS = ("sys_id", "number", "short_description", "state", "hold_reason", "priority", "opened_at", "sys_created_on",
               "sys_updated_on", "sys_mod_count", "resolved_at", "closed_at", "opened_by", "assigned_to", "active")
UTC = timezone.utc


def patch_body(fields: Mapping[str, Any], note: str | None) -> dict[str, Any]:
    """The one body sla-bridge PATCHes: the status field's value and an internal work note.

    Refuses ``comments`` (the customer-visible journal) whatever asks for it.
    """
    if CUSTOMER_FACING in fields:
        raise AssertionError("refused to write the customer-visible 'comments' journal")
    return {**fields, INTERNAL_JOURNAL: note} if note else dict(fields)


def literal(moment: datetime) -> str:
    """An instant as the plain UTC literal an encoded query takes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class RecordKeyset(KeysetPaginator):
    """Keyset paging that does not take an ACL-emptied page for the end while ``Link`` names a next page."""

    def read(self, request: Request, response: httpx.Response, data: Any, records: Sequence[Any]) -> Turn:
        if not records:
            following = response.links.get("next", {}).get("url")
            return Turn(following, True) if following else Turn(None, False)
        _in_order(records)
        return super().read(request, response, data, records)

    def apply(self, request: Request, token: str) -> Request:
        if token.startswith(("http://", "https://", "/")):
            return replace(request, url=token, params={})  # the same query, its offset moved past the hidden rows
        return super().apply(request, token)


class ServiceNowConnector(Connector):
    system = "servicenow"
    title = "ServiceNow"
    config_model = ServiceNowSourceConfig
    writes = WriteCapabilities(status_field=True, tags=False, notes=True, bulk=True, tag_word="tags", notes_in_history=True)
    sandbox = "connectors.servicenow.sandbox:ServiceNowSandbox"
    default_statuses = DEFAULT_STATUSES
    default_priorities = DEFAULT_PRIORITIES
    default_fields = {"customer": "company.name", "group": "assignment_group.name"}
    # A record written inside a transaction that commits later shows a sys_updated_on already
    # passed: a walk that reached its end is complete up to a minute before the instance's clock.
    export_lag = timedelta(seconds=60)

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        super().__init__(name, config, http)
        assert isinstance(config, ServiceNowSourceConfig)
        self.sn: ServiceNowSourceConfig = config
        self.table = config.table
        self._choices: Choices | None = None
        self._agents: set[str] | None = None
        self._group_table: str | None = None  # where the group ids are named (None: nowhere)
        self._group_table_known = False
        self._groups_asked: set[str] = set()  # ids looked up this run, named or not
        self.records = self._records(Choices([]))

    @classmethod
    def auth(cls, config: SourceConfig, secret: Secret) -> httpx.Auth:
        if config.auth.kind == "client_credentials":
            client_id = config.auth.principal
            assert client_id is not None  # the config requires it
            return ClientCredentials("/oauth_token.do", client_id, secret, key="auth.client_id and auth.client_secret_env")
        return super().auth(config, secret)

    # -- look-ups -------------------------------------------------------------------------

    def choices(self) -> Choices:
        """The table's choice codes and labels (its own rows over task's), once per run."""
        if self._choices is None:
            request = Request("/api/now/table/sys_choice", {
                # English rows only (an instance with a language plugin holds one row per language), in form order
                "sysparm_query": f"nameIN{self.table},task^elementINstate,hold_reason,priority^inactive=false^language=en"
                                 "^ORDERBYsequence",
                "sysparm_fields": "name,element,value,label,sequence,dependent_value", "sysparm_limit": 1000})
            rows = [row for data in paginate(self.http, request, NextUrlPaginator(rel="next")) for row in _result(data)]
            self._choices = Choices(rows)
            named = self.records.group_names
            self.records = self._records(self._choices)
            self.records.group_names.update(named)
        return self._choices

    def _records(self, choices: Choices) -> ServiceNowRecords:
        return ServiceNowRecords(self.name, self.config.url, self.table, self.values, self.fields, choices,
                                 status_field=self.sn.writeback.status_field)

    def name_groups(self, audit_rows: Sequence[Any]) -> None:
        """Names for the group ids in ``audit_rows`` that no record read this run named: one request
        per 100 new ids to the group's table (``sys_user_group``), never the same id twice a run. An
        id the table does not hold (a deleted group) stays unnamed: its event keeps the sys_id."""
        wanted = [sys_id for sys_id in self.records.unnamed_groups(audit_rows) if sys_id not in self._groups_asked]
        if not wanted:
            return
        self._groups_asked.update(wanted)
        table, field = self.group_table(), self.records.group_name_field
        if table is None or field is None:
            return
        for offset in range(0, len(wanted), AUDIT_IDS):
            chunk = wanted[offset : offset + AUDIT_IDS]
            try:
                rows = _result(self.http.get_json(f"/api/now/table/{table}", params={
                    "sysparm_query": f"sys_idIN{','.join(chunk)}", "sysparm_fields": f"sys_id,{field}",
                    "sysparm_limit": len(chunk), "sysparm_no_count": "true"}))
            except (PermissionDenied, NotFound) as error:
                log.warning("%s: %s is not readable (%s): group history keeps the sys_ids of groups no record names",
                            self.name, table, error)
                return
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get("sys_id"), str) and isinstance(row.get(field), str) and row[field]:
                    self.records.group_names.setdefault(row["sys_id"], row[field])

    def group_table(self) -> str | None:
        """The table the ``group`` role's reference points at: ``sys_user_group`` for
        ``assignment_group``, else what sys_dictionary says (the table's row over task's), once a run."""
        if not self._group_table_known:
            column = self.records.group_reference_field
            table = REFERENCE_TABLES.get(column) if column else None
            if column and table is None:
                rows = _result(self.http.get_json("/api/now/table/sys_dictionary", params={
                    "sysparm_query": f"nameIN{self.table},task^element={column}", "sysparm_fields": "name,element,reference",
                    "sysparm_limit": 5}))
                own = sorted((row for row in rows if isinstance(row, dict)), key=lambda row: row.get("name") != self.table)
                table = next((str(row["reference"]) for row in own if isinstance(row.get("reference"), str) and row["reference"]), None)
            self._group_table, self._group_table_known = table, True
        return self._group_table

    def agents(self) -> set[str]:
        """User names of the agents (``itil``, ``sn_customerservice_agent``), observed into the roster."""
        if self._agents is None:
            request = Request("/api/now/table/sys_user_has_role", {
                # Inactive users too: a former agent's replies were agents' replies (a new store has no roster yet)
                "sysparm_query": f"role.nameIN{','.join(AGENT_ROLES)}",
                "sysparm_fields": "user.user_name,role.name", "sysparm_limit": 1000})
            self._agents = {str(row["user.user_name"]) for data in paginate(self.http, request, NextUrlPaginator(rel="next"))
                            for row in _result(data) if isinstance(row, dict) and row.get("user.user_name")}
            self.roster.observe(self._agents, at=self.http.policy.clock())
        return self._agents

    def _prepare(self) -> None:
        self.choices()
        self.agents()

    # -- reading --------------------------------------------------------------------------

    def check_credentials(self) -> CredentialCheck:
        problems: list[str] = []
        account = self.sn.auth.principal or "?"
        detail = ""
        if self.sn.auth.kind == "password":
            users = _result(self.http.get_json("/api/now/table/sys_user", params={
                "sysparm_query": f"user_name={account}", "sysparm_fields": "sys_id,user_name,name,email,time_zone", "sysparm_limit": 1}))
            if not users:
                raise AuthenticationFailed(f"ServiceNow has no user {account!r} visible to itself: check sources.{self.name}.auth.username",
                                           source=self.name)
            user = users[0]
            account = vendor_text(f"{user.get('name') or account} <{user.get('email') or user.get('user_name')}>")
            detail = f"time zone {vendor_text(user.get('time_zone') or 'system')} (queries use UTC literals, so it does not matter)"
        sample = _result(self.http.get_json(f"/api/now/table/{self.table}", params={"sysparm_limit": 1, "sysparm_fields": "sys_id"}))
        audit = _result(self.http.get_json("/api/now/table/sys_audit", params={
            "sysparm_query": f"tablename={self.table}", "sysparm_limit": 1, "sysparm_fields": "sys_id"}))
        if sample and not audit:
            problems.append(f"sources.{self.name}.auth: the account reads {self.table} but no sys_audit row of it: it needs the "
                            "audit_viewer role, without which no status history, reply or work note can be read")
        if not sample:
            problems.append(f"sources.{self.name}.table: {self.table} shows this account no record (an empty table, a wrong name, "
                            "or row ACLs): nothing would be pulled")
        if not self.agents():
            problems.append(f"sources.{self.name}.auth: no user with the itil or sn_customerservice_agent role is visible to this "
                            "account (sys_user_has_role): every reply would count as a customer's")
        if self.sn.writeback.enabled and self.sn.writeback.status_field:
            problems.extend(self._status_field_problems(self.sn.writeback.status_field))
        return CredentialCheck(account=account, detail=detail, problems=tuple(problems))

    def _status_field_problems(self, column: str) -> list[str]:
        rows = _result(self.http.get_json("/api/now/table/sys_dictionary", params={
            "sysparm_query": f"nameIN{self.table},task^element={column}", "sysparm_fields": "name,element,internal_type", "sysparm_limit": 5}))
        if not rows:
            return [f"sources.{self.name}.writeback.status_field: {self.table} has no column {column!r}; ServiceNow ignores a write "
                    "to an unknown field without an error, so the state would never show. Create it (a string field) first"]
        kind = str(rows[0].get("internal_type") or "")
        if kind not in ("string", "choice", ""):
            return [f"sources.{self.name}.writeback.status_field: {column} is a {vendor_text(kind)} field; sla-bridge writes breached, "
                    "at_risk, on_track and met into it, so it must be a string (or choice) field"]
        return []

    def list_fields(self) -> list[FieldInfo]:
        """The table's columns (and task's) from sys_dictionary, each choice field with its choices."""
        request = Request("/api/now/table/sys_dictionary", {
            "sysparm_query": f"nameIN{self.table},task^elementISNOTEMPTY",
            "sysparm_fields": "name,element,column_label,internal_type,reference", "sysparm_limit": 1000})
        columns: dict[str, dict[str, Any]] = {}
        for data in paginate(self.http, request, NextUrlPaginator(rel="next")):
            for row in _result(data):
                if isinstance(row, dict) and row.get("element") and (row.get("name") == self.table or row["element"] not in columns):
                    columns[str(row["element"])] = row
        request = Request("/api/now/table/sys_choice", {
            "sysparm_query": f"nameIN{self.table},task^inactive=false", "sysparm_fields": "name,element,value,label", "sysparm_limit": 1000})
        options: dict[str, list[str]] = {}
        for data in paginate(self.http, request, NextUrlPaginator(rel="next")):
            for row in _result(data):
                if isinstance(row, dict) and row.get("element"):
                    options.setdefault(str(row["element"]), []).append(f"{row.get('value')} ({row.get('label')})")
        return [FieldInfo(id=element, title=vendor_text(row.get("column_label") or ""),
                          type=vendor_text(row.get("internal_type") or "") + (f" -> {row['reference']}" if row.get("reference") else ""),
                          options=[vendor_text(o) for o in options.get(element, [])])
                for element, row in sorted(columns.items())]

    def _fields(self) -> str:
        # the caller's user name too (dot-walked): sys_audit names users by user name, and a caller's
        # own comments are the customer's even where the caller is an agent as well
        wanted = [*BASE_FIELDS, self.records.caller_field, self.records.caller_user_field, *self.fields.values()]
        if self.records.group_reference_field:  # the group's sys_id with its name: sys_audit names groups by sys_id
            wanted.append(self.records.group_reference_field)
        status_field = self.sn.writeback.status_field
        if status_field:
            wanted.append(status_field)
        return ",".join(dict.fromkeys(wanted))

    def _query(self) -> str:
        return f"{self.sn.query}^" if self.sn.query else ""

    def _since(self, request: Request, since: datetime) -> Request:
        order = "^ORDERBYsys_updated_on^ORDERBYsys_id"
        return request.with_params(sysparm_query=f"{self._query()}sys_updated_on>={literal(since)}{order}")

    def _after(self, request: Request, position: tuple[str, str]) -> Request:
        """The page after the record at (time, sys_id): the rest of that second, then what follows it."""
        at, sys_id = position
        q = self._query()
        query = f"{q}sys_updated_on={at}^sys_id>{sys_id}^NQ{q}sys_updated_on>{at}^ORDERBYsys_updated_on^ORDERBYsys_id"
        return Request(f"/api/now/table/{self.table}", {**self._params(), "sysparm_query": query})

    def _params(self) -> dict[str, Any]:
        return {"sysparm_fields": self._fields(), "sysparm_display_value": "false", "sysparm_exclude_reference_link": "true",
                "sysparm_limit": PAGE_SIZE}

    def _paginator(self) -> Paginator:
        return RecordKeyset(position=_keyset, after=self._after)

    def streams(self) -> Sequence[Stream]:
        return [
            Stream(
                "records",
                Request(f"/api/now/table/{self.table}", self._params()),
                paginator=self._paginator,
                resume=FromWatermark(position=_position, since=self._since, overlap=OVERLAP),
                records="result",
                prepare=self._prepare,
                context=lambda data: self.roster,
                normalise=self._record,
                record_id=lambda raw: str(raw.get("sys_id") if isinstance(raw, Mapping) else "?"),
                expand=self._history,
                on_repeat="the instance answered a keyset position it had answered before",
            ),
        ]

    def _record(self, raw: Any, roster: object) -> list[Ticket]:
        return self.records.ticket(raw)

    def _history(self, tickets: list[Ticket]) -> Iterator[TicketEvent | QuarantinedRecord]:
        """The sys_audit rows of a page's records, 100 records a request, as their events."""
        rows: dict[str, list[Any]] = {ticket.external_id: [] for ticket in tickets}
        ids = list(rows)
        fields = ",".join(self.records.history_fields)
        # Not the group column's insert rows (checkpoint 0): the group a record was created in is no change, and
        # one such row a record would push most requests' rows past a page (an OR binds tighter than an AND)
        inserts = f"^record_checkpoint!=0^ORfieldnameIN{','.join(HISTORY_FIELDS)}" if fields != ",".join(HISTORY_FIELDS) else ""
        for offset in range(0, len(ids), AUDIT_IDS):
            chunk = ids[offset : offset + AUDIT_IDS]
            request = Request("/api/now/table/sys_audit", {
                "sysparm_query": f"tablename={self.table}^documentkeyIN{','.join(chunk)}^fieldnameIN{fields}{inserts}"
                                 "^ORDERBYsys_created_on^ORDERBYsys_id",
                "sysparm_fields": "sys_id,documentkey,fieldname,oldvalue,newvalue,user,sys_created_on,record_checkpoint",
                "sysparm_limit": AUDIT_PAGE, "sysparm_no_count": "true"})  # no count(*) over sys_audit, the largest table
            for data in paginate(self.http, request, NextUrlPaginator(rel="next")):
                for row in _result(data):
                    key = row.get("documentkey") if isinstance(row, dict) else None
                    if key in rows:
                        rows[str(key)].append(row)
        if rows and not any(rows.values()):
            # Every record writes audit rows when it is created: none for a whole page means the account may
            # not read sys_audit (an ACL answers 200 []). Judged without history, every clock would breach.
            raise BadRequest(f"sys_audit showed no history for any of {len(rows)} {self.table} records: the account needs the "
                             f"audit_viewer role (sources.{self.name}.auth), or the table's auditing is off; without it no status "
                             "change, reply or work note can be read. Nothing of this page was kept", source=self.name)
        self.name_groups([row for found in rows.values() for row in found])
        for sys_id, found in rows.items():
            try:
                yield from self.records.events(sys_id, found, self.roster, caller_user=None, own_user=self.sn.auth.username)
            except ValueError as error:
                yield QuarantinedRecord(self.name, sys_id, str(error), {"sys_audit": found})

    # -- writing --------------------------------------------------------------------------

    def writable(self, ticket: Ticket) -> bool:
        """Closed and cancelled records are read-only on most instances (an ACL answers 403)."""
        return ticket.status not in ("deleted", "closed", "canceled")

    def field_value(self, ticket: Ticket, field_id: str) -> tuple[bool, object]:
        if field_id not in ticket.fields:
            return False, None
        return True, ticket.fields.get(field_id)

    def write(self, plans: Sequence[WritebackPlan]) -> Iterator[WritebackResult]:
        """25 records per Batch API request, each a PATCH of the status field and the work note."""
        for offset in range(0, len(plans), BATCH_SIZE):
            yield from self._batch(list(plans[offset : offset + BATCH_SIZE]))

    def _item(self, plan: WritebackPlan) -> dict[str, Any]:
        note = "\n\n".join(note.body for note in plan.notes) or None
        body = patch_body(plan.set_fields, note)
        return {"url": f"/api/now/table/{self.table}/{plan.external_id}?sysparm_fields=sys_id,sys_updated_on,sys_mod_count"
                       "&sysparm_exclude_reference_link=true", "body": body}

    def _batch(self, plans: list[WritebackPlan]) -> list[WritebackResult]:
        items = {str(index): (plan, self._item(plan)) for index, plan in enumerate(plans, start=1)}
        request = {"batch_request_id": f"sla-bridge-{plans[0].external_id}", "rest_requests": [
            {"id": key, "method": "PATCH", "url": item["url"], "exclude_response_headers": True,
             "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Accept", "value": "application/json"}],
             "body": base64.b64encode(json.dumps(item["body"]).encode()).decode("ascii")}
            for key, (_, item) in items.items()]}
        carries_notes = any(plan.notes for plan in plans)
        data = self.http.request("POST", "/api/now/v1/batch", json=request, json_body=True, idempotent=not carries_notes)
        served = {str(s.get("id")): s for s in (data.get("serviced_requests") or []) if isinstance(s, dict)} if isinstance(data, dict) else {}
        results = []
        for key, (plan, _) in items.items():
            answer = served.get(key)
            if answer is None:  # not run: a limit of the batch was hit; planned again next run
                results.append(WritebackResult.of(plan, "conflict", "the Batch API did not run this request (unserviced)"))
                continue
            status = int(answer.get("status_code") or 0)
            said = _item_error(answer)
            count = _mod_count(answer)
            if 200 <= status < 300 and plan.notes and count is not None and plan.ticket.version is not None and count == plan.ticket.version:
                # 200, but the record did not change though a work note always does: a field ACL dropped the write
                # without a word. (A field alone may already hold the value; the next pull's read-back judges that.)
                results.append(WritebackResult.of(plan, "refused", "the instance answered 200 but kept nothing (sys_mod_count "
                                                  f"stayed {count}): a field ACL or data policy refuses these fields to the account"))
            elif 200 <= status < 300:
                results.append(WritebackResult.of(plan, "sent", version=count))
            elif status in (400, 403, 404):
                why = {404: "the record is gone, or row ACLs hide it", 403: "an ACL or data policy refuses the write",
                       400: "the instance refused the request"}[status]
                results.append(WritebackResult.of(plan, "refused", f"{status} ({why}): {said}"))
            else:  # 429, 5xx inside the batch: not applied, as far as anything says
                results.append(WritebackResult.of(plan, "conflict", f"{status}: {said}"))
        return results

    def note_exists(self, external_id: str, marker: str) -> bool:
        found = _result(self.http.get_json("/api/now/table/sys_journal_field", params={
            "sysparm_query": f"element_id={external_id}^element={INTERNAL_JOURNAL}^valueLIKE{marker}",
            "sysparm_fields": "sys_id", "sysparm_limit": 1}))
        if not found:  # gone? the record's own GET answers 404, which raises NotFound
            self.http.get_json(f"/api/now/table/{self.table}/{external_id}", params={"sysparm_fields": "sys_id"})
        return bool(found)


def _in_order(records: Sequence[Any]) -> None:
    """A keyset walk is only right if the instance sorted the page as asked (ORDERBY across the
    ^NQ groups is not documented): a page out of (sys_updated_on, sys_id) order stops the source."""
    keys = []
    for raw in records:
        try:
            keys.append(_keyset(raw))
        except (KeyError, TypeError):
            continue  # a malformed record is quarantined; it orders nothing
    for before, after in itertools.pairwise(keys):
        if after < before:
            raise PaginationError(f"the instance answered records out of order ({after[0]} {after[1]} after {before[0]} {before[1]}), "
                                  "though asked ORDERBYsys_updated_on^ORDERBYsys_id: paging by position would skip records")


def _keyset(raw: Any) -> tuple[str, str]:
    return str(raw["sys_updated_on"]), str(raw["sys_id"])


def _position(raw: Any) -> tuple[datetime, str]:
    return raw_time(raw["sys_updated_on"], "sys_updated_on"), str(raw["sys_id"])


def _result(data: Any) -> list[Any]:
    result = data.get("result") if isinstance(data, dict) else None
    return result if isinstance(result, list) else []


def _item_error(answer: Mapping[str, Any]) -> str:
    try:
        body = json.loads(base64.b64decode(str(answer.get("body") or "")) or b"{}")
    except (ValueError, TypeError):
        return vendor_text(answer.get("error_message") or answer.get("status_text") or "")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return vendor_text(f"{error.get('message') or ''}: {error.get('detail') or ''}".strip(": "))
    return vendor_text(answer.get("error_message") or answer.get("status_text") or "")


def _mod_count(answer: Mapping[str, Any]) -> str | None:
    try:
        body = json.loads(base64.b64decode(str(answer.get("body") or "")) or b"{}")
    except (ValueError, TypeError):
        return None
    result = body.get("result") if isinstance(body, dict) else None
    count = result.get("sys_mod_count") if isinstance(result, dict) else None
    return str(count) if count not in (None, "") else None



