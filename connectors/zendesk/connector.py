"""The Zendesk Support connector: two streams, one look-up, and write-back in one or many tickets.

Requests, cheapest route first (BEHAVIOR.md has the figures):

- ``tickets``: the cursor-based incremental export, 1,000 per page, organisations and groups
  sideloaded (no request per ticket for names); resumed from ``after_cursor``, never from a
  recomputed start time;
- ``ticket_events``: the time-based incremental ticket-event export with ``comment_events``,
  1,000 per page: status, priority and group changes and every comment with its author and
  ``public`` flag; resumed from the last page's ``end_time``;
- group names: those the ticket pages sideloaded, and the group list (100 a page) once per
  pull only when the history names a group none of them did;
- agents: one cursor-paginated list of agents and admins per pull, observed into the source's
  roster of who was an agent when, so a reply counts as an agent's by the author's role at the
  time it was written, not today's.

``check_credentials`` also says what the account cannot do that the config needs: a role that
is not admin (the exports are for admins), a status field that does not exist, is not text or
a drop-down, or is a drop-down without sla-bridge's values (Zendesk drops those silently).

The core reads the streams with its own loop (``bridge.framework.streams``); this module only
says where things are.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from bridge.edges.credentials import Secret
from bridge.edges.http import SourceClient
from bridge.errors import AuthenticationFailed, BadRequest
from bridge.framework import (
    Connector,
    CredentialCheck,
    CursorPaginator,
    FieldInfo,
    FromToken,
    ItemResult,
    NextUrlPaginator,
    Outcome,
    Request,
    SourceConfig,
    Stream,
    WritebackResult,
    WriteCapabilities,
    basic,
    epoch_seconds,
    paginate,
)
from bridge.framework.mapping import vendor_text
from bridge.framework.roster import AgentRoster
from bridge.model import Note, Ticket, WritebackPlan, note_item
from connectors.zendesk.config import ZendeskSourceConfig
from connectors.zendesk.normalise import (
    DEFAULT_FIELDS,
    DEFAULT_PRIORITIES,
    DEFAULT_STATUSES,
    History,
    Names,
    ZendeskRecords,
    sideloaded_names,
)

__all__ = ["ZendeskConnector", "export_pace"]

log = logging.getLogger("sla_bridge.zendesk")

PAGE_SIZE = 1000  # the export maximum: fewest requests against the 10-per-minute export budget
BULK_SIZE = 100  # update_many takes at most 100 ids
JOB_POLLS = 40  # about 3 minutes of polling at most
JOB_WAVE = 30  # queued jobs an account may have at once
_BUCKET = re.compile(r"remaining=(\d+).*?resets=(\d+)")
_READ_ONLY = ("closed", "deleted")  # closed tickets refuse updates (422); deleted ones are gone
SLA_STATES = ("breached", "at_risk", "on_track", "met")  # what sla-bridge writes into the status field
_TEXT_FIELDS = ("text", "textarea")  # take any value sla-bridge writes
# ticket_fields' system field types, by the name the config and the ticket use for them; every
# other type is a custom field (custom_field:ID). Zendesk marks some system fields removable
# (Type, Priority), so `removable` does not tell them apart.
# (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/)
SYSTEM_FIELDS = {
    "subject": "subject", "description": "description", "status": "status", "custom_status": "custom_status",
    "tickettype": "type", "priority": "priority", "basic_priority": "priority", "group": "group", "assignee": "assignee",
    "brand": "brand", "ticket_form": "ticket_form", "requester": "requester", "organization": "organization",
}
EXPORTS_FOR_ADMINS = "https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/"


def export_pace(response: httpx.Response) -> float:
    """Seconds to hold the next request: until the export or account budget resets, if spent."""
    bucket = response.headers.get("Zendesk-RateLimit-incremental-exports")
    if bucket:
        match = _BUCKET.search(bucket)
        if match and int(match.group(1)) == 0:
            return float(match.group(2))
    if response.headers.get("X-Rate-Limit-Remaining") == "0":
        reset = response.headers.get("ratelimit-reset")
        return float(reset) if reset and reset.isdigit() else 60.0
    return 0.0


def _start_time(horizon: datetime) -> dict[str, Any]:
    return {"start_time": int(horizon.timestamp())}


class ZendeskConnector(Connector):
    system = "zendesk"
    title = "Zendesk Support"
    config_model = ZendeskSourceConfig
    writes = WriteCapabilities(status_field=True, tags=True, notes=True, bulk=True, concurrency=True, notes_in_history=True)
    sandbox = "connectors.zendesk.sandbox:ZendeskSandbox"
    default_statuses = DEFAULT_STATUSES
    default_priorities = DEFAULT_PRIORITIES
    default_fields = DEFAULT_FIELDS
    # The exports refuse a start in the last minute, and leave out what changed in it
    # (https://support.zendesk.com/hc/en-us/articles/8143500919322): a stream that reached its
    # end is complete up to a minute before Zendesk's clock.
    newest_start = timedelta(seconds=61)
    export_lag = timedelta(seconds=60)

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        super().__init__(name, config, http)
        self.http.pace = export_pace
        self.records = ZendeskRecords(name, config.url, self.values, self.fields)
        self._agents: set[int] | None = None
        # Names by id text, as this pull's ticket pages sideloaded them (and the group list, if read).
        self._names: dict[str, dict[str, Any]] = {"organizations": {}, "groups": {}}
        self._groups_listed = False

    @classmethod
    def auth(cls, config: SourceConfig, secret: Secret) -> httpx.Auth:
        # API tokens authenticate as "{email}/token" (https://developer.zendesk.com/api-reference/introduction/security-and-auth/)
        if config.auth.kind == "token":
            assert config.auth.email is not None
            return basic(f"{config.auth.email}/token", secret)
        return super().auth(config, secret)

    # -- reading --------------------------------------------------------------------------

    def check_credentials(self) -> CredentialCheck:
        user = self.http.get_json("/api/v2/users/me.json").get("user") or {}
        if user.get("id") is None:
            # Zendesk answers 200 with an anonymous user when it did not take the credentials.
            raise AuthenticationFailed(
                f"Zendesk did not recognise the credentials (it answered as an anonymous user): check sources.{self.name}.auth",
                source=self.name,
            )
        role = vendor_text(user.get("role") or "user without a role")
        account = vendor_text(f"{user.get('name')} <{user.get('email')}>")
        problems = []
        if user.get("role") != "admin":
            # The incremental exports are "Allowed for: Admins"; anyone else gets 403 on the first pull.
            problems.append(
                f"sources.{self.name}.auth: {account} is a Zendesk {role}, not an admin, and the incremental exports "
                f"sla-bridge pulls tickets and their history from are for admins only ({EXPORTS_FOR_ADMINS}): "
                "use an admin's API token or OAuth token")
        problems.extend(self._status_field_problems())
        return CredentialCheck(account=account, detail=f"role {role}", problems=tuple(problems))

    def _status_field_problems(self) -> list[str]:
        """What is wrong with the configured status field, from its definition (one request)."""
        writeback = self.config.writeback
        spec = writeback.status_field
        if not writeback.enabled or not spec or not spec.startswith("custom_field:"):
            return []
        key, number = f"sources.{self.name}.writeback.status_field", spec.removeprefix("custom_field:")
        response = self.http.request("GET", f"/api/v2/ticket_fields/{number}.json", accept=(404,))
        data = response.json() if response.status_code == 200 else {}
        field = data.get("ticket_field") if isinstance(data, dict) else None
        if not isinstance(field, dict):
            return [f"{key}: Zendesk has no ticket field {number}; write the id of a text or drop-down field, as "
                    f"`sla-bridge fields {self.name}` lists it"]
        kind, title = vendor_text(field.get("type")), vendor_text(field.get("title") or "")
        if field.get("type") in _TEXT_FIELDS:
            return []
        if field.get("type") != "tagger":
            return [f"{key}: field {number} ({title!r}) is a {kind} field; sla-bridge writes {', '.join(SLA_STATES)} "
                    "into it, so it must be a text field or a drop-down with those values"]
        values = {str(option.get("value")) for option in _list(field.get("custom_field_options")) if isinstance(option, dict)}
        missing = [state for state in SLA_STATES if state not in values]
        if not missing:
            return []
        return [f"{key}: drop-down {number} ({title!r}) has no option with the value {', '.join(missing)}; Zendesk drops a "
                "value a drop-down has no option for without an error, so those states would never show on a ticket. "
                "Add options with those values (the option's tag), or use a text field"]

    def list_fields(self) -> list[FieldInfo]:
        """System fields by their own names (``type``, ``priority``, ...); custom ones as ``custom_field:ID``."""
        data = self.http.get_json("/api/v2/ticket_fields.json")
        fields = []
        for raw in _list(data.get("ticket_fields") if isinstance(data, dict) else None):
            if not isinstance(raw, dict):
                continue
            options = _list(raw.get("custom_field_options") or raw.get("system_field_options"))
            kind = str(raw.get("type") or "")
            fields.append(
                FieldInfo(
                    id=SYSTEM_FIELDS.get(kind) or f"custom_field:{raw.get('id')}",
                    title=vendor_text(raw.get("title") or ""),
                    type=vendor_text(kind),
                    options=[vendor_text(option.get("value")) for option in options if isinstance(option, dict)],
                )
            )
        return fields

    def streams(self) -> Sequence[Stream]:
        return [
            Stream(
                "tickets",
                Request("/api/v2/incremental/tickets/cursor.json", {"per_page": PAGE_SIZE, "include": "organizations,groups"}),
                paginator=lambda: CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream", drop=("start_time",)),
                resume=FromToken(_start_time),
                records="tickets",
                context=self.ticket_names,
                normalise=self.records.ticket,
            ),
            Stream(
                "ticket_events",
                Request("/api/v2/incremental/ticket_events.json", {"include": "comment_events", "per_page": PAGE_SIZE}),
                paginator=lambda: CursorPaginator(token="end_time", param="start_time", end="end_of_stream"),
                resume=FromToken(_start_time, instant=epoch_seconds),
                records="ticket_events",
                prepare=self.agent_ids,
                context=lambda data: History(self.agent_roster(), self.name_of),
                normalise=self.records.events,
                record_id=lambda raw: f"event:{raw.get('id') if isinstance(raw, Mapping) else '?'}",
                on_repeat=(f"more than {PAGE_SIZE} ticket events share one second, and the time-based export cannot page "
                           "past them (https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api)"),
            ),
        ]

    def agent_ids(self) -> set[int]:
        """Agents and admins now, fetched once per connector and observed into ``self.roster``
        (who was an agent when: a downgraded agent's earlier replies stay agents' replies)."""
        if self._agents is None:
            agents: set[int] = set()
            request = Request("/api/v2/users.json", {"role[]": ["agent", "admin"], "page[size]": 100})
            paging = CursorPaginator(token="meta.after_cursor", param="page[after]", more="meta.has_more")
            for data in paginate(self.http, request, paging):
                agents.update(u["id"] for u in data.get("users") or [] if isinstance(u, dict) and "id" in u)
            self._agents = agents
            self.roster.observe(agents, at=self.http.policy.clock())
        return self._agents

    def ticket_names(self, data: Any) -> Names:
        """The page's sideloaded organisation and group names, kept for the history to name its changes by."""
        names = sideloaded_names(data)
        for kind, found in names.items():
            self._names[kind].update((str(ref), name) for ref, name in found.items())
        return names

    def name_of(self, kind: str, ref: str) -> Any:
        """The name of an ``organizations`` or ``groups`` id, as a ticket page sideloads it.

        A group the ticket pages of this pull did not name (the group a ticket left, when no
        changed ticket is in it now) is looked up in the group list, read once per connector
        (100 a page, deleted groups included): no request per ticket. None: the account does
        not know the id, and the caller keeps the id's text, as ``Ticket.group`` does."""
        known = self._names[kind]
        if ref not in known and kind == "groups" and not self._groups_listed:
            self._groups_listed = True
            request = Request("/api/v2/groups.json", {"page[size]": 100})
            paging = CursorPaginator(token="meta.after_cursor", param="page[after]", more="meta.has_more")
            for data in paginate(self.http, request, paging):
                for group in _list(data.get("groups") if isinstance(data, dict) else None):
                    if isinstance(group, dict) and "id" in group:
                        known.setdefault(str(group["id"]), group.get("name"))  # the ticket pages' names stay
        return known.get(ref)

    def agent_roster(self) -> AgentRoster:
        """The roster, with this pull's agent list observed into it."""
        self.agent_ids()
        return self.roster

    def note_exists(self, external_id: str, marker: str) -> bool:
        """Whether an internal note carrying ``marker`` is already on the ticket (NotFound: it is gone)."""
        # Comments are paginated (a busy ticket has more than one page); next_page is a URL.
        request = Request(f"/api/v2/tickets/{external_id}/comments.json")
        for data in paginate(self.http, request, NextUrlPaginator(path="next_page")):
            if any(marker in (c.get("body") or "") and c.get("public") is False for c in data.get("comments") or []):
                return True
        return False

    # -- writing --------------------------------------------------------------------------

    def writable(self, ticket: Ticket) -> bool:
        return ticket.status_raw not in _READ_ONLY

    def field_value(self, ticket: Ticket, field_id: str) -> tuple[bool, object]:
        """The custom field's value as pulled: a drop-down drops a value it has no option for silently."""
        number = field_id.removeprefix("custom_field:")
        if number == field_id or number not in ticket.fields:
            return False, None
        return True, ticket.fields.get(number)

    def write(self, plans: Sequence[WritebackPlan]) -> Iterator[WritebackResult]:
        """A plan with a note goes alone (``safe_update``); tag- and field-only changes in bulk."""
        bulk = []
        for plan in plans:
            if plan.notes:
                yield self.write_one(plan)
            else:
                bulk.append(plan)
        yield from self._write_bulk(bulk)

    def write_one(self, plan: WritebackPlan) -> WritebackResult:
        """One ``PUT /api/v2/tickets/{id}`` with ``safe_update``; on 409, re-read and retry once.

        A 409 says the ticket changed since it was read, and the change may be this very note,
        posted by another store (a restored backup, a second ``--db``) inside the export's lag:
        before the retry, each note is looked for on the ticket by its marker, and only the
        missing ones are sent again (those found are reported sent: they are on the ticket).
        """
        stamp, tags = plan.ticket.version, list(plan.ticket.tags)
        if stamp is None:
            stamp, tags = self._current(plan.external_id)
        notes, present = list(plan.notes), set[str]()
        for attempt in (1, 2):
            if not notes and attempt == 2 and not (plan.set_fields or plan.add_tags or plan.remove_tags):
                return _partial(plan, "sent", present, version=stamp)  # every note is on the ticket already
            response = self.http.request(
                "PUT",
                f"/api/v2/tickets/{plan.external_id}.json",
                json={"ticket": self._change(plan, stamp, tags, notes)},
                accept=(404, 409, 422),
                idempotent=not notes,  # a note must never be posted twice by a blind retry
            )
            if response.status_code in (404, 422):
                body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
                detail = f"{response.status_code} {vendor_text(body.get('error', ''))}: {vendor_text(body.get('description', ''))}".strip()
                if _names_our_field(plan, body):  # the config's fault: stop, leave every item to retry once fixed
                    raise self._bad_field(plan, vendor_text(_details(body) or json.dumps(body)))
                # This ticket only: it is gone, or refuses updates (a closed ticket is read-only).
                return _partial(plan, "refused", present, f"{detail} {vendor_text(_details(body))}".strip())
            if response.status_code != 409:
                ticket = response.json().get("ticket") or {}
                return _partial(plan, "sent", present, version=ticket.get("updated_at"))
            log.info("source %r: ticket %s changed since it was read (409); re-reading (attempt %d)", self.name, plan.external_id, attempt)
            if attempt == 1:
                stamp, tags = self._current(plan.external_id)
                present = {note.marker for note in notes if self.note_exists(plan.external_id, note.marker)}
                notes = [note for note in notes if note.marker not in present]
        return _partial(plan, "conflict", present, "the ticket changed twice while sla-bridge wrote to it; left for the next run",
                        version=stamp)

    def _write_bulk(self, plans: list[WritebackPlan]) -> Iterator[WritebackResult]:
        """Same change for many tickets per ``update_many`` call.

        Jobs are submitted in waves of up to 30 (the account's limit of queued jobs) and polled
        together with ``job_statuses/show_many``, so waiting for one job overlaps the others.
        """
        groups: dict[tuple[Any, ...], list[WritebackPlan]] = {}
        for plan in plans:
            key = (tuple(sorted(plan.add_tags)), tuple(sorted(plan.remove_tags)), tuple(sorted(plan.set_fields.items(), key=str)))
            groups.setdefault(key, []).append(plan)
        batches = [
            (members[offset : offset + BULK_SIZE], change)
            for (add, remove, fields), members in groups.items()
            for change in [_bulk_change(list(add), list(remove), dict(fields))]
            for offset in range(0, len(members), BULK_SIZE)
        ]
        for wave in range(0, len(batches), JOB_WAVE):
            results, bad_field = self._bulk_wave(batches[wave : wave + JOB_WAVE])
            yield from results
            if bad_field is not None:
                raise self._bad_field(*bad_field)

    def _bad_field(self, plan: WritebackPlan, why: str) -> BadRequest:
        """A field of ours that Zendesk refuses (unknown, or a drop-down without our value) is the
        config's problem, the same on every ticket: the source stops, saying what to change."""
        return BadRequest(
            f"Zendesk refused {', '.join(plan.set_fields)} on ticket {plan.external_id} ({why}); check "
            f"sources.{self.name}.writeback.status_field: it must be a text field, or a drop-down whose options "
            "include breached, at_risk, on_track and met. Nothing was marked as done; the next run writes again",
            source=self.name,
        )

    def _bulk_wave(self, batches: list[tuple[list[WritebackPlan], dict[str, Any]]]
                   ) -> tuple[list[WritebackResult], tuple[WritebackPlan, str] | None]:
        """Each plan's result, and the first plan whose field Zendesk refused (with why), if any."""
        jobs: dict[str, list[WritebackPlan]] = {}
        for members, change in batches:
            ids = ",".join(plan.external_id for plan in members)
            job = self.http.request("PUT", "/api/v2/tickets/update_many.json", params={"ids": ids}, json={"ticket": change}, json_body=True)
            job_id = (job.get("job_status") or {}).get("id")
            if not job_id:
                raise BadRequest(f"update_many answered without a job status: {vendor_text(job, 200)}", source=self.name)
            jobs[job_id] = members
        finished: dict[str, dict[str, Any]] = {}
        for poll in range(JOB_POLLS):
            waiting = [job_id for job_id in jobs if job_id not in finished]
            if not waiting:
                break
            self.http.policy.sleep(min(0.25 * 2**poll, 5.0))  # small jobs finish in well under a second
            data = self.http.get_json("/api/v2/job_statuses/show_many.json", params={"ids": ",".join(waiting)})
            for status in data.get("job_statuses") or []:
                if status.get("status") in ("completed", "failed", "killed"):
                    finished[status["id"]] = status
        else:
            raise BadRequest(f"update_many jobs {', '.join(j for j in jobs if j not in finished)} did not finish after {JOB_POLLS} polls",
                             source=self.name)
        results = []
        bad_field: tuple[WritebackPlan, str] | None = None
        for job_id, members in jobs.items():
            job = finished[job_id]
            by_id = {str(r.get("id")): r for r in job.get("results") or [] if isinstance(r, dict)}
            for plan in members:
                outcome = by_id.get(plan.external_id)
                if outcome is None:
                    # A failed or killed job, or a ticket it does not report on: nothing says whether it
                    # was updated. The intents stay open; the (idempotent) change is planned again.
                    results.append(WritebackResult.of(plan, "conflict", f"update_many job {job.get('status')}: no result"))
                elif outcome.get("success"):
                    results.append(WritebackResult.of(plan, "sent"))
                elif outcome.get("error") == "TicketNotFound" or "closed prevents ticket update" in str(outcome.get("details")):
                    results.append(WritebackResult.of(plan, "refused", vendor_text(outcome.get("details") or outcome.get("error"))))
                else:
                    if outcome.get("error") == "RecordInvalid" and plan.set_fields:
                        bad_field = bad_field or (plan, vendor_text(outcome.get("details")))
                    results.append(WritebackResult.of(plan, "conflict", vendor_text(outcome.get("details") or outcome.get("error"))))
        return results, bad_field

    def _current(self, external_id: str) -> tuple[str | None, list[str]]:
        """The ticket's updated_at and tags as they are now."""
        ticket = self.http.get_json(f"/api/v2/tickets/{external_id}.json").get("ticket") or {}
        return ticket.get("updated_at"), list(ticket.get("tags") or [])

    def _change(self, plan: WritebackPlan, stamp: str | None, tags: list[str], notes: Sequence[Note]) -> dict[str, Any]:
        change: dict[str, Any] = {"safe_update": True, "updated_stamp": stamp}
        if notes:
            # public: false always; a public comment would itself fulfil reply-time metrics.
            change["comment"] = {"body": "\n\n".join(note.body for note in notes), "public": False}
        if plan.set_fields:
            change["custom_fields"] = _custom_fields(plan.set_fields)
        if plan.add_tags or plan.remove_tags:
            removing = set(plan.remove_tags)
            # `tags` replaces the whole list, so it is built from the agent's tags as read; safe_update
            # refuses it if they changed since.
            change["tags"] = [t for t in tags if t not in removing] + [t for t in plan.add_tags if t not in tags]
        return change



