"""The made-up "Helpful" helpdesk: its connector (tests/framework/helpful.py, the framework alone)
against a fake of its API routed by respx, through the whole conformance suite that applies."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from bridge.framework import registry
from bridge.framework.sandbox import WritebackSummary
from connectors.kit.conformance import ANCHOR, ConformanceSuite, Harness
from connectors.kit.server import SandboxServer, json_response
from connectors.kit.story import CUSTOMERS, GROUPS, tell
from tests.framework.helpful import HelpfulConnector

STATES = {"open": "open", "waiting_customer": "waiting", "resolved": "done"}
URGENCY = {"p1": "critical", "p2": "high", "p3": "normal", "p4": "low"}
NOTES_PER_PAGE = 10


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class HelpfulFake(SandboxServer):
    """Helpful's API as respx routes over the shared story; faults and the request log from the kit."""

    base_url = "https://helpful.example"
    token = "helpful-token"

    def __init__(self, tickets: int, *, anchor: datetime) -> None:
        super().__init__(clock=lambda: anchor)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.locked: set[int] = set()  # tickets that refuse new notes (422)
        for story in tell(tickets, seed=5, latest=anchor - timedelta(minutes=5)):
            history, state, changed, team = [], "open", story.created, GROUPS[story.group]
            for index, step in enumerate(story.steps):
                if step.group is not None:
                    history.append({"id": f"{story.number}-g{index}", "kind": "team", "at": _iso(step.at), "from": team,
                                    "to": GROUPS[step.group]})
                    team = GROUPS[step.group]
                if step.public:
                    history.append({"id": f"{story.number}-c{index}", "kind": "reply", "at": _iso(step.at),
                                    "by": "customer" if step.actor == "requester" else "agent"})
                target = "deleted" if step.delete else STATES.get(step.status or "")
                if target and target != state:
                    history.append({"id": f"{story.number}-s{index}", "kind": "state", "at": _iso(step.at), "from": state, "to": target})
                    state = target
                changed = step.at
            self.tickets[story.number] = {
                "id": story.number, "subject": f"Request {story.number}", "state": state, "urgency": URGENCY[story.priority],
                "account": CUSTOMERS[story.customer], "labels": [story.tag], "sla_status": None, "team": team,
                "created": _iso(story.created), "changed": _iso(changed), "history": history}
            self.notes[story.number] = []
        self.router = respx.MockRouter(assert_all_called=False)
        self.router.get(path="/api/me").mock(return_value=json_response(200, {"name": "SLA bot"}))
        self.router.get(path="/api/tickets").mock(side_effect=self._list)
        self.router.patch(path__regex=r"^/api/tickets/(?P<number>\d+)$").mock(side_effect=self._patch)
        self.router.route(path__regex=r"^/api/tickets/(?P<number>\d+)/notes$").mock(side_effect=self._notes)

    def authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def route(self, request: httpx.Request, path: str, query: dict[str, list[str]], body: Any) -> httpx.Response:
        return self.router.handler(request)

    def _list(self, request: httpx.Request) -> httpx.Response:
        since_ms = int(request.url.params.get("changed_since", "0"))
        since = _iso(datetime.fromtimestamp(since_ms // 60_000 * 60, ANCHOR.tzinfo))  # whole minutes, like a coarse filter
        rows = sorted((t for t in self.tickets.values() if t["changed"] >= since), key=lambda t: (t["changed"], t["id"]))
        offset, limit = int(request.url.params.get("page_token", "o0")[1:]), int(request.url.params.get("limit", "25"))
        more = offset + limit < len(rows)
        return json_response(200, {"tickets": rows[offset : offset + limit], **({"next_page_token": f"o{offset + limit}"} if more else {})})

    def _patch(self, request: httpx.Request, number: str) -> httpx.Response:
        ticket = self.tickets.get(int(number))
        if ticket is None or ticket["state"] in ("closed", "deleted"):
            return json_response(404, {"error": "no such ticket"})
        change = json.loads(request.content)
        ticket["sla_status"] = change.get("sla_status", ticket["sla_status"])
        ticket["labels"] = [t for t in ticket["labels"] if t not in change.get("remove_labels", [])]
        ticket["labels"] += [t for t in change.get("add_labels", []) if t not in ticket["labels"]]
        ticket["changed"] = _iso(self.now())
        return json_response(200, {"ticket": ticket})

    def _notes(self, request: httpx.Request, number: str) -> httpx.Response:
        notes = self.notes[int(number)]
        if request.method == "POST" and int(number) in self.locked:
            return json_response(422, {"error": "notes are locked on this ticket"})
        if request.method == "POST":
            notes.append({"body": json.loads(request.content)["body"], "internal": True})
            self.tickets[int(number)]["changed"] = _iso(self.now())
            return json_response(201, notes[-1])
        page = int(request.url.params.get("page", "1"))
        more = page * NOTES_PER_PAGE < len(notes)
        return json_response(200, {"notes": notes[(page - 1) * NOTES_PER_PAGE : page * NOTES_PER_PAGE],
                                   "next": self.link(request.url.path, {"page": page + 1}) if more else None})

    def endless_page(self, request: httpx.Request, path: str, query: dict[str, list[str]]) -> httpx.Response | None:
        return json_response(200, {"tickets": [], "next_page_token": f"o{len(self.requests)}"}) if path == "/api/tickets" else None

    # -- what the conformance suite asks of a fake ----------------------------------------

    def noted(self, number: int, marker: str) -> None:
        """An internal note with ``marker`` put on ticket ``number`` by someone else (another store)."""
        self.notes[number].append({"body": f"SLA breach.\nRef: {marker}", "internal": True})
        self.tickets[number]["changed"] = _iso(self.now())

    def source_config(self, url: str, token_env: str) -> dict[str, Any]:
        return {"system": "helpful", "url": url, "start": "2026-07-01", "auth": {"oauth_token_env": token_env},
                "writeback": {"enabled": True, "status_field": "sla_status"}}

    def writeback_summary(self) -> WritebackSummary:
        tagged = sum(1 for t in self.tickets.values() if any(label.startswith("sla_") for label in t["labels"]))
        return WritebackSummary(tagged, [n["body"] for notes in self.notes.values() for n in notes if "[sla-bridge:" in n["body"]])

    def malform(self, number: int) -> None:
        self.tickets[number]["created"] = 1790000000  # a number where a time should be

    def unknown_value(self, number: int) -> str:
        self.tickets[number]["state"] = "escalated"
        return "escalated"

    def busy_ticket(self) -> int:
        number = next(n for n, t in sorted(self.tickets.items()) if t["state"] not in ("closed", "deleted"))
        self.notes[number] += [{"body": f"note {i}", "internal": True} for i in range(NOTES_PER_PAGE * 3)]
        return number


@pytest.fixture(autouse=True)
def _helpful_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._registry, "helpful", HelpfulConnector)


class TestHelpfulConformance(ConformanceSuite):
    @pytest.fixture
    def harness(self) -> Harness:
        return Harness("helpful", make=lambda tickets: HelpfulFake(tickets, anchor=ANCHOR), first_stream="/api/tickets",
                       paged=60, tickets=200, serve=False)


def test_the_connector_is_well_under_a_hundred_lines():
    source = (__import__("pathlib").Path(__file__).parent / "helpful.py").read_text()
    assert len(source.splitlines()) < 90
    assert not re.search(r"^(import|from) (?!bridge\.(framework|model)|__future__|collections|datetime|typing)", source, re.M)


def test_a_refused_note_is_settled_apart_from_the_labels_that_landed(tmp_path, monkeypatch):
    """Two requests for one ticket (a PATCH, then a note POST): the journal settles each item by its own result."""
    from bridge.pipeline.run import PHASES, run_pipeline
    from connectors.kit.conformance import World, write_config

    fake = HelpfulFake(200, anchor=ANCHOR)
    monkeypatch.setenv("CONFORMANCE_HELPDESK_TOKEN", fake.token)
    world = World(fake, write_config(tmp_path, fake, "https://helpful.example"), tmp_path / "store.db")
    dry = run_pipeline(world.config(), "sync", PHASES, store_path=world.store_path, dry_run=True, now=ANCHOR,
                       transports={"src": fake.transport()}).plans["src"]
    number = int(next(plan.external_id for plan in dry if plan.notes and plan.add_tags))
    fake.locked.add(number)
    report = world.sync()
    assert report.exit_code == 0 and report.sources["src"].writes_refused == 1
    states = dict(world.db().execute("select item, state from writebacks where ticket_id = ?", [f"src:{number}"]).fetchall())
    assert states.pop("field:sla_status") == "sent" and states.pop("tags") == "sent"
    assert states and set(states.values()) == {"refused"} and all(item.startswith("note:") for item in states)
    assert fake.tickets[number]["labels"][-1].startswith("sla_") and fake.notes[number] == []
    writes = fake.writes()
    assert world.sync().total("writes_sent") == 0 and fake.writes() == writes  # the refusal is not retried
