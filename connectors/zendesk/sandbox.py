"""A local emulator of the Zendesk Support API paths sla-bridge uses.

Faithful where the connector could tell the difference (../shared/reference/zendesk-api.md,
section 9): cursor export with opaque base64 cursors, ``per_page``, ``end_of_stream`` and the
one-minute exclusion; deleted tickets as ``status: "deleted"``; the time-based ticket-event
export with ``comment_events``; organisations and groups sideloaded on the export; the story's
handoffs as ``group_id`` changes in the ticket-event export (ids as text, as audits give them);
groups listed with cursor pagination, deleted ones marked; agents listed with cursor
pagination; comments in pages with ``next_page`` URLs; ticket fields; ticket update with
replace-on-PUT tags, internal notes that show up on re-read and in the ticket-event export
with their bodies, ``safe_update`` 409s; ``update_many`` with job statuses; closed tickets
read-only; drop-down values without an option dropped silently (single and bulk, with success);
the exports refused (403) to an API user who is not an admin; agents who can be downgraded to
end users; system ticket fields as Zendesk lists them (Type and Priority ``removable: true``);
rate limits with 429 + ``Retry-After`` and ``X-Rate-Limit`` headers; Zendesk's error bodies. Serving, the request log
and fault injection come from :mod:`connectors.kit.server`; the tickets' story from
:mod:`connectors.kit.story`, told in Zendesk's words.

Seeded and deterministic: the same ``seed``, ``tickets`` and ``anchor`` give the same data.
"""

from __future__ import annotations

import base64
import bisect
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from bridge.framework.sandbox import WritebackSummary
from connectors.kit.server import SandboxServer, SlidingWindow, json_response
from connectors.kit.story import CUSTOMERS, SERVICES, Step, tell
from connectors.kit.story import GROUPS as GROUP_NAMES

__all__ = ["AGENT_IDS", "ORGANIZATIONS", "SERVICE_FIELD", "SLA_STATUS_FIELD", "ZendeskSandbox"]

UTC = timezone.utc
ORGANIZATIONS = {360001 + index: name for index, name in enumerate(CUSTOMERS)}
GROUPS = {20001 + index: name for index, name in enumerate(GROUP_NAMES)}
AGENT_IDS = (1000, 1001, 1002, 1003, 1004)
BOT_ID = AGENT_IDS[0]  # the account the bridge authenticates as
SERVICE_FIELD = 360000000101
SLA_STATUS_FIELD = 360000000102
# The story's canonical words in Zendesk's.
STATUSES = {"open": "open", "waiting_customer": "pending", "resolved": "solved"}
PRIORITIES = {"p1": "urgent", "p2": "high", "p3": "normal", "p4": "low"}
COMMENTS_PER_PAGE = 100
QUEUED_JOBS = 30  # jobs an account may have queued or working at once
TICKET_UPDATES = (30, 600.0)  # updates to one ticket in a window of seconds


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _id_text(ref: int | None) -> str | None:
    return None if ref is None else str(ref)


def _ticket_fields() -> list[dict[str, Any]]:
    """The account's ticket fields as ``GET /api/v2/ticket_fields`` lists them: system fields
    first (Zendesk marks Type and Priority ``removable: true``, as real accounts show), then the
    custom ones."""
    def system(fid: int, kind: str, title: str, options: list[str] | None = None, *, removable: bool = False) -> dict[str, Any]:
        field: dict[str, Any] = {"id": fid, "type": kind, "title": title, "raw_title": title, "active": True, "removable": removable,
                                 "required": False}
        if options:
            field["system_field_options"] = [{"name": o.title(), "value": o} for o in options]
        return field

    return [
        system(1, "subject", "Subject"),
        system(2, "description", "Description"),
        system(3, "status", "Status", ["new", "open", "pending", "hold", "solved", "closed"]),
        system(4, "tickettype", "Type", ["problem", "incident", "question", "task"], removable=True),
        system(5, "priority", "Priority", ["urgent", "high", "normal", "low"], removable=True),
        system(6, "group", "Group"),
        system(7, "assignee", "Assignee"),
        {"id": SERVICE_FIELD, "type": "tagger", "title": "Service", "raw_title": "Service", "active": True, "removable": True,
         "custom_field_options": [{"id": 900 + i, "name": s.title(), "value": s} for i, s in enumerate(SERVICES)]},
        {"id": SLA_STATUS_FIELD, "type": "text", "title": "SLA status", "raw_title": "SLA status", "active": True, "removable": True},
    ]


@dataclass
class _Job:
    id: str
    ticket_ids: list[int]
    change: dict[str, Any]
    status: str = "queued"
    results: list[dict[str, Any]] = field(default_factory=list)


