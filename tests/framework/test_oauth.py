"""OAuth client credentials (ServiceNow's /oauth_token.do): fetched once, refreshed before expiry and after a 401."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import respx

from bridge.edges.credentials import Secret, redact
from bridge.errors import AuthenticationFailed
from bridge.framework import ClientCredentials

BASE = "https://acme.service-now.com"
TOKEN = f"{BASE}/oauth_token.do"
RECORDS = f"{BASE}/api/now/table/incident"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tokens(*values: str, expires_in: int = 1799) -> list[httpx.Response]:
    return [httpx.Response(200, json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in, "scope": "useraccount"})
            for value in values]


def client(clock: Clock) -> tuple[httpx.Client, ClientCredentials]:
    auth = ClientCredentials("/oauth_token.do", "sla-bridge-app", Secret("client-secret-xyz", "test"),
                             key="sources.sn.auth", clock=clock)
    return httpx.Client(base_url=BASE, auth=auth), auth


@respx.mock
def test_a_token_is_fetched_once_with_a_form_body_and_reused_until_near_expiry():
    clock = Clock()
    token = respx.post(TOKEN).mock(side_effect=tokens("tok-one-123456", "tok-two-654321"))
    records = respx.get(RECORDS).mock(return_value=httpx.Response(200, json={"result": []}))
    http, auth = client(clock)
    http.get("/api/now/table/incident")
    clock.now += 1700  # 99 s before expiry: still good
    http.get("/api/now/table/incident")
    clock.now += 40  # 59 s before expiry: refreshed first
    http.get("/api/now/table/incident")
    assert token.call_count == 2 and auth.fetched == 2
    form = parse_qs(token.calls[0].request.content.decode())
    assert token.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form == {"grant_type": ["client_credentials"], "client_id": ["sla-bridge-app"], "client_secret": ["client-secret-xyz"]}
    assert [c.request.headers["Authorization"] for c in records.calls] == [
        "Bearer tok-one-123456", "Bearer tok-one-123456", "Bearer tok-two-654321"]


@respx.mock
def test_a_401_gets_a_new_token_and_one_retry():
    clock = Clock()
    respx.post(TOKEN).mock(side_effect=tokens("tok-old-111111", "tok-new-222222"))
    records = respx.get(RECORDS).mock(side_effect=[httpx.Response(401, json={"error": {"message": "User Not Authenticated"}}),
                                                   httpx.Response(200, json={"result": []})])
    http, _ = client(clock)
    assert http.get("/api/now/table/incident").status_code == 200
    assert [c.request.headers["Authorization"] for c in records.calls] == ["Bearer tok-old-111111", "Bearer tok-new-222222"]


@respx.mock
def test_refused_credentials_name_the_key_and_never_the_secret():
    respx.post(TOKEN).mock(return_value=httpx.Response(401, json={"error": "access_denied", "echo": "client-secret-xyz"}))
    http, _ = client(Clock())
    with pytest.raises(AuthenticationFailed) as raised:
        http.get("/api/now/table/incident")
    message = str(raised.value)
    assert "sources.sn.auth" in message and "401" in message and "client-secret-xyz" not in message


@respx.mock
def test_the_token_itself_is_masked_wherever_it_would_print():
    respx.post(TOKEN).mock(side_effect=tokens("tok-secret-abcdef123"))
    respx.get(RECORDS).mock(return_value=httpx.Response(200, json={"result": []}))
    http, _ = client(Clock())
    http.get("/api/now/table/incident")
    assert "tok-secret-abcdef123" not in redact("Authorization: Bearer tok-secret-abcdef123")


@respx.mock
def test_a_busy_token_endpoint_is_retriable_not_a_credentials_error():
    from bridge.errors import RetriableSourceError

    respx.post(TOKEN).mock(return_value=httpx.Response(503, headers={"Retry-After": "7"}, text="<html>busy</html>"))
    http, _ = client(Clock())
    with pytest.raises(RetriableSourceError) as raised:
        http.get("/api/now/table/incident")
    assert not isinstance(raised.value, AuthenticationFailed) and raised.value.retry_after == 7