def _partial(plan: WritebackPlan, outcome: Outcome, present: set[str], detail: str = "", *,
             version: str | None = None) -> WritebackResult:
    """Every item of ``plan`` with ``outcome``, but the notes whose markers are in ``present``:
    those were found on the ticket, so they are ``sent`` whatever became of the rest."""
    found = {note_item(marker) for marker in present}
    return WritebackResult(plan.ticket_id, tuple(
        ItemResult(item, "sent") if item in found else ItemResult(item, outcome, detail)
        for item in plan.items()), version)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names_our_field(plan: WritebackPlan, body: Any) -> bool:
    """Whether a 422 is about a field the plan sets (by ``ticket_field_id`` or the id in the text)."""
    text, details = json.dumps(body), _details(body)
    return any(f'"ticket_field_id": {number}' in text or re.search(rf"\b{number}\b", details)
               for number in (spec.removeprefix("custom_field:") for spec in plan.set_fields))


def _details(body: Any) -> str:
    """Zendesk's validation details (``{"details": {"base": [{"description": ...}]}}``) as one line."""
    details = body.get("details") if isinstance(body, dict) else None
    if isinstance(details, dict):
        return "; ".join(str(item.get("description")) for items in details.values() if isinstance(items, list)
                         for item in items if isinstance(item, dict))
    return "" if details is None else str(details)


def _bulk_change(add: list[str], remove: list[str], fields: dict[str, Any]) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if add:
        change["additional_tags"] = add  # add and remove without touching the agent's own tags
    if remove:
        change["remove_tags"] = remove
    if fields:
        change["custom_fields"] = _custom_fields(fields)
    return change


def _custom_fields(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    # The config allows only "custom_field:<digits>" here (connectors.zendesk.config).
    return [{"id": int(spec.removeprefix("custom_field:")), "value": value} for spec, value in fields.items()]
