"""The kit's server: what every sandbox gets from it, whatever its vendor."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from connectors.kit.server import SandboxServer, json_response

FROZEN = datetime(2026, 11, 1, 12, 0, 5, tzinfo=timezone.utc)
STAMP = "Sun, 01 Nov 2026 12:00:05 GMT"  # RFC 9110 IMF-fixdate of FROZEN


class Tiny(SandboxServer):
    def authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer ok"

    def route(self, request: httpx.Request, path: str, query: dict[str, list[str]], body: Any) -> httpx.Response:
        return json_response(200, {"path": path})


def test_every_answer_is_dated_by_the_sandbox_clock_not_this_machine():
    """The push compares its instant with the helpdesk's clock (the Date header): under a frozen
    clock the sandbox must say the frozen time, on every answer, faults and refusals included."""
    box = Tiny(clock=lambda: FROZEN)
    box.inject("503", path="/fault")
    with httpx.Client(base_url="https://sandbox.example.com", transport=box.transport()) as client:
        answers = [client.get("/ok", headers={"Authorization": "Bearer ok"}),
                   client.get("/ok"),  # 401
                   client.get("/fault", headers={"Authorization": "Bearer ok"})]
    assert [a.status_code for a in answers] == [200, 401, 503]
    assert [a.headers.get_list("Date") for a in answers] == [[STAMP]] * 3


def test_the_date_moves_with_the_sandbox_clock_and_is_sent_once_over_a_port():
    now = [FROZEN]
    box = Tiny(clock=lambda: now[0])
    with box.serve() as url, httpx.Client(base_url=url, headers={"Authorization": "Bearer ok"}) as client:
        first = client.get("/ok")
        now[0] += timedelta(hours=1)
        later = client.get("/ok")
    assert first.headers.get_list("Date") == [STAMP]  # one Date, not the server library's own as well
    assert later.headers.get_list("Date") == ["Sun, 01 Nov 2026 13:00:05 GMT"]


def test_a_429_can_come_as_an_html_page_with_its_retry_after():
    """Some gateways answer a rate limit with an HTML error page: a client must not need JSON to back off."""
    box = Tiny(clock=lambda: FROZEN)
    box.inject("429_html", path="/ok", retry_after=0)
    with httpx.Client(base_url="https://sandbox.example.com", transport=box.transport(), headers={"Authorization": "Bearer ok"}) as client:
        limited, after = client.get("/ok"), client.get("/ok")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "0")
    assert limited.headers["Content-Type"].startswith("text/html") and "<html>" in limited.text
    assert after.status_code == 200


class Described(Tiny):
    def describe(self, request: httpx.Request, query: dict[str, list[str]]) -> dict[str, list[str]]:
        return {**query, "body": [request.content.decode()]} if request.method == "POST" else query


def test_the_request_log_keeps_what_a_sandbox_describes_of_a_body():
    box, plain = Described(clock=lambda: FROZEN), Tiny(clock=lambda: FROZEN)
    for sandbox in (box, plain):
        with httpx.Client(base_url="https://sandbox.example.com", transport=sandbox.transport(), headers={"Authorization": "Bearer ok"}) as client:
            client.post("/search?x=1", content=b'{"page": 2}')
    assert box.requests == [("POST", "/search", {"x": ["1"], "body": ['{"page": 2}']})]
    assert plain.requests == [("POST", "/search", {"x": ["1"]})]  # by default, the query alone
