"""The Zendesk Support connector: pull tickets and their history, write SLA state back.

Requests, cheapest route first (BEHAVIOR.md has the figures):

- tickets: the cursor-based incremental export, 1,000 per page, organisations and groups
  sideloaded (no request per ticket for names);
- history: the time-based incremental ticket-event export with ``comment_events``, 1,000 per
  page: status and priority changes and every comment with its author and ``public`` flag;
- agents: one cursor-paginated list of agents and admins per pull, to tell an agent's reply from
  a customer's.

Each export page is one :class:`bridge.model.Page` with its cursor, so the store commits them
together; the ticket stream resumes from ``after_cursor`` (never a recomputed start time), the
event stream from the last page's ``end_time``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import httpx

from bridge.config import SourceConfig
from bridge.credentials import Secret
from bridge.errors import AuthenticationFailed, BadRequest, FatalSourceError, SkippableRecordError
from bridge.http import SourceClient
from bridge.model import Page, QuarantinedRecord, Ticket, TicketEvent, WritebackPlan
from connectors import register
from connectors.base import Connector, CredentialCheck, FieldInfo, WritebackResult, basic
from connectors.zendesk.normalise import ZendeskMapper

__all__ = ["ZendeskConnector", "export_pace"]

log = logging.getLogger("sla_bridge.zendesk")

PAGE_SIZE = 1000  # the export maximum: fewest requests against the 10-per-minute export budget
BULK_SIZE = 100  # update_many takes at most 100 ids
DEFAULT_HISTORY = timedelta(days=90)  # where the first pull starts when `start` is not set
JOB_POLLS = 40  # about 3 minutes of polling at most
JOB_WAVE = 30  # queued jobs an account may have at once
_BUCKET = re.compile(r"remaining=(\d+).*?resets=(\d+)")


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


@register
class ZendeskConnector(Connector):
    system = "zendesk"

    def __init__(self, name: str, config: SourceConfig, http: SourceClient) -> None:
        super().__init__(name, config, http)
        self.http.pace = export_pace
        self.mapper = ZendeskMapper(name, config)
        self._agents: set[int] | None = None

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
        return CredentialCheck(account=f"{user.get('name')} <{user.get('email')}>", detail=f"role {user.get('role')}")

    def list_fields(self) -> list[FieldInfo]:
        data = self.http.get_json("/api/v2/ticket_fields.json")
        fields = []
        for raw in data.get("ticket_fields") or []:
            options = raw.get("custom_field_options") or raw.get("system_field_options") or []
            custom = "custom_field_options" in raw or raw.get("removable")
            fields.append(
                FieldInfo(
                    id=f"custom_field:{raw['id']}" if custom else str(raw.get("type")),
                    title=raw.get("title") or "",
                    type=raw.get("type") or "",
                    options=[str(option.get("value")) for option in options],
                )
            )
        return fields

    def pull(self, cursors: Mapping[str, str | None], *, now: datetime) -> Iterator[Page]:
        start = self._start_epoch(now)
        yield from self._pull_tickets(cursors.get("tickets"), start)
        yield from self._pull_events(cursors.get("ticket_events"), start)

    def unmapped(self) -> dict[str, int]:
        return dict(self.mapper.unmapped)

    def history_start(self, now: datetime) -> datetime:
        return datetime.fromtimestamp(self._start_epoch(now), timezone.utc)

    def _start_epoch(self, now: datetime) -> int:
        start = self.config.start
        if start is None:
            moment = now - DEFAULT_HISTORY
        elif isinstance(start, datetime):
            moment = start
        else:
            assert isinstance(start, date)
            moment = datetime.combine(start, time(), tzinfo=timezone.utc)
        # The export refuses a start in the last minute (https://support.zendesk.com/hc/en-us/articles/8143500919322).
        return min(int(moment.timestamp()), int(now.timestamp()) - 61)

    def _pull_tickets(self, cursor: str | None, start: int) -> Iterator[Page]:
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"per_page": PAGE_SIZE, "include": "organizations,groups"}
            params.update({"cursor": cursor} if cursor else {"start_time": start})
            data = self.http.get_json("/api/v2/incremental/tickets/cursor.json", params=params)
            names = {
                "organizations": {o["id"]: o.get("name") for o in data.get("organizations") or [] if "id" in o},
                "groups": {g["id"]: g.get("name") for g in data.get("groups") or [] if "id" in g},
            }
            tickets: list[Ticket] = []
            quarantined: list[QuarantinedRecord] = []
            for raw in data.get("tickets") or []:
                try:
                    tickets.append(self.mapper.ticket(raw, names))
                except SkippableRecordError as error:
                    quarantined.append(QuarantinedRecord(self.name, error.record_id or "?", error.detail, raw))
            after = data.get("after_cursor")
            done = bool(data.get("end_of_stream"))
            yield Page(tickets=tickets, events=[], cursor=after, quarantined=quarantined, stream="tickets", done=done)
            if done or not after:
                return
            if after in seen or after == cursor:
                raise FatalSourceError(
                    f"the ticket export returned cursor {after!r} twice; stopping rather than looping", source=self.name
                )
            seen.add(after)
            cursor = after

    def _pull_events(self, cursor: str | None, start: int) -> Iterator[Page]:
        agents = self.agent_ids()
        start_time = int(cursor) if cursor else start
        while True:
            params = {"start_time": start_time, "include": "comment_events", "per_page": PAGE_SIZE}
            data = self.http.get_json("/api/v2/incremental/ticket_events.json", params=params)
            events: list[TicketEvent] = []
            quarantined: list[QuarantinedRecord] = []
            raw_events = data.get("ticket_events") or []
            for raw in raw_events:
                try:
                    events.extend(self.mapper.events(raw, agents))
                except SkippableRecordError as error:
                    quarantined.append(QuarantinedRecord(self.name, f"event:{error.record_id}", error.detail, raw))
            end_time = int(data.get("end_time") or start_time)
            done = bool(data.get("end_of_stream"))
            yield Page(tickets=[], events=events, cursor=str(end_time), quarantined=quarantined, stream="ticket_events", done=done)
            if done:
                return
            if end_time <= start_time:
                # A full page all at one second: the time-based export cannot move past it.
                raise FatalSourceError(
                    f"more than {PAGE_SIZE} ticket events share the second {start_time}; the time-based export "
                    "cannot page past them (https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api)",
                    source=self.name,
                )
            start_time = end_time

    def agent_ids(self) -> set[int]:
        """Agents and admins, fetched once per connector: whose public comments are replies."""
        if self._agents is None:
            agents: set[int] = set()
            params: dict[str, Any] = {"role[]": ["agent", "admin"], "page[size]": 100}
            while True:
                data = self.http.get_json("/api/v2/users.json", params=params)
                agents.update(u["id"] for u in data.get("users") or [] if "id" in u)
                meta = data.get("meta") or {}
                if not meta.get("has_more") or not meta.get("after_cursor"):
                    break
                params = {**params, "page[after]": meta["after_cursor"]}
            self._agents = agents
        return self._agents

    def note_exists(self, external_id: str, marker: str) -> bool:
        """Whether an internal note carrying ``marker`` is already on the ticket (NotFound: it is gone)."""
        url: str | None = f"/api/v2/tickets/{external_id}/comments.json"
        while url:
            data = self.http.get_json(url)
            if any(marker in (c.get("body") or "") and c.get("public") is False for c in data.get("comments") or []):
                return True
            url = data.get("next_page")  # comments are paginated: a busy ticket has more than one page
        return False

    # -- writing --------------------------------------------------------------------------

    def apply(self, plan: WritebackPlan) -> WritebackResult:
        """One ``PUT /api/v2/tickets/{id}`` with ``safe_update``; on 409, re-read and retry once."""
        stamp, tags = plan.expected_version, plan.base_tags
        if stamp is None or (tags is None and (plan.add_tags or plan.remove_tags)):
            stamp, tags = self._current(plan.external_id)
        for attempt in (1, 2):
            change = self._change(plan, stamp, tags)
            response = self.http.request(
                "PUT",
                f"/api/v2/tickets/{plan.external_id}.json",
                json={"ticket": change},
                accept=(404, 409, 422),
                idempotent=not plan.notes,  # a note must never be posted twice by a blind retry
            )
            if response.status_code in (404, 422):
                # This ticket only: it is gone, or refuses updates (a closed ticket is read-only).
                body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
                return WritebackResult(plan.ticket_id, sent=False,
                                       detail=f"{response.status_code} {body.get('error', '')}: {body.get('description', '')}".strip())
            if response.status_code != 409:
                ticket = response.json().get("ticket") or {}
                return WritebackResult(plan.ticket_id, sent=True, version=ticket.get("updated_at"))
            log.info("source %r: ticket %s changed since it was read (409); re-reading (attempt %d)", self.name, plan.external_id, attempt)
            if attempt == 1:
                stamp, tags = self._current(plan.external_id)
        return WritebackResult(
            plan.ticket_id, sent=False, conflict=True, version=stamp,
            detail="the ticket changed twice while sla-bridge wrote to it; left for the next run",
        )

    def apply_all(self, plans: list[WritebackPlan]) -> list[WritebackResult]:
        """Tag- and field-only changes go in bulk (update_many, same change per call); the rest one by one.

        Bulk jobs are submitted in waves of up to 30 (the account's limit of queued jobs) and polled
        together with ``job_statuses/show_many``, so waiting for one job overlaps the others.
        """
        results: dict[str, WritebackResult] = {}
        groups: dict[tuple[Any, ...], list[WritebackPlan]] = {}
        for plan in plans:
            if plan.notes:
                results[plan.ticket_id] = self.apply(plan)
                continue
            key = (tuple(sorted(plan.add_tags)), tuple(sorted(plan.remove_tags)), tuple(sorted(plan.set_fields.items(), key=str)))
            groups.setdefault(key, []).append(plan)
        batches = [
            (members[offset : offset + BULK_SIZE], change)
            for (add, remove, fields), members in groups.items()
            for change in [_bulk_change(list(add), list(remove), dict(fields))]
            for offset in range(0, len(members), BULK_SIZE)
        ]
        for wave in range(0, len(batches), JOB_WAVE):
            results.update(self._bulk_wave(batches[wave : wave + JOB_WAVE]))
        return [results[plan.ticket_id] for plan in plans]

    def _bulk_wave(self, batches: list[tuple[list[WritebackPlan], dict[str, Any]]]) -> dict[str, WritebackResult]:
        jobs: dict[str, list[WritebackPlan]] = {}
        for members, change in batches:
            ids = ",".join(plan.external_id for plan in members)
            job = self.http.request("PUT", "/api/v2/tickets/update_many.json", params={"ids": ids}, json={"ticket": change}, json_body=True)
            job_id = (job.get("job_status") or {}).get("id")
            if not job_id:
                raise BadRequest(f"update_many answered without a job status: {str(job)[:200]}", source=self.name)
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
        results = {}
        for job_id, members in jobs.items():
            by_id = {str(r.get("id")): r for r in finished[job_id].get("results") or []}
            for plan in members:
                outcome = by_id.get(plan.external_id, {})
                ok = bool(outcome.get("success"))
                detail = "" if ok else str(outcome.get("details") or outcome.get("error") or finished[job_id].get("status"))
                results[plan.ticket_id] = WritebackResult(plan.ticket_id, sent=ok, detail=detail)
        return results

    def _current(self, external_id: str) -> tuple[str | None, list[str]]:
        """The ticket's updated_at and tags as they are now."""
        ticket = self.http.get_json(f"/api/v2/tickets/{external_id}.json").get("ticket") or {}
        return ticket.get("updated_at"), list(ticket.get("tags") or [])

    def _change(self, plan: WritebackPlan, stamp: str | None, tags: list[str] | None) -> dict[str, Any]:
        change: dict[str, Any] = {"safe_update": True, "updated_stamp": stamp}
        if plan.notes:
            # public: false always; a public comment would itself fulfil reply-time metrics.
            change["comment"] = {"body": "\n\n".join(note.body for note in plan.notes), "public": False}
        if plan.set_fields:
            change["custom_fields"] = _custom_fields(plan.set_fields)
        if plan.add_tags or plan.remove_tags:
            base = tags or []
            removing = set(plan.remove_tags)
            # `tags` replaces the whole list, so it is built from the agent's tags as read; safe_update
            # refuses it if they changed since.
            change["tags"] = [t for t in base if t not in removing] + [t for t in plan.add_tags if t not in base]
        return change


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
    out = []
    for spec, value in fields.items():
        field_id = spec.split(":", 1)[1] if spec.startswith("custom_field:") else spec
        out.append({"id": int(field_id), "value": value})
    return out
