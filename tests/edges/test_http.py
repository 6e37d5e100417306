"""The HTTP layer: what is retried, how long it waits, and what stops a source. No test sleeps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
import respx

from bridge import __version__
from bridge.config import HttpConfig
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.edges.store import Store
from bridge.errors import (
    AuthenticationFailed,
    BadRequest,
    FatalSourceError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RetryLater,
)
from tests.conftest import SOURCE, ZD_URL

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
ME = f"{ZD_URL}/api/v2/users/me.json"
OK = httpx.Response(200, json={"user": {"email": "bot@acme.example"}})


class Sleeps(list[float]):
    """Records each requested sleep instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(sleeps: Sleeps, **policy: float) -> SourceClient:
    settings = {"max_attempts": 5, "max_wait": 120.0, **policy}
    client = build_client(ZD_URL, http=HttpConfig())
    return SourceClient("zd", client, RetryPolicy(sleep=sleeps, clock=lambda: NOW, **settings))


@respx.mock
def test_429_retry_after_in_seconds_is_waited_exactly(sleeps):
    route = respx.get(ME).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), OK])
    assert make_client(sleeps).get_json("/api/v2/users/me.json")["user"]["email"] == "bot@acme.example"
    assert sleeps == [7.0]
    assert route.call_count == 2