class ZendeskSandbox(SandboxServer):
    """The emulator. Read its state directly in tests: ``tickets``, ``requests``, ``comments``."""

    first_stream = "/incremental/tickets"
    page_size = 1000

    def __init__(
        self,
        tickets: int = 200,
        *,
        seed: int = 1,
        anchor: datetime | None = None,
        email: str = "sla-bot@example.com",
        token: str = "sandbox-token",
        oauth_token: str | None = "sandbox-oauth-token",
        clock: Callable[[], datetime] | None = None,
        export_limit_per_minute: int = 10,
        account_limit_per_minute: int = 700,
        subdomain: str = "sandbox",
        role: str = "admin",
        deal: tuple[int, int] = (0, 1),
    ) -> None:
        self.base_url = f"https://{subdomain}.zendesk.com"
        super().__init__(clock=clock)
        self.anchor = (anchor or self.now()).astimezone(UTC).replace(microsecond=0)
        self.credentials = {f"Basic {base64.b64encode(f'{email}/token:{token}'.encode()).decode()}"}
        if oauth_token:
            self.credentials.add(f"Bearer {oauth_token}")
        self.email = email
        self.token = token
        # Each user's role; the API user's is `role` (https://developer.zendesk.com/api-reference/ticketing/users/users/).
        self.roles: dict[int, str] = {uid: "agent" for uid in AGENT_IDS}
        self.roles[BOT_ID] = role
        self.ticket_fields: dict[int, dict[str, Any]] = {field["id"]: field for field in _ticket_fields()}
        self.export_limit = export_limit_per_minute
        self.account_limit = account_limit_per_minute
        self._account = SlidingWindow(account_limit_per_minute)
        self._exports = SlidingWindow(export_limit_per_minute)
        self.tickets: dict[int, dict[str, Any]] = {}
        # The account's groups (https://developer.zendesk.com/api-reference/ticketing/groups/groups/).
        self.groups: dict[int, dict[str, Any]] = {
            gid: {"id": gid, "url": f"{self.base_url}/api/v2/groups/{gid}.json", "name": name, "description": "",
                  "default": gid == min(GROUPS), "deleted": False, "is_public": True,
                  "created_at": "2020-01-06T09:00:00Z", "updated_at": "2020-01-06T09:00:00Z"}
            for gid, name in GROUPS.items()}
        self.events: list[dict[str, Any]] = []  # the ticket-event export, in (timestamp, id) order
        self._stamps: list[int] = []  # their timestamps, for bisecting
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.jobs: dict[str, _Job] = {}
        self.kill_jobs = 0  # the next this many jobs are killed by Zendesk (a deploy, a timeout)
        self._ticket_updates: dict[int, SlidingWindow] = {}
        self._next_event_id = 9_000_000_000
        self._next_child_id = 7_000_000_000
        self._endless = 0
        self._seed(tickets, seed, deal)

    @classmethod
    def for_demo(cls, tickets: int, seed: int, *, deal: tuple[int, int] = (0, 1)) -> ZendeskSandbox:
        """30 export requests a minute (Zendesk's High Volume add-on), so a quarter pulls without a pause.
        ``deal``: only the story's tickets whose number % of == index (the rest live in other helpdesks)."""
        return cls(tickets, seed=seed, export_limit_per_minute=30, deal=deal)

    @classmethod
    def for_tests(cls, tickets: int, *, anchor: datetime) -> ZendeskSandbox:
        return cls(tickets, seed=11, anchor=anchor, clock=lambda: anchor, export_limit_per_minute=100_000,
                   account_limit_per_minute=100_000)

    # -- data -----------------------------------------------------------------------------

    def _seed(self, count: int, seed: int, deal: tuple[int, int]) -> None:
        latest = self.anchor - timedelta(minutes=5)
        plans: list[tuple[datetime, int, Step]] = []
        index, of = deal
        for story in tell(count, seed=seed, latest=latest):
            if story.number % of != index:
                continue
            org = list(ORGANIZATIONS)[story.customer]
            number = story.number
            created = story.created
            requester = 5000 + org % 1000 * 100 + story.requester
            ticket: dict[str, Any] = {
                "id": number,
                "url": f"{self.base_url}/api/v2/tickets/{number}.json",
                "external_id": None,
                "type": story.type,
                "subject": f"Request {number}",
                "raw_subject": f"Request {number}",
                "description": f"Customer report {number}",
                "priority": PRIORITIES[story.priority],
                "status": "new",
                "requester_id": requester,
                "submitter_id": requester,
                "assignee_id": AGENT_IDS[story.agent],
                "organization_id": org,
                "group_id": list(GROUPS)[story.group],
                "tags": [story.tag],
                "custom_fields": [
                    {"id": SERVICE_FIELD, "value": story.service},
                    {"id": SLA_STATUS_FIELD, "value": None},
                ],
                "created_at": _iso(created),
                "updated_at": _iso(created),
                "generated_timestamp": _epoch(created),
                "is_public": True,
                "has_incidents": False,
            }
            ticket["fields"] = ticket["custom_fields"]
            self.tickets[number] = ticket
            self.comments[number] = []
            plans.extend((step.at, number, step) for step in story.steps)
        for moment, number, step in sorted(plans, key=lambda p: (p[0], p[1])):
            self._apply_story_step(number, moment, step)
        # Zendesk closes solved tickets (at the latest) 28 days after they were solved; closed
        # tickets are read-only. (https://support.zendesk.com/hc/en-us/articles/4408887617050)
        for number, ticket in self.tickets.items():
            solved_at = datetime.fromisoformat(ticket["updated_at"].replace("Z", "+00:00"))
            if ticket["status"] == "solved" and latest - solved_at > timedelta(days=28):
                moment = solved_at + timedelta(days=28)
                ticket["status"] = "closed"
                self._record(number, moment, BOT_ID, [{"event_type": "Change", "status": "closed", "previous_value": "solved"}])
        self.events.sort(key=lambda event: (event["timestamp"], event["id"]))  # the export is in time order
        self._stamps = [event["timestamp"] for event in self.events]

    def _author(self, number: int, step: Step) -> int:
        ticket = self.tickets[number]
        author: int = {"requester": ticket["requester_id"], "agent": ticket["assignee_id"]}.get(step.actor, BOT_ID)
        return author

    def _apply_story_step(self, number: int, moment: datetime, step: Step) -> None:
        ticket = self.tickets[number]
        author = self._author(number, step)
        children: list[dict[str, Any]] = []
        if step.first:
            children += [{"event_type": "Create", name: ticket[name] if name != "status" else "new"} for name in ("status", "priority", "type")]
            children.append({"event_type": "Create", "group_id": _id_text(ticket["group_id"])})
        if step.group is not None:
            children += self._hand(number, list(GROUPS)[step.group])
        if step.delete:
            children.append({"event_type": "Change", "status": "deleted", "previous_value": ticket["status"]})
            ticket["status"] = "deleted"
        if step.public is not None:
            body = ticket["description"] if step.first else f"Message on ticket {number}"
            children.append(self._comment(number, author, body, step.public, moment))
        status = STATUSES.get(step.status or "")
        if status and status != ticket["status"]:
            children.append({"event_type": "Change", "status": status, "previous_value": ticket["status"]})
            ticket["status"] = status
        self._record(number, moment, author, children)

    def _hand(self, number: int, group: int | None) -> list[dict[str, Any]]:
        """The ticket moves to ``group``: a ``Change`` of ``group_id``, the ids as text (as the
        ticket audits carry them: https://developer.zendesk.com/documentation/ticketing/reference-guides/ticket-audit-events-reference)."""
        ticket = self.tickets[number]
        if group == ticket["group_id"]:
            return []
        change = {"event_type": "Change", "group_id": _id_text(group), "previous_value": _id_text(ticket["group_id"])}
        ticket["group_id"] = group
        return [change]

    def _comment(self, number: int, author: int, body: str, public: bool, moment: datetime) -> dict[str, Any]:
        self._next_child_id += 1
        comment = {
            "id": self._next_child_id,
            "type": "Comment",
            "author_id": author,
            "body": body,
            "html_body": f"<div class=\"zd-comment\" dir=\"auto\"><p dir=\"auto\">{html.escape(body)}</p></div>",
            "public": public,
            "attachments": [],
            "created_at": _iso(moment),
        }
        self.comments[number].append(comment)
        return {**comment, "event_type": "Comment"}

    def _record(self, number: int, moment: datetime, updater: int, children: list[dict[str, Any]]) -> None:
        ticket = self.tickets[number]
        self._next_event_id += 1
        for child in children:
            if "id" not in child:
                self._next_child_id += 1
                child["id"] = self._next_child_id
            child.setdefault("via", "Web form")
            child.setdefault("via_reference_id", None)
            if child.get("event_type") == "Comment":
                child["audit_id"] = self._next_event_id  # the update the comment came with
        event: dict[str, Any] = {
            "id": self._next_event_id,
            "ticket_id": number,
            "timestamp": _epoch(moment),
            "created_at": _iso(moment),
            "updater_id": updater,
            "via": "Web form",
            "system": {},
            "metadata": {},
            "event_type": "Audit",
            "merged_ticket_ids": [],
            "child_events": children,
        }
        # The export is in (timestamp, id) order; a test may date an update before the latest.
        at = bisect.bisect_right(self._stamps, event["timestamp"])
        self.events.insert(at, event)
        self._stamps.insert(at, event["timestamp"])
        if _epoch(moment) >= ticket["generated_timestamp"]:
            ticket["updated_at"] = _iso(moment)
            ticket["generated_timestamp"] = _epoch(moment)

    # -- changing the world from a test ---------------------------------------------------

    def customer_replies(self, number: int, at: datetime | None = None, author: int | None = None) -> None:
        """The requester (or ``author``) writes again (reopening a solved ticket), as if by e-mail."""
        with self._lock:
            ticket = self.tickets[number]
            moment = at or self.now()
            author = ticket["requester_id"] if author is None else author
            children = [self._comment(number, author, "Any news?", True, moment)]
            if ticket["status"] in ("solved", "pending"):
                children.append({"event_type": "Change", "status": "open", "previous_value": ticket["status"]})
                ticket["status"] = "open"
            self._record(number, moment, author, children)

    def agent_edits(self, number: int, *, tags: list[str] | None = None, at: datetime | None = None) -> None:
        """An agent changes the ticket in the UI (moves ``updated_at``)."""
        with self._lock:
            ticket = self.tickets[number]
            if tags is not None:
                ticket["tags"] = list(tags)
            self._record(number, at or self.now(), AGENT_IDS[1], [{"event_type": "Change", "tags": list(ticket["tags"])}])

    def hand_off(self, number: int, group: int | None, at: datetime | None = None) -> None:
        """An agent hands ticket ``number`` to ``group`` (an id, which need not be one of the
        account's groups; None: no group), as in the UI."""
        with self._lock:
            self._record(number, at or self.now(), AGENT_IDS[1], self._hand(number, group))

    def delete_group(self, group: int) -> None:
        """An admin deletes ``group``: it stays listed, marked ``deleted`` (unless ``exclude_deleted``)."""
        with self._lock:
            self.groups[group]["deleted"] = True

    def malform(self, number: int) -> None:
        """Ticket ``number`` comes out of the export malformed (its priority a list)."""
        with self._lock:
            self.tickets[number]["priority"] = [self.tickets[number]["priority"]]

    def busy_ticket(self) -> int:
        """A ticket whose comments fill more than one page (so reading them follows ``next_page``)."""
        with self._lock:
            number = next(n for n, t in sorted(self.tickets.items()) if t["status"] not in ("closed", "deleted"))
            while len(self.comments[number]) <= COMMENTS_PER_PAGE:
                self.customer_replies(number, at=self.anchor - timedelta(minutes=4))
            return number

    def unknown_value(self, number: int) -> str:
        """Ticket ``number`` gets a status no default maps (as an account's new status would)."""
        with self._lock:
            self.tickets[number]["status"] = "escalated"
            return "escalated"

    def noted(self, number: int, marker: str, at: datetime | None = None) -> None:
        """An internal note carrying ``marker`` is on the ticket, posted before this pull (by a
        run against another store, say); four minutes before the anchor unless ``at`` says."""
        with self._lock:
            moment = at or self.anchor - timedelta(minutes=4)
            body = f"SLA breach recorded by sla-bridge. {marker}"
            self._record(number, moment, BOT_ID, [self._comment(number, BOT_ID, body, False, moment)])

    def downgrade(self, uid: int) -> None:
        """An admin makes agent ``uid`` an end user: the agent list leaves them out from now on."""
        with self._lock:
            self.roles[uid] = "end-user"

    def status_drop_down(self, options: list[str]) -> None:
        """The account's SLA status field is a drop-down (``tagger``) with these option values."""
        with self._lock:
            self.ticket_fields[SLA_STATUS_FIELD] = {
                **self.ticket_fields[SLA_STATUS_FIELD], "type": "tagger",
                "custom_field_options": [{"id": 950 + i, "name": o.replace("_", " ").title(), "raw_name": o.replace("_", " ").title(),
                                          "value": o, "default": False} for i, o in enumerate(options)],
            }

    # -- what the core reads through the sandbox protocol ---------------------------------

    def source_config(self, url: str, token_env: str) -> dict[str, Any]:
        """A ``[sources.NAME]`` table that points sla-bridge at this sandbox."""
        return {
            "system": "zendesk",
            "url": url,
            "start": (self.anchor - timedelta(days=100)).date().isoformat(),
            "auth": {"email": self.email, "token_env": token_env},
            "fields": {"customer": "organization", "service": f"custom_field:{SERVICE_FIELD}"},
            "writeback": {"enabled": True, "status_field": f"custom_field:{SLA_STATUS_FIELD}"},
        }

    def writeback_summary(self) -> WritebackSummary:
        tagged = sum(1 for t in self.tickets.values() if any(tag.startswith("sla_") for tag in t["tags"]))
        notes = [body for number in self.tickets for body in self.internal_notes(number) if "[sla-bridge:" in body]
        return WritebackSummary(tickets_tagged=tagged, notes=notes)

    def internal_notes(self, number: int) -> list[str]:
        return [c["body"] for c in self.comments[number] if not c["public"]]

    # -- HTTP -----------------------------------------------------------------------------

    def authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("Authorization") in self.credentials

    def unauthorized(self) -> httpx.Response:
        return json_response(401, {"error": "Couldn't authenticate you"})

    def route(self, request: httpx.Request, path: str, query: dict[str, list[str]], body: Any) -> httpx.Response:
        parts = path.strip("/").split("/")
        method = request.method
        if body is None:
            return json_response(400, {"error": "InvalidValue", "description": "Request body is not valid JSON"})
        if parts[:2] != ["api", "v2"] or len(parts) < 3:
            return self.not_found()
        rest = parts[2:]
        if method == "GET" and rest == ["users", "me"]:
            return json_response(200, {"user": self._user(BOT_ID)})
        if method == "GET" and rest == ["users"]:
            return self._list_users(query)
        if method == "GET" and rest == ["groups"]:
            return self._list_groups(query)
        if rest[:1] == ["incremental"] and self.roles[BOT_ID] != "admin":
            return self._forbidden()  # the exports are "Allowed for: Admins"
        if method == "GET" and rest == ["incremental", "tickets", "cursor"]:
            return self._export_tickets(query)
        if method == "GET" and rest == ["incremental", "ticket_events"]:
            return self._export_events(query)
        if method == "GET" and rest == ["ticket_fields"]:
            fields = list(self.ticket_fields.values())
            return json_response(200, {"ticket_fields": fields, "next_page": None, "previous_page": None, "count": len(fields)})
        if method == "GET" and rest[:1] == ["ticket_fields"] and len(rest) == 2:
            found = self.ticket_fields.get(int(rest[1])) if rest[1].isdigit() else None
            return json_response(200, {"ticket_field": found}) if found else self.not_found()
        if rest[:1] == ["tickets"] and len(rest) == 2 and rest[1] == "update_many" and method == "PUT":
            return self._update_many(query, body)
        if rest[:1] == ["tickets"] and len(rest) >= 2 and rest[1].isdigit():
            number = int(rest[1])
            ticket = self.tickets.get(number)
            if ticket is None or ticket["status"] == "deleted":
                return self.not_found()
            if len(rest) == 2 and method == "GET":
                return json_response(200, {"ticket": ticket})
            if len(rest) == 2 and method == "PUT":
                return self._update_ticket(number, body)
            if rest[2:] == ["comments"] and method == "GET":
                return self._list_comments(number, path, query)
        if method == "GET" and rest == ["job_statuses", "show_many"]:
            ids = [i for i in ",".join(query.get("ids", [])).split(",") if i]
            return json_response(200, {"job_statuses": [self._advance(self.jobs[i]) for i in ids if i in self.jobs]})
        if method == "GET" and rest[:1] == ["job_statuses"] and len(rest) == 2:
            return self._job_status(rest[1])
        return self.not_found()

    def _list_comments(self, number: int, path: str, query: dict[str, list[str]]) -> httpx.Response:
        """Offset pages of 100 (``per_page`` up to 100), each naming the next page's URL."""
        size = max(1, min(int(query.get("per_page", [str(COMMENTS_PER_PAGE)])[0]), 100))
        page = max(1, int(query.get("page", ["1"])[0]))
        comments = self.comments[number]
        chunk = comments[(page - 1) * size : page * size]
        more = page * size < len(comments)
        return json_response(200, {
            "comments": chunk,
            "next_page": self.link(f"{path}.json", {"page": page + 1, "per_page": size}) if more else None,
            "previous_page": self.link(f"{path}.json", {"page": page - 1, "per_page": size}) if page > 1 else None,
            "count": len(comments),
        })

    # -- exports --------------------------------------------------------------------------

    def _visible_until(self) -> int:
        """The one-minute exclusion: nothing changed in the last minute is exported."""
        return _epoch(self.now()) - 60

    def _export_tickets(self, query: dict[str, list[str]]) -> httpx.Response:
        per_page = min(int(query.get("per_page", ["1000"])[0]), 1000)
        limit = self._visible_until()
        if "cursor" in query:
            try:
                decoded = base64.b64decode(query["cursor"][0]).decode()
                stamp_text, _, rest = decoded.partition("||")
                position = (int(float(stamp_text)), int(rest.strip("|")))
            except (ValueError, UnicodeDecodeError):
                return json_response(400, {"error": "InvalidCursor", "description": "The cursor is not valid"})
        elif "start_time" in query:
            start = int(query["start_time"][0])
            if start > limit:
                return json_response(400, {"error": "InvalidValue", "description": "start_time is too recent: it must be at least one minute in the past"})
            position = (start - 1, 2**62)
        else:
            return json_response(400, {"error": "InvalidValue", "description": "start_time or cursor is required"})
        exclude_deleted = query.get("exclude_deleted", ["false"])[0] == "true"
        ordered = sorted(self.tickets.values(), key=lambda t: (t["generated_timestamp"], t["id"]))
        after = [t for t in ordered if (t["generated_timestamp"], t["id"]) > position and t["generated_timestamp"] <= limit]
        page = after[:per_page]
        end_of_stream = len(after) <= per_page
        last = (page[-1]["generated_timestamp"], page[-1]["id"]) if page else position
        cursor = base64.b64encode(f"{last[0]}.0||{last[1]}|".encode()).decode()
        visible = [t for t in page if not (exclude_deleted and t["status"] == "deleted")]
        payload: dict[str, Any] = {
            "tickets": [self._export_view(t) for t in visible],
            "after_cursor": cursor,
            "after_url": self.link("/api/v2/incremental/tickets/cursor.json", {"cursor": cursor, "per_page": per_page}),
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": end_of_stream,
        }
        includes = set(",".join(query.get("include", [])).split(","))
        if "organizations" in includes:
            org_ids = sorted({t["organization_id"] for t in visible if t["organization_id"]})
            payload["organizations"] = [{"id": o, "name": ORGANIZATIONS[o], "url": self.link(f"/api/v2/organizations/{o}.json")} for o in org_ids]
        if "groups" in includes:
            group_ids = sorted({t["group_id"] for t in visible if t["group_id"]})
            payload["groups"] = [self.groups[g] for g in group_ids if g in self.groups]
        return json_response(200, payload)

    def _export_view(self, ticket: dict[str, Any]) -> dict[str, Any]:
        if ticket["status"] != "deleted":
            return ticket
        # A deleted ticket stays in the export, scrubbed down to a few fields.
        keep = ("url", "id", "status", "priority", "type", "created_at", "updated_at", "generated_timestamp",
                "requester_id", "assignee_id", "group_id", "organization_id", "tags", "custom_fields")
        return {key: ticket[key] for key in keep}

    def _export_events(self, query: dict[str, list[str]]) -> httpx.Response:
        if "start_time" not in query:
            return json_response(400, {"error": "InvalidValue", "description": "start_time is required"})
        start = int(query["start_time"][0])
        limit = self._visible_until()
        if start > limit:
            return json_response(400, {"error": "InvalidValue", "description": "start_time is too recent: it must be at least one minute in the past"})
        per_page = min(int(query.get("per_page", ["1000"])[0]), 1000)
        with_comments = "comment_events" in ",".join(query.get("include", []))
        first = bisect.bisect_left(self._stamps, start)
        last = bisect.bisect_right(self._stamps, limit)
        page = self.events[first:min(last, first + per_page)]
        end_time = page[-1]["timestamp"] if page else start
        rendered = [self._event_view(e, with_comments) for e in page]
        return json_response(
            200,
            {
                "ticket_events": rendered,
                "count": len(rendered),
                "end_time": end_time,
                "next_page": self.link("/api/v2/incremental/ticket_events.json", {"start_time": end_time}),
                "end_of_stream": len(page) < per_page,
            },
        )

    @staticmethod
    def _event_view(event: dict[str, Any], with_comments: bool) -> dict[str, Any]:
        children = []
        for child in event["child_events"]:
            if child["event_type"] == "Comment" and not with_comments:
                children.append({"id": child["id"], "via": child["via"], "via_reference_id": None,
                                 "comment_present": True, "comment_public": child["public"], "event_type": "Comment"})
            else:
                children.append(child)
        return {**event, "child_events": children}

    def _list_users(self, query: dict[str, list[str]]) -> httpx.Response:
        roles = set(query.get("role[]", [])) or {"agent", "admin", "end-user"}
        users = [self._user(uid) for uid in AGENT_IDS if self.roles[uid] in roles]
        size = min(int(query.get("page[size]", ["100"])[0]), 100)
        after = int(query.get("page[after]", ["0"])[0] or 0)
        rest = [u for u in users if u["id"] > after]
        page = rest[:size]
        more = len(rest) > size
        cursor = str(page[-1]["id"]) if page else None
        return json_response(200, {
            "users": page,
            "meta": {"has_more": more, "after_cursor": cursor if more else None, "before_cursor": None},
            "links": {"next": self.link("/api/v2/users.json", {"page[after]": cursor, "page[size]": size}) if more else None, "prev": None},
        })

    def _list_groups(self, query: dict[str, list[str]]) -> httpx.Response:
        """Cursor pages of at most 100; deleted groups too, unless ``exclude_deleted=true``."""
        exclude = query.get("exclude_deleted", ["false"])[0] == "true"
        groups = [g for gid, g in sorted(self.groups.items()) if not (exclude and g["deleted"])]
        size = min(int(query.get("page[size]", ["100"])[0]), 100)
        after = int(query.get("page[after]", ["0"])[0] or 0)
        rest = [g for g in groups if g["id"] > after]
        page, more = rest[:size], len(rest) > size
        cursor = str(page[-1]["id"]) if page and more else None
        return json_response(200, {
            "groups": page,
            "meta": {"has_more": more, "after_cursor": cursor, "before_cursor": None},
            "links": {"next": self.link("/api/v2/groups.json", {"page[after]": cursor, "page[size]": size}) if more else None,
                      "prev": None},
        })

    def _user(self, uid: int) -> dict[str, Any]:
        return {"id": uid, "name": "SLA Bot" if uid == BOT_ID else f"Agent {uid}",
                "email": self.email if uid == BOT_ID else f"agent{uid}@provider.example",
                "role": self.roles[uid], "active": True}

    def _forbidden(self) -> httpx.Response:
        # What Zendesk answers a non-admin on /api/v2/incremental/* (an object-valued `error`):
        # https://support.zendesk.com/hc/en-us/community/posts/4428358191514
        return json_response(403, {"error": {"title": "Forbidden", "message": "You do not have access to this page. "
                                             "Please contact the account owner of this help desk for further help."}})

    # -- writes ---------------------------------------------------------------------------

    def _update_ticket(self, number: int, body: dict[str, Any]) -> httpx.Response:
        ticket = self.tickets[number]
        change = body.get("ticket")
        if not isinstance(change, dict):
            return json_response(400, {"error": "InvalidValue", "description": "ticket is required"})
        if ticket["status"] == "closed":
            return self._closed()
        if change.get("safe_update") and change.get("updated_stamp") != ticket["updated_at"]:
            return json_response(409, {"error": "DatabaseConflict", "description": "Database collision"})
        window = self._ticket_updates.setdefault(number, SlidingWindow(*TICKET_UPDATES))
        now = self.now().timestamp()
        if window.full(now):
            # https://developer.zendesk.com/api-reference/introduction/rate-limits/ (updates to a single ticket)
            return json_response(429, {"error": "APIRateLimitExceeded", "description": "Too many updates to this ticket"},
                                 headers={"Retry-After": str(window.resets_in(now))})
        window.add(now)
        invalid = self._invalid_fields(change.get("custom_fields", []))
        if invalid:
            return invalid
        children = self._apply_change(number, change)
        self._record(number, self.now(), BOT_ID, children)
        audit = {"id": self.events[-1]["id"], "ticket_id": number, "created_at": ticket["updated_at"], "author_id": BOT_ID, "events": children}
        return json_response(200, {"ticket": ticket, "audit": audit})

    def _invalid_fields(self, custom_fields: list[dict[str, Any]]) -> httpx.Response | None:
        problems = self._field_problems(custom_fields)
        if not problems:
            return None
        return json_response(422, {"error": "RecordInvalid", "description": "Record validation errors",
                                   "details": {"base": problems}})

    def _field_problems(self, custom_fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Custom fields the account does not have. (A drop-down value without an option is not
        a problem to Zendesk: it drops it silently, see ``_kept``.)"""
        return [{"description": f"Unknown ticket field {item.get('id')}", "error": None, "ticket_field_id": item.get("id")}
                for item in custom_fields
                if item.get("id") not in (SERVICE_FIELD, SLA_STATUS_FIELD)]  # the account's custom fields

    def _kept(self, fid: int, value: Any) -> bool:
        """Whether Zendesk keeps ``value`` for field ``fid``: a drop-down (tagger) keeps only its
        options' values (or none), and drops any other without an error, in a single update and
        in update_many alike, which report success (https://github.com/blakmatrix/node-zendesk/issues/132,
        https://github.com/facetoe/zenpy/issues/420)."""
        field = self.ticket_fields.get(fid) or {}
        if field.get("type") != "tagger" or value is None:
            return True
        return value in {option.get("value") for option in field.get("custom_field_options") or []}

    def _apply_change(self, number: int, change: dict[str, Any]) -> list[dict[str, Any]]:
        ticket = self.tickets[number]
        children: list[dict[str, Any]] = []
        comment = change.get("comment")
        if isinstance(comment, dict) and (comment.get("body") or comment.get("html_body")):
            public = comment.get("public", True)  # Zendesk's default is a public reply
            children.append(self._comment(number, BOT_ID, comment.get("body") or comment["html_body"], bool(public), self.now()))
        for item in change.get("custom_fields", []):
            if not self._kept(item["id"], item.get("value")):
                continue  # dropped silently: the answer is a success all the same
            for current in ticket["custom_fields"]:
                if current["id"] == item["id"] and current["value"] != item.get("value"):
                    current["value"] = item.get("value")
                    children.append({"event_type": "Change", "field_name": str(item["id"]), "value": item.get("value")})
        tags = list(ticket["tags"])
        if "tags" in change:
            tags = list(dict.fromkeys(change["tags"]))
        tags += [t for t in change.get("additional_tags", []) if t not in tags]
        tags = [t for t in tags if t not in set(change.get("remove_tags", []))]
        if tags != ticket["tags"]:
            ticket["tags"] = tags
            children.append({"event_type": "Change", "tags": tags})
        for name in ("status", "priority"):
            if name in change and change[name] != ticket[name]:
                children.append({"event_type": "Change", name: change[name], "previous_value": ticket[name]})
                ticket[name] = change[name]
        return children

    def _update_many(self, query: dict[str, list[str]], body: dict[str, Any]) -> httpx.Response:
        ids = [int(i) for i in ",".join(query.get("ids", [])).split(",") if i.strip()]
        change = body.get("ticket")
        if not ids or not isinstance(change, dict) or len(ids) > 100:
            return json_response(400, {"error": "InvalidValue", "description": "ids (at most 100) and ticket are required"})
        if sum(1 for queued in self.jobs.values() if queued.status in ("queued", "working")) >= QUEUED_JOBS:
            return json_response(429, {"error": "TooManyJobs", "description": f"Number of queued jobs ({QUEUED_JOBS}) exceeded"},
                                 headers={"Retry-After": "10"})
        job = _Job(id=f"{len(self.jobs) + 1:032x}", ticket_ids=ids, change=change)
        self.jobs[job.id] = job
        return json_response(200, {"job_status": self._job_view(job)})

    def _job_status(self, job_id: str) -> httpx.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return self.not_found()
        return json_response(200, {"job_status": self._advance(job)})

    def _advance(self, job: _Job) -> dict[str, Any]:
        """A job moves queued -> working -> completed, one step per look at it."""
        if job.status == "queued":
            job.status = "working"
        elif job.status == "working" and self.kill_jobs > 0:
            self.kill_jobs -= 1
            job.status = "killed"  # no results: nothing says which tickets were updated
        elif job.status == "working":
            invalid = "; ".join(problem["description"] for problem in self._field_problems(job.change.get("custom_fields", [])))
            for index, number in enumerate(job.ticket_ids):
                ticket = self.tickets.get(number)
                if ticket is None or ticket["status"] == "deleted":
                    job.results.append({"index": index, "id": number, "action": "update", "success": False,
                                        "error": "TicketNotFound", "details": f"Ticket {number} not found"})
                    continue
                if ticket["status"] == "closed":
                    job.results.append({"index": index, "id": number, "action": "update", "success": False,
                                        "error": "TicketUpdateFailed", "details": "Status: closed prevents ticket update"})
                    continue
                if invalid:
                    job.results.append({"index": index, "id": number, "action": "update", "success": False,
                                        "error": "RecordInvalid", "details": invalid})
                    continue
                children = self._apply_change(number, job.change)
                if children:
                    self._record(number, self.now(), BOT_ID, children)
                job.results.append({"index": index, "id": number, "action": "update", "success": True, "status": "Updated"})
            job.status = "completed"
        return self._job_view(job)

    def _job_view(self, job: _Job) -> dict[str, Any]:
        done = job.status in ("completed", "failed", "killed")
        return {
            "id": job.id,
            "url": self.link(f"/api/v2/job_statuses/{job.id}.json"),
            "job_type": "Bulk Update",
            "status": job.status,
            "total": len(job.ticket_ids),
            "progress": len(job.ticket_ids) if done else 0,
            "message": (f"Completed at {self.now():%Y-%m-%d %H:%M:%S} +0000" if job.status == "completed" else
                        f"Job {job.status}" if done else None),
            "results": job.results if done else None,
        }

    # -- limits, faults, errors -----------------------------------------------------------

    def limit(self, request: httpx.Request, path: str) -> httpx.Response | None:
        now = self.now().timestamp()
        is_export = path.startswith("/api/v2/incremental/")
        exports_spent = is_export and self._exports.full(now)
        if self._account.full(now) or exports_spent:
            wait = (self._exports if is_export else self._account).resets_in(now)
            kind = "incremental export " if exports_spent else ""
            return json_response(
                429, {"error": "APIRateLimitExceeded", "description": f"Number of allowed {kind}API requests per minute exceeded"},
                headers={"Retry-After": str(wait), **self._rate_headers(is_export)},
            )
        self._account.add(now)
        if is_export:
            self._exports.add(now)
        return None

    def decorate(self, response: httpx.Response, path: str) -> None:
        response.headers.update(self._rate_headers(path.startswith("/api/v2/incremental/")))

    def _rate_headers(self, is_export: bool) -> dict[str, str]:
        now = self.now().timestamp()
        headers = {"X-Rate-Limit": str(self.account_limit),
                   "X-Rate-Limit-Remaining": str(max(0, self.account_limit - self._account.used(now)))}
        if is_export:
            used = self._exports.used(now)
            resets = self._exports.resets_in(now) if used else 60
            headers["Zendesk-RateLimit-incremental-exports"] = (
                f"total={self.export_limit}; remaining={max(0, self.export_limit - used)}; resets={resets}")
        return headers

    def error(self, status: int, headers: dict[str, str]) -> httpx.Response:
        if status == 429:
            return json_response(429, {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"},
                                 headers)
        return json_response(status, {"error": "InternalError", "description": f"{status}"}, headers)

    def endless_page(self, request: httpx.Request, path: str, query: dict[str, list[str]]) -> httpx.Response | None:
        """An export page that says more follows, always with a new cursor (or a later start time)."""
        self._endless += 1
        if path == "/api/v2/incremental/tickets/cursor":
            cursor = base64.b64encode(f"endless-{self._endless}".encode()).decode()
            return json_response(200, {"tickets": [], "after_cursor": cursor, "before_cursor": None, "after_url": None,
                                       "before_url": None, "end_of_stream": False})
        if path == "/api/v2/incremental/ticket_events":
            end_time = int(query.get("start_time", ["0"])[0]) + 1
            return json_response(200, {"ticket_events": [], "count": 0, "end_time": end_time, "next_page": None,
                                       "end_of_stream": False})
        if path == "/api/v2/users":
            return json_response(200, {"users": [], "meta": {"has_more": True, "after_cursor": f"endless-{self._endless}"},
                                       "links": {"next": None, "prev": None}})
        return None

    def _closed(self) -> httpx.Response:
        return json_response(422, {"error": "RecordInvalid", "description": "Record validation errors",
                                   "details": {"status": [{"description": "Status: closed prevents ticket update"}]}})

    def not_found(self) -> httpx.Response:
        return json_response(404, {"error": "RecordNotFound", "description": "Not found"})
