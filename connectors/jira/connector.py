"""The Jira Service Management connector: one stream of issues that carries its own history.

Requests, cheapest route first (BEHAVIOR.md has the figures and the reasons):

- field look-up: ``GET /rest/api/3/field`` once per run, so the configured fields (by id, by
  name, or JSM's by schema: Organizations, Request Type, the SLA fields, whose names are
  localised) resolve to this site's ids;
- agents: ``GET /rest/api/3/user/permission/search`` with ``SERVICEDESK_AGENT`` once per project
  per run (an agent is a JSM agent of the project, not anyone with a licence), and the same
  route with ``accountId`` for a licensed author the list does not hold (the route scans only the
  first thousand users of the site);
- ``issues``: the enhanced JQL search ``POST /rest/api/3/search/jql``, token-paged, 100 issues a
  page, ``ORDER BY updated ASC``. Its lower bound is epoch milliseconds (JQL reads a date literal
  in the API user's profile zone; a number it reads as an instant), floored to the minute (JQL
  compares minutes) less ``overlap`` (10 minutes unless configured): the cursor is a watermark of the issues read, and issues
  read twice are upserted, never skipped. Each issue carries its changelog (``expand=changelog``)
  and its comments (``fields=comment``): where those are complete (``total`` no more than what
  came), the page needs no other request;
- history the search cut short (it keeps the newest histories and first comments only): the
  bulk changelog ``POST /rest/api/3/changelog/bulkfetch`` filtered to status, priority and the
  field mapped to the ``group`` role (if any), for all such issues of a page in one walk;
  comments through ``GET /rest/api/3/issue/{id}/comment``. Group changes come from the same
  changelogs as status changes: no request of their own.

Write-back: ``PUT /rest/api/3/issue/{id}?notifyUsers=false`` with ``update.labels`` add and
remove (never replacing an agent's labels) and the status field; internal notes through JSM's
``POST /rest/servicedeskapi/request/{id}/comment`` with ``public: false``, or, for an issue that
is not a request, a platform comment carrying the ``sd.public.comment`` internal property. No
path sends a comment without the internal flag (:func:`internal_note_requests` builds both
bodies, and tests prove it). Each part of a write is reported on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from difflib import get_close_matches
from typing import Any

import httpx

from bridge.edges.http import SourceClient
from bridge.errors import BadRequest, NotFound, PermissionDenied
from bridge.framework import (
    Connector,
    CredentialCheck,
    FieldInfo,
    FromWatermark,
    ItemResult,
    OffsetPaginator,
    Request,
    SourceConfig,
    Stream,
    TokenPaginator,
    WritebackResult,
    WriteCapabilities,
    paginate,
)
from bridge.framework.mapping import instant, vendor_text
from bridge.model import TAGS_ITEM, Note, QuarantinedRecord, Ticket, TicketEvent, WritebackPlan, field_item, note_item
from connectors.jira.config import BUILT_IN_FIELDS, BY_NAME, JSM_FIELDS, JiraSourceConfig
from connectors.jira.normalise import (
    DEFAULT_PRIORITIES,
    DEFAULT_STATUSES,
    JiraRecords,
    adf_text,
    comment_is_internal,
)

__all__ = ["JiraConnector", "internal_note_requests"]

log = logging.getLogger("sla_bridge.jira")

PAGE_SIZE = 100  # issues per search page; Jira may send fewer (only isLast and the token are trusted)
COMMENT_PAGE = 100
BULK_IDS = 1000  # changelog/bulkfetch takes at most 1,000 issues
AGENT_RANGE = 1000  # permission/search scans the first thousand users of the site, whatever maxResults says
SLA_FIELD = "com.atlassian.servicedesk:sd-sla-field"
AGENT_PERMISSION = "SERVICEDESK_AGENT"
HISTORY_FIELDS = ["status", "priority"]  # and the group role's field, where one is mapped
# Fields every search asks for; the configured and JSM fields are added once resolved.
SEARCH_FIELDS = ["summary", "status", "priority", "created", "updated", "resolutiondate", "labels", "reporter",
                 "assignee", "issuetype", "project", "comment"]
PERMISSIONS = ("BROWSE_PROJECTS", "EDIT_ISSUES", "ADD_COMMENTS", "ADMINISTER_PROJECTS", AGENT_PERMISSION)
NO_REQUEST_TYPE = "vpOriginMissing"  # JSM's 404 for an issue that is not a customer request
FIELDS_DOC = "https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-fields/"


def internal_note_requests(body: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two bodies an internal note can be sent with, and the only place they are made.

    JSM's request comment (text, ``public: false``), and the platform comment (ADF, with the
    ``sd.public.comment`` property that makes it internal) for an issue that is not a request.
    """
    paragraphs = [part for part in body.split("\n\n") if part.strip()] or [body]
    document = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": _adf_lines(part)} for part in paragraphs]}
    return ({"body": body, "public": False},
            {"body": document, "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]})


def _adf_lines(text: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for index, line in enumerate(text.split("\n")):
        if index:
            content.append({"type": "hardBreak"})
        if line:
            content.append({"type": "text", "text": line})
    return content or [{"type": "text", "text": " "}]


class JiraConnector(Connector):
    system = "jira"
    title = "Jira Service Management"
    config_model = JiraSourceConfig
    writes = WriteCapabilities(status_field=True, tags=True, notes=True, tag_word="labels", notes_in_history=True)
    sandbox = "connectors.jira.sandbox:JiraSandbox"
    default_statuses = DEFAULT_STATUSES
    default_priorities = DEFAULT_PRIORITIES
    default_fields = {"customer": "organizations"}
    # The search is eventually consistent: an issue written a moment ago may not be found yet.
    # A walk that reached its end is complete up to a minute before Jira's clock.
    export_lag = timedelta(seconds=60)

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        super().__init__(name, config, http)
        assert isinstance(config, JiraSourceConfig)
        self.jira: JiraSourceConfig = config
        self._site_fields: list[dict[str, Any]] | None = None
        self._resolved: dict[str, str] | None = None  # role -> this site's field id
        self._sla_ids: list[str] = []
        self._status_field: str | None = None
        self._request_type: str | None = None
        self.records = JiraRecords(name, config.url, self.values, {})
        self._listed: dict[str, set[str]] | None = None  # project -> agents' account ids
        self._checked: dict[str, bool] = {}  # "PROJECT/accountId" -> agent, asked this run
        self._short_history: set[str] = set()  # issue ids of the page whose changelog the search cut
        self._short_comments: set[str] = set()  # ... and whose comments it cut

    # -- what the site calls its fields ---------------------------------------------------

    def site_fields(self) -> list[dict[str, Any]]:
        """``/rest/api/3/field``, once per run."""
        if self._site_fields is None:
            data = self.http.get_json("/rest/api/3/field")
            if not isinstance(data, list):
                raise BadRequest(f"/rest/api/3/field answered a {type(data).__name__}, not a list of fields", source=self.name)
            self._site_fields = [field for field in data if isinstance(field, dict) and isinstance(field.get("id"), str)]
        return self._site_fields

    def resolve_fields(self) -> dict[str, str]:
        """Each configured role's field id on this site; a name or JSM field it lacks stops the source."""
        if self._resolved is not None:
            return self._resolved
        fields = self.site_fields()
        problems: list[str] = []
        resolved: dict[str, str] = {}
        configured = {str(role) for role in self.config.fields}
        for role, spec in self.fields.items():
            found, problem = self._find(spec, fields)
            if found is not None:
                resolved[role] = found
            elif role in configured:  # a default that does not apply to this site (no JSM) is simply unset
                problems.append(f"sources.{self.name}.fields.{role}: {problem}")
        status_field = self.jira.writeback.status_field
        if status_field and self.jira.writeback.enabled:
            found, problem = self._find(status_field, fields)
            if found is None:
                problems.append(f"sources.{self.name}.writeback.status_field: {problem}")
            self._status_field = found
        if problems:
            raise BadRequest("; ".join(problems) + f" (`sla-bridge fields {self.name}` lists this site's fields)", source=self.name)
        self._sla_ids = sorted(str(f["id"]) for f in fields if _schema(f).get("custom") == SLA_FIELD)
        # Always asked for: an issue without a request type takes its note through the platform route.
        self._request_type = next((str(f["id"]) for f in fields if _schema(f).get("custom") == JSM_FIELDS["request_type"]), None)
        self._resolved = resolved
        self.records = JiraRecords(self.name, self.config.url, self.values, resolved, group_name=_unique_name(resolved.get("group"), fields))
        return resolved

    def _history_fields(self) -> list[str]:
        """The fields the bulk changelog is filtered to: status, priority, and the group field."""
        group = self.resolve_fields().get("group")
        return list(dict.fromkeys([*HISTORY_FIELDS, *([group] if group else [])]))

    def _find(self, spec: str, fields: list[dict[str, Any]]) -> tuple[str | None, str]:
        """(field id, "") or (None, why not) for a configured field spec."""
        if spec in BUILT_IN_FIELDS:
            return spec, ""
        if spec in JSM_FIELDS:
            kind = JSM_FIELDS[spec]
            matches = [str(f["id"]) for f in fields if _schema(f).get("custom") == kind]
            if len(matches) == 1:
                return matches[0], ""
            if not matches:
                return None, f"this site has no {spec} field ({kind}); is Jira Service Management installed?"
            return None, f"this site has {len(matches)} {spec} fields ({', '.join(matches)}): name one by id"
        if spec.startswith(BY_NAME):
            wanted = spec.removeprefix(BY_NAME)
            matches = [str(f["id"]) for f in fields if f.get("name") == wanted]
            if not matches:
                matches = [str(f["id"]) for f in fields if str(f.get("name", "")).casefold() == wanted.casefold()]
            if len(matches) == 1:
                return matches[0], ""
            if matches:
                return None, f"{len(matches)} fields are named {wanted!r} ({', '.join(matches)}): write the id of the one you mean"
            names = [str(f.get("name")) for f in fields if f.get("name")]
            close = get_close_matches(wanted, names, n=1)
            hint = f"; did you mean {BY_NAME}{close[0]}?" if close else ""
            return None, f"this site has no field named {vendor_text(wanted)!r}{vendor_text(hint)}"
        if any(f["id"] == spec for f in fields):
            return spec, ""
        return None, f"this site has no field {spec}"

    # -- reading --------------------------------------------------------------------------

    def check_credentials(self) -> CredentialCheck:
        me = self.http.get_json("/rest/api/3/myself")
        if not isinstance(me, dict) or not me.get("accountId"):
            raise BadRequest("/rest/api/3/myself answered without an account id", source=self.name)
        account = vendor_text(f"{me.get('displayName') or me['accountId']}" + (f" <{me['emailAddress']}>" if me.get("emailAddress") else ""))
        problems: list[str] = []
        desks = self._service_desks()
        for project in self.jira.projects:
            if project not in desks:
                problems.append(f"sources.{self.name}.projects: {project} is not a service project this account can see "
                                "(Jira Service Management lists no service desk for it): its comments carry no public or "
                                "internal flag and its SLA fields are empty")
            problems.extend(self._permission_problems(project))
        try:
            self.resolve_fields()
        except BadRequest as error:
            problems.append(error.detail)
        if self._status_field:
            problems.extend(self._status_field_problems(self._status_field))
        zone = vendor_text(me.get("timeZone") or "unset")
        return CredentialCheck(account=account, detail=f"profile time zone {zone} (the search bounds are instants, so it does not matter)",
                               problems=tuple(problems))

    def _service_desks(self) -> set[str]:
        keys: set[str] = set()
        request = Request("/rest/servicedeskapi/servicedesk", {"start": 0, "limit": 50})
        for data in paginate(self.http, request, OffsetPaginator(param="start", is_last="isLastPage", total=None), records="values"):
            keys.update(str(desk.get("projectKey")) for desk in data.get("values") or [] if isinstance(desk, dict))
        return keys

    def _permission_problems(self, project: str) -> list[str]:
        data = self.http.get_json("/rest/api/3/mypermissions", params={"projectKey": project, "permissions": ",".join(PERMISSIONS)})
        held = {key for key, value in ((data or {}).get("permissions") or {}).items()
                if isinstance(value, dict) and value.get("havePermission") is True}
        key = f"sources.{self.name}.auth"
        problems = []
        if "BROWSE_PROJECTS" not in held:
            problems.append(f"{key}: the account cannot browse project {project}: its issues would not be found")
        if self.jira.writeback.enabled:
            for permission, what in (("EDIT_ISSUES", "labels and the status field"), ("ADD_COMMENTS", "internal notes"),
                                     (AGENT_PERMISSION, "internal notes (JSM takes internal comments from agents only)")):
                if permission not in held:
                    problems.append(f"{key}: the account lacks {permission} in {project}, so write-back cannot set {what}")
        if "ADMINISTER_PROJECTS" not in held:
            problems.append(f"{key}: the account does not administer project {project}: Jira cannot list the project's "
                            "agents to it (every reply would count as a customer's), and ignores notifyUsers=false, so "
                            "each label sla-bridge sets would email the issue's watchers. Use a project administrator's token")
        return problems

    def _status_field_problems(self, field_id: str) -> list[str]:
        field = next((f for f in self.site_fields() if f["id"] == field_id), None)
        custom = str(_schema(field or {}).get("custom") or "")
        if custom.endswith(":textfield"):
            return []
        return [f"sources.{self.name}.writeback.status_field: {field_id} ({vendor_text(field.get('name') if field else '?')!r}) is a "
                f"{vendor_text(custom or _schema(field or {}).get('type') or 'system')} field; sla-bridge writes breached, at_risk, "
                "on_track and met into it, so it must be a single-line text field"]

    def list_fields(self) -> list[FieldInfo]:
        """Every field of the site, custom ones by id with their kind (``sd-sla-field``, ``textfield``)."""
        return [
            FieldInfo(id=str(f["id"]), title=vendor_text(f.get("name") or ""),
                      type=vendor_text(str(_schema(f).get("custom") or "").rpartition(":")[2] or _schema(f).get("type") or ""))
            for f in self.site_fields()
        ]

    def streams(self) -> Sequence[Stream]:
        return [
            Stream(
                "issues",
                Request("/rest/api/3/search/jql", method="POST", idempotent=True),  # a search: a read, retried as one
                paginator=lambda: TokenPaginator(in_body=True),
                resume=FromWatermark(position=_position, since=self._search, overlap=timedelta(seconds=self.jira.overlap),
                                     granularity=timedelta(minutes=1)),
                records="issues",
                prepare=self._prepare,
                context=self._page_roster,
                normalise=self._issue,
                expand=self._full_history,
                on_repeat="the search answered a page token it had handed out before",
            ),
        ]

    def _prepare(self) -> None:
        self.resolve_fields()
        self._agent_lists()

    def _search(self, request: Request, since: datetime) -> Request:
        """The first page of issues changed at or after ``since``, in the order the watermark needs."""
        resolved = self.resolve_fields()
        projects = ", ".join(f'"{key}"' for key in self.jira.projects)  # quoted: a key may be a JQL word
        jql = f"project in ({projects})"
        if self.jira.jql:
            jql += f" AND ({self.jira.jql})"
        millis = int(since.timestamp() * 1000)
        jql += f" AND updated >= {max(0, millis)} ORDER BY updated ASC, key ASC"
        extra = [field for field in (self._status_field, self._request_type) if field]
        wanted = list(dict.fromkeys([*SEARCH_FIELDS, *resolved.values(), *self._sla_ids, *extra]))
        return request.with_json(jql=jql, fields=wanted, expand="changelog", maxResults=PAGE_SIZE)

    def _issue(self, raw: Any, roster: object) -> list[Ticket | TicketEvent]:
        """One issue of a search page: the ticket, and its history where the page holds all of it."""
        [ticket] = self.records.ticket(raw)
        fields = raw["fields"]
        try:
            ticket.fields.update(self.records.sla_fields(raw, self._sla_ids))
        except ValueError as error:  # kept as JSM sent them: only for reconciliation, never for verdicts
            log.debug("source %r: %s", self.name, error)
        histories = _complete(raw.get("changelog"), "histories")
        said = _complete(fields.get("comment"), "comments")
        # Only a whole history is kept: a part the search cut short is fetched whole by expand.
        events = self.records.events(ticket.external_id, histories or [], said or [], self.roster, scope=_project(ticket))
        for short, whole in ((self._short_history, histories), (self._short_comments, said)):
            if whole is None:
                short.add(ticket.external_id)
            else:
                short.discard(ticket.external_id)
        return [ticket, *events]

    def _full_history(self, tickets: list[Ticket]) -> Iterator[TicketEvent | QuarantinedRecord]:
        """The history the search cut short, for this page's issues: one bulk changelog walk for all
        of them, and the comments of each whose comments were cut."""
        by_id = {ticket.external_id: ticket for ticket in tickets}
        histories: dict[str, list[Any]] = {}
        short = [number for number in by_id if number in self._short_history]
        for offset in range(0, len(short), BULK_IDS):
            chunk = short[offset : offset + BULK_IDS]
            request = Request("/rest/api/3/changelog/bulkfetch", method="POST", idempotent=True,
                              json={"issueIdsOrKeys": chunk, "fieldIds": self._history_fields(), "maxResults": 1000})
            for data in paginate(self.http, request, TokenPaginator(in_body=True)):
                for log_ in (data or {}).get("issueChangeLogs") or []:
                    if isinstance(log_, dict) and str(log_.get("issueId")) in by_id:
                        histories.setdefault(str(log_["issueId"]), []).extend(log_.get("changeHistories") or [])
        comments: dict[str, list[Any]] = {}
        unreadable: dict[str, str] = {}
        for number in by_id:
            if number in self._short_comments:
                try:
                    comments[number] = self.comments(number)
                except (NotFound, PermissionDenied) as error:  # deleted or hidden since the search: this issue only
                    unreadable[number] = f"its comments cannot be read: {error.detail}"
        self._check_authors([(_project(by_id[n]), c) for n, cs in comments.items() for c in cs])
        for number, ticket in by_id.items():
            if number not in self._short_history and number not in self._short_comments:
                continue
            if number in unreadable:
                yield QuarantinedRecord(self.name, number, unreadable[number], {"changeHistories": histories.get(number)})
                continue
            try:
                events = self.records.events(number, histories.get(number, []) if number in self._short_history else [],
                                             comments.get(number, []), self.roster, scope=_project(ticket))
            except ValueError as error:
                yield QuarantinedRecord(self.name, number, str(error),
                                        {"changeHistories": histories.get(number), "comments": comments.get(number)})
                continue
            yield from (e for e in events if number in self._short_history or e.kind not in ("status", "priority", "group"))
        self._short_history.difference_update(by_id)
        self._short_comments.difference_update(by_id)

    def comments(self, number: str) -> list[Any]:
        """Every comment of an issue, oldest first, with the properties that mark internal ones."""
        request = Request(f"/rest/api/3/issue/{number}/comment",
                          {"startAt": 0, "maxResults": COMMENT_PAGE, "orderBy": "created", "expand": "properties"})
        found: list[Any] = []
        for data in paginate(self.http, request, OffsetPaginator(), records="comments"):
            found.extend(data.get("comments") or [])
        return found

    # -- who is an agent ------------------------------------------------------------------

    def _agent_lists(self) -> dict[str, set[str]]:
        """The JSM agents of each project, once per run, observed into the roster."""
        if self._listed is None:
            listed: dict[str, set[str]] = {}
            for project in self.jira.projects:
                users = self._permitted(project, {"startAt": 0, "maxResults": AGENT_RANGE})
                listed[project] = {str(u["accountId"]) for u in users if isinstance(u, dict) and u.get("accountId")}
            self._listed = listed
            # An agent the roster holds whom the list lacks is demoted, or beyond the thousand
            # users the list scans: asked once by id before the span is closed.
            for who in sorted(self.roster.agents()):
                project, _, account = who.partition("/")
                if project in listed and account and account not in listed[project]:
                    self._checked[who] = bool(self._permitted(project, {"accountId": account}))
            self._observe()
        return self._listed

    def _permitted(self, project: str, params: Mapping[str, Any]) -> list[Any]:
        try:
            data = self.http.get_json("/rest/api/3/user/permission/search",
                                      params={"permissions": AGENT_PERMISSION, "projectKey": project, **params})
        except PermissionDenied:
            raise PermissionDenied(
                f"Jira refused to list the agents of project {project} to this account (it takes Administer Projects): "
                "without them no reply can be told from a customer's. Use a project administrator's API token for "
                f"sources.{self.name}.auth", source=self.name) from None
        if not isinstance(data, list):
            raise BadRequest(f"the agent search of project {project} answered a {type(data).__name__}, not a list of users",
                             source=self.name)
        return data

    def _observe(self) -> None:
        assert self._listed is not None
        agents = {f"{project}/{account}" for project, accounts in self._listed.items() for account in accounts}
        agents |= {who for who, agent in self._checked.items() if agent}
        self.roster.observe(agents, at=self.http.policy.clock())

    def _page_roster(self, data: Any) -> object:
        """Before a page is normalised: the authors of its public comments that the agent lists
        do not settle are asked about one by one (licensed accounts only: a portal customer is
        never an agent)."""
        pairs: list[tuple[str, Any]] = []
        for raw in (data.get("issues") if isinstance(data, dict) else None) or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
                continue
            comment = (raw.get("fields") or {}).get("comment") if isinstance(raw.get("fields"), dict) else None
            project = raw["key"].rpartition("-")[0]
            pairs.extend((project, item) for item in (comment.get("comments") if isinstance(comment, dict) else None) or [])
        self._check_authors(pairs)
        return self.roster

    def _check_authors(self, pairs: Iterable[tuple[str, Any]]) -> None:
        listed = self._agent_lists()
        asked = False
        for project, comment in pairs:
            author = comment.get("author") if isinstance(comment, dict) else None
            if not isinstance(author, dict) or author.get("accountType") != "atlassian" or not author.get("accountId"):
                continue
            account = str(author["accountId"])
            who = f"{project}/{account}"
            if account in listed.get(project, set()) or who in self._checked:
                continue
            if project not in listed:  # an issue moved in from a project not configured: no one there is our agent
                self._checked[who] = False
                continue
            self._checked[who] = bool(self._permitted(project, {"accountId": account}))
            asked = True
        if asked:
            self._observe()

    # -- writing --------------------------------------------------------------------------

    def field_value(self, ticket: Ticket, field_id: str) -> tuple[bool, object]:
        if field_id not in ticket.fields:
            return False, None
        return True, ticket.fields.get(field_id)

    def write_one(self, plan: WritebackPlan) -> WritebackResult:
        """Labels and the status field in one edit, then the notes as one internal comment; each
        part reported on its own (labels landed, note refused)."""
        results: list[ItemResult] = []
        if plan.set_fields or plan.add_tags or plan.remove_tags:
            results.extend(self._edit(plan, dict(plan.set_fields)))
        if plan.notes:
            results.extend(self._note(plan, plan.notes))
        return WritebackResult(plan.ticket_id, tuple(results))

    def _edit(self, plan: WritebackPlan, fields: dict[str, Any]) -> list[ItemResult]:
        labels = [{"add": label} for label in plan.add_tags] + [{"remove": label} for label in plan.remove_tags]
        body: dict[str, Any] = {}
        if labels:
            body["update"] = {"labels": labels}
        if fields:
            body["fields"] = dict(fields)
        items = [field_item(f) for f in fields] + ([TAGS_ITEM] if labels else [])
        response = self.http.request("PUT", f"/rest/api/3/issue/{plan.external_id}", params={"notifyUsers": "false"},
                                     json=body, accept=(400, 403, 404, 409, 422))
        if response.status_code < 300:
            return [ItemResult(item, "sent") for item in items]
        said = _error_text(response)
        if response.status_code == 409:  # a concurrent edit of the issue: planned again from the next pull
            return [ItemResult(item, "conflict", f"409: {said}") for item in items]
        if response.status_code == 422:
            return [ItemResult(item, "refused", f"422 (Jira's configuration refuses this edit): {said}") for item in items]
        if response.status_code == 404:
            return [ItemResult(item, "refused", f"404: {said}") for item in items]
        if response.status_code == 403:
            return [ItemResult(item, "refused", f"403 (the account may not edit this issue): {said}") for item in items]
        named = _error_fields(response)
        ours = [f for f in fields if f in named]
        if ours and labels:
            # The field is not on this issue type's edit screen: the labels may still go, on their own.
            kept = self._edit(plan_without_fields(plan), {})
            return [ItemResult(field_item(f), "refused", f"400: {said}") for f in fields] + kept
        return [ItemResult(item, "refused", f"400: {said}") for item in items]

    def _note(self, plan: WritebackPlan, notes: Sequence[Note]) -> list[ItemResult]:
        items = [note_item(note.marker) for note in notes]
        service_desk, platform = internal_note_requests("\n\n".join(note.body for note in notes))
        kind = self._request_type
        if kind and kind in plan.ticket.fields and plan.ticket.fields[kind] is None:
            response = None  # pulled without a request type: JSM would answer 404 vpOriginMissing
        else:
            response = self._post_internal(f"/rest/servicedeskapi/request/{plan.external_id}/comment", service_desk)
        if response is None or (response.status_code == 404 and NO_REQUEST_TYPE in response.text):
            # Not a customer request (no request type): the platform route, marked internal.
            response = self._post_internal(f"/rest/api/3/issue/{plan.external_id}/comment", platform)
            public = self._made_public(plan, response) if response.status_code < 300 else None
            if public is not None:
                return [ItemResult(item, "refused", public) for item in items]
        if response.status_code < 300:
            return [ItemResult(item, "sent") for item in items]
        said = _error_text(response)
        reason = {413: "the issue holds as many comments as Jira allows", 404: "the issue is gone",
                  403: "the account may not comment on this issue"}.get(response.status_code, "")
        return [ItemResult(item, "refused", f"{response.status_code} {reason}: {said}".strip()) for item in items]

    def _post_internal(self, url: str, body: Mapping[str, Any]) -> httpx.Response:
        """The one place a comment is sent; it refuses, before sending, any body that is not internal."""
        internal = body.get("public") is False if "/servicedeskapi/" in url else {
            "key": "sd.public.comment", "value": {"internal": True}} in (body.get("properties") or [])
        if not internal:
            raise AssertionError(f"refused to send a comment that is not internal to {url}")
        response: httpx.Response = self.http.request("POST", url, json=dict(body), accept=(400, 403, 404, 413), idempotent=False)
        return response

    def _made_public(self, plan: WritebackPlan, response: httpx.Response) -> str | None:
        """Why the note is refused if the platform route made it public, after deleting it.

        The internal property is honoured by JSM, not promised by the platform document
        (``jsdPublic`` "defaults to true" there): a comment it made public anyway is deleted at
        once, and the note is refused (journaled, retried after a back-off, shown by ``status``).
        """
        try:
            made = response.json()
        except ValueError:
            made = None
        if not isinstance(made, dict) or made.get("jsdPublic") is not True:
            return None
        comment = made.get("id")
        if comment is not None:
            self.http.request("DELETE", f"/rest/api/3/issue/{plan.external_id}/comment/{comment}", accept=(404,))
        log.warning("source %r: Jira made the note on issue %s public although it was sent as internal; deleted it",
                    self.name, plan.ticket.key or plan.external_id)
        return ("Jira made the note public although it was sent as internal (the sd.public.comment property), so it "
                "was deleted at once: this site does not honour internal platform comments on issues without a "
                "request type; give the issue a request type")

    def note_exists(self, external_id: str, marker: str) -> bool:
        """Whether an internal comment on the issue carries ``marker`` (NotFound: the issue is gone)."""
        return any(isinstance(comment, dict) and comment_is_internal(comment) and marker in _comment_text(comment)
                   for comment in self.comments(external_id))


def plan_without_fields(plan: WritebackPlan) -> WritebackPlan:
    return WritebackPlan(plan.ticket, {}, list(plan.add_tags), list(plan.remove_tags), [])


def _position(raw: Any) -> tuple[datetime, str]:
    return instant(raw["fields"]["updated"], f"issue {raw.get('key')}: fields.updated"), str(raw["id"])


def _project(ticket: Ticket) -> str:
    return (ticket.key or "").rpartition("-")[0]


def _complete(container: Any, key: str) -> list[Any] | None:
    """The list in a paged container the search embeds, if it holds all there is; None if cut
    short, or absent (a search that did not embed it: fetched whole rather than taken as empty)."""
    if container is None:
        return None
    if not isinstance(container, dict) or not isinstance(container.get(key), list):
        raise ValueError(f"the issue's embedded {key} are {type(container).__name__}, not a page of {key}")
    items: list[Any] = container[key]
    total, start = container.get("total"), container.get("startAt") or 0
    if not isinstance(total, int) or isinstance(total, bool) or start or total > len(items):
        return None  # cut short, or not known to be whole: fetched whole
    return items


def _unique_name(field_id: str | None, fields: list[dict[str, Any]]) -> str | None:
    """The name of a field no other field of the site shares (None if it is shared, or unknown):
    a changelog item without a ``fieldId`` names its custom field only by it."""
    named = next((f.get("name") for f in fields if f["id"] == field_id), None) if field_id else None
    if not isinstance(named, str) or not named:
        return None
    same = [f for f in fields if isinstance(f.get("name"), str) and f["name"].casefold() == named.casefold()]
    return named if len(same) == 1 else None


def _schema(field: Mapping[str, Any]) -> Mapping[str, Any]:
    schema = field.get("schema")
    return schema if isinstance(schema, Mapping) else {}


def _comment_text(comment: Mapping[str, Any]) -> str:
    body = comment.get("body")
    return body if isinstance(body, str) else adf_text(body) if isinstance(body, Mapping) else ""


def _error_fields(response: httpx.Response) -> set[str]:
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    return set(errors) if isinstance(errors, dict) else set()


def _error_text(response: httpx.Response) -> str:
    """What Jira said, in any of its three error shapes (or an HTML page), fit for a message."""
    try:
        body = response.json()
    except ValueError:
        return vendor_text(response.text, 200)
    parts: list[str] = []
    if isinstance(body, dict):
        messages = body.get("errorMessages")
        parts += [str(m) for m in messages] if isinstance(messages, list) else []
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        elif isinstance(errors, list):
            parts += [str(e.get("message")) for e in errors if isinstance(e, dict)]
        if body.get("errorMessage"):
            parts.append(str(body["errorMessage"]))
    return vendor_text("; ".join(parts) or str(body), 300)