@respx.mock
def test_retry_after_as_an_http_date_waits_until_that_instant(sleeps):
    when = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    respx.get(ME).mock(side_effect=[httpx.Response(503, headers={"Retry-After": when}), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert sleeps == [30.0]


@respx.mock
def test_retry_after_zero_retries_at_once(sleeps):
    respx.get(ME).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert sleeps == [0.0]


@respx.mock
def test_retry_after_date_in_the_past_retries_at_once(sleeps):
    when = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    respx.get(ME).mock(side_effect=[httpx.Response(429, headers={"Retry-After": when}), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert sleeps == [0.0]


@respx.mock
def test_503_then_success_backs_off_with_jitter(sleeps):
    route = respx.get(ME).mock(side_effect=[httpx.Response(503), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert route.call_count == 2
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0  # 1s initial backoff plus up to 1s of jitter


@respx.mock
def test_backoff_grows_exponentially(sleeps):
    respx.get(ME).mock(side_effect=[httpx.Response(502), httpx.Response(504), httpx.Response(503), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert [int(s) for s in sleeps] == [1, 2, 4]


@respx.mock
def test_timeout_then_success(sleeps):
    route = respx.get(ME).mock(side_effect=[httpx.ReadTimeout("slow"), OK])
    client = make_client(sleeps)
    assert client.get_json("/api/v2/users/me.json")["user"]["email"] == "bot@acme.example"
    assert route.call_count == 2
    assert client.requests_made == 2


@respx.mock
def test_body_that_is_not_json_is_retried(sleeps):
    route = respx.get(ME).mock(side_effect=[httpx.Response(200, text='{"user": {"em'), OK])
    assert make_client(sleeps).get_json("/api/v2/users/me.json")["user"]["email"] == "bot@acme.example"
    assert route.call_count == 2


@respx.mock
def test_401_is_not_retried_and_says_what_to_fix(sleeps):
    route = respx.get(ME).mock(return_value=httpx.Response(401, json={"error": "Couldn't authenticate you"}))
    with pytest.raises(AuthenticationFailed) as caught:
        make_client(sleeps).get_json("/api/v2/users/me.json")
    assert route.call_count == 1
    assert sleeps == []
    assert str(caught.value) == (
        "source 'zd': the credentials were refused (401 Unauthorized) on GET "
        "https://acme.zendesk.com/api/v2/users/me.json: check sources.zd.auth and that the secret is current "
        "(tokens expire and can be revoked). The vendor said: Couldn't authenticate you"
    )


@pytest.mark.parametrize(
    ("status", "body", "error", "phrase"),
    [
        (403, {"error": "Forbidden", "description": "You do not have access"}, PermissionDenied, "give it the role"),
        (404, {"error": "RecordNotFound", "description": "Not found"}, NotFound, "check sources.zd.url"),
        (400, {"errorMessages": ["The value 'XYZ' does not exist for the field 'project'."]}, BadRequest,
         "The value 'XYZ' does not exist"),
        (422, {"error": "RecordInvalid", "details": {"base": [{"description": "Status: closed"}]}}, BadRequest,
         "RecordInvalid"),
        (501, "not here", BadRequest, "was refused (501 Not Implemented)"),
    ],
)
@respx.mock
def test_client_errors_are_never_retried(sleeps, status, body, error, phrase):
    payload = {"json": body} if isinstance(body, dict) else {"text": body}
    route = respx.get(ME).mock(return_value=httpx.Response(status, **payload))
    with pytest.raises(error) as caught:
        make_client(sleeps).get_json("/api/v2/users/me.json")
    assert route.call_count == 1 and sleeps == []
    assert phrase in str(caught.value)


@respx.mock
def test_redirect_is_reported_not_followed(sleeps):
    respx.get(ME).mock(return_value=httpx.Response(301, headers={"Location": "https://other.zendesk.com/"}))
    with pytest.raises(BadRequest, match=r"redirected .* to https://other.zendesk.com/: check sources.zd.url"):
        make_client(sleeps).get_json("/api/v2/users/me.json")


@respx.mock
def test_retry_after_beyond_the_bound_stops_at_once_with_when_to_retry(sleeps):
    route = respx.get(ME).mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RetryLater) as caught:
        make_client(sleeps, max_wait=120).get_json("/api/v2/users/me.json")
    assert route.call_count == 1
    assert sleeps == []  # it does not sleep through the cron slot
    assert caught.value.not_before == NOW + timedelta(hours=1)
    assert caught.value.exit_code == 3
    message = str(caught.value)
    assert message.startswith("source 'zd': GET https://acme.zendesk.com/api/v2/users/me.json answered 429")
    assert "the vendor asks to wait 3600s, more than the retry bound (http.max_wait = 120s)" in message
    assert "retry after 2026-11-24 13:00:00 UTC" in message


@respx.mock
def test_total_wait_is_bounded_across_retries(sleeps):
    route = respx.get(ME).mock(return_value=httpx.Response(503, headers={"Retry-After": "50"}))
    with pytest.raises(RetryLater, match="retry after"):
        make_client(sleeps, max_wait=120).get_json("/api/v2/users/me.json")
    assert sleeps == [50.0, 50.0]  # a third wait would pass 120s in all
    assert route.call_count == 3


@respx.mock
def test_attempts_are_bounded(sleeps):
    route = respx.get(ME).mock(return_value=httpx.Response(503))
    with pytest.raises(RetryLater) as caught:
        make_client(sleeps, max_attempts=3).get_json("/api/v2/users/me.json")
    assert route.call_count == 3 and len(sleeps) == 2
    assert "gave up after 3 attempt(s)" in str(caught.value)
    assert "the next run resumes from the saved cursor" in str(caught.value)


@respx.mock
def test_requests_carry_the_user_agent_and_accept_json(sleeps):
    route = respx.get(ME).mock(return_value=OK)
    make_client(sleeps).get_json("/api/v2/users/me.json")
    request = route.calls.last.request
    assert request.headers["User-Agent"] == f"sla-bridge/{__version__}"
    assert request.headers["Accept"] == "application/json"


def test_default_policy_follows_the_config():
    policy = RetryPolicy.from_config(HttpConfig(max_attempts=2, max_wait="10s"))
    assert (policy.max_attempts, policy.max_wait) == (2, 10.0)


# -- the same behaviour seen from the command line ------------------------------------------


@respx.mock
def test_check_online_exits_3_when_the_vendor_asks_for_a_long_wait(write_config, run, me_connector, tmp_path):
    respx.get(ME).mock(return_value=httpx.Response(429, headers={"Retry-After": "900"}))
    path = write_config('[store]\npath = "store.db"\n[http]\nmax_wait = "1m"\n' + SOURCE)
    result = run("--config", str(path), "check", "--online", env={"ZD_TOKEN": "tok-123456"})
    assert result.exit_code == 3
    assert "Source zd: FAILED: source 'zd': GET https://acme.zendesk.com/api/v2/users/me.json answered 429" in (
        result.stdout
    )
    assert "more than the retry bound (http.max_wait = 60s). Stopped this source; retry after " in result.stdout
    assert result.stderr.endswith("Error: 1 source(s) failed the credential check: zd\n")
    with Store.open(tmp_path / "store.db") as store:
        [recorded] = store.runs()
    assert (recorded["command"], recorded["status"], recorded["exit_code"]) == ("check --online", "partial", 3)
    assert recorded["sources"]["zd"]["error_class"] == "RetryLater"
    assert recorded["sources"]["zd"]["requests"] == 1


@respx.mock
def test_check_online_reports_who_we_are(write_config, run, me_connector):
    route = respx.get(ME).mock(return_value=OK)
    path = write_config(SOURCE)
    result = run("--config", str(path), "check", "--online", "--json", env={"ZD_TOKEN": "tok-123456"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["online"]["zd"] == {
        "ok": True,
        "account": "bot@acme.example",
        "detail": "",
        "requests": 1,
    }
    assert route.calls.last.request.headers["Authorization"] == "Basic Ym90QGFjbWUuZXhhbXBsZTp0b2stMTIzNDU2"


@respx.mock
def test_one_failing_source_does_not_hide_the_others(write_config, run, me_connector):
    respx.get(ME).mock(return_value=httpx.Response(401, json={"error": "Couldn't authenticate you"}))
    respx.get("https://beta.zendesk.com/api/v2/users/me.json").mock(return_value=OK)
    path = write_config(SOURCE + SOURCE.replace("[sources.zd]", "[sources.beta]").replace("acme.", "beta."))
    result = run("--config", str(path), "check", "--online", env={"ZD_TOKEN": "tok-123456"})
    assert result.exit_code == 3
    assert "Source beta: credentials OK, authenticated as bot@acme.example (1 request(s))" in result.stdout
    assert "Source zd: FAILED: source 'zd': the credentials were refused (401 Unauthorized)" in result.stdout


# -- found in review ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["inf", "1e15", "-5", "nan", "1_0", "soon"])
@respx.mock
def test_malformed_retry_after_falls_back_to_backoff(sleeps, header):
    respx.get(ME).mock(side_effect=[httpx.Response(503, headers={"Retry-After": header}), OK])
    make_client(sleeps).get_json("/api/v2/users/me.json")
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0


@respx.mock
def test_an_enormous_retry_after_stops_the_source_instead_of_crashing(sleeps):
    respx.get(ME).mock(return_value=httpx.Response(429, headers={"Retry-After": "99999999999999999999"}))
    with pytest.raises(RetryLater) as caught:
        make_client(sleeps).get_json("/api/v2/users/me.json")
    assert caught.value.not_before == NOW + timedelta(days=7)  # capped at a week


@respx.mock
def test_backoff_has_jitter(sleeps):
    for _ in range(12):
        respx.get(ME).mock(side_effect=[httpx.Response(503), OK])
        make_client(sleeps).get_json("/api/v2/users/me.json")
    assert len(set(sleeps)) > 1 and all(1.0 <= s <= 2.0 for s in sleeps)


@respx.mock
def test_total_wait_bound_message_says_what_happened(sleeps):
    respx.get(ME).mock(return_value=httpx.Response(503, headers={"Retry-After": "50"}))
    with pytest.raises(RetryLater) as caught:
        make_client(sleeps, max_wait=120).get_json("/api/v2/users/me.json")
    message = str(caught.value)
    assert "waiting 50s more would pass the retry bound (http.max_wait = 120s; 100s waited already)" in message
    assert "the vendor asks" not in message
    assert caught.value.not_before == NOW + timedelta(seconds=50)


@respx.mock
def test_last_attempt_keeps_the_time_to_retry(sleeps):
    respx.get(ME).mock(return_value=httpx.Response(429, headers={"Retry-After": "5"}))
    with pytest.raises(RetryLater) as caught:
        make_client(sleeps, max_attempts=2).get_json("/api/v2/users/me.json")
    assert caught.value.not_before == NOW + timedelta(seconds=5)
    assert "gave up after 2 attempt(s)" in str(caught.value)


@respx.mock
def test_retry_log_names_the_source_once(sleeps, caplog):
    respx.get(ME).mock(side_effect=[httpx.Response(503), OK])
    with caplog.at_level("WARNING", logger="sla_bridge.http"):
        make_client(sleeps).get_json("/api/v2/users/me.json")
    [line] = caplog.messages
    assert line.count("'zd'") == 1 and line.startswith("source 'zd': GET")


def test_tls_failure_is_fatal_and_not_retried(sleeps):
    import ssl

    calls = []

    def refuse(request):
        # as httpx raises it: a ConnectError caused by the ssl module's verification error
        calls.append(request)
        raise httpx.ConnectError("handshake failed") from ssl.SSLCertVerificationError(1, "certificate verify failed")

    # respx rewrites exception chains, so this one uses an injected transport directly
    client = build_client(ZD_URL, http=HttpConfig(), transport=httpx.MockTransport(refuse))
    source = SourceClient("zd", client, RetryPolicy(sleep=sleeps, clock=lambda: NOW))
    with pytest.raises(FatalSourceError, match=r"TLS verification failed .*set http.ca_bundle"):
        source.get_json("/api/v2/users/me.json")
    assert len(calls) == 1 and sleeps == []


@respx.mock
def test_a_post_that_may_have_been_applied_is_not_sent_twice(sleeps):
    route = respx.post(f"{ZD_URL}/api/v2/notes").mock(return_value=httpx.Response(503))
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        make_client(sleeps).request("POST", "/api/v2/notes", json={"body": "credit note"})
    assert route.call_count == 1
    timed_out = respx.put(f"{ZD_URL}/api/v2/tickets/1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(OutcomeUnknown):
        make_client(sleeps).request("PUT", "/api/v2/tickets/1", json={}, idempotent=False)
    assert timed_out.call_count == 1


@respx.mock
def test_a_post_is_retried_where_it_surely_was_not_applied(sleeps):
    route = respx.post(f"{ZD_URL}/api/v2/notes").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(201, json={})]
    )
    make_client(sleeps).request("POST", "/api/v2/notes", json={})
    assert route.call_count == 3


@respx.mock
def test_no_cookie_a_server_sets_is_sent_back(sleeps):
    """ServiceNow runs one session's requests one at a time: the client keeps no session."""
    route = respx.get(ME).mock(return_value=httpx.Response(200, json={"user": {}}, headers={
        "Set-Cookie": "JSESSIONID=abc123; Path=/; Secure; HttpOnly"}))
    client = make_client(sleeps)
    client.get_json("/api/v2/users/me.json")
    client.get_json("/api/v2/users/me.json")
    assert "cookie" not in {name.lower() for name in route.calls[1].request.headers}
