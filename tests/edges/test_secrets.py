"""A secret from the environment never reaches a log line, the store, an error or --json output."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from bridge.edges.credentials import MASK, Secret
from bridge.edges.store import Store
from tests.conftest import SOURCE, ZD_URL, MeConnector

TOKEN = "zd-secret-4f8a9c21e7"
BASIC = base64.b64encode(f"bot@acme.example:{TOKEN}".encode()).decode()


def store_bytes(tmp_path) -> bytes:
    return b"".join(path.read_bytes() for path in tmp_path.glob("store.db*"))


@pytest.mark.parametrize("log_format", ["json", "text"])
@respx.mock
def test_secret_never_leaves_even_when_the_vendor_echoes_it(write_config, run, me_connector, tmp_path, log_format):
    def echo_credentials(request: httpx.Request) -> httpx.Response:
        # A hostile or buggy endpoint that repeats what it was sent.
        return httpx.Response(401, json={"error": f"bad token {TOKEN}", "description": request.headers["Authorization"]})

    respx.get(f"{ZD_URL}/api/v2/users/me.json").mock(side_effect=echo_credentials)
    respx.get("https://beta.zendesk.com/api/v2/users/me.json").mock(
        return_value=httpx.Response(200, json={"user": {"email": "bot@acme.example"}})
    )
    path = write_config(
        '[store]\npath = "store.db"\n' + SOURCE + SOURCE.replace("[sources.zd]", "[sources.beta]").replace("acme.", "beta.")
    )
    result = run(
        "--config", str(path), "-vv", "--log-format", log_format, "check", "--online", "--json",
        env={"ZD_TOKEN": TOKEN},
    )
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["online"]["zd"]["ok"] is False
    assert f"bad token {MASK}" in document["online"]["zd"]["error"]  # the echo was there, and masked
    assert "GET https://beta.zendesk.com/api/v2/users/me.json -> 200" in result.stderr  # -vv logs every request
    for text in (result.stdout, result.stderr):
        assert TOKEN not in text and BASIC not in text
    on_disk = store_bytes(tmp_path)
    assert b"bad token" in on_disk  # the run record is there ...
    assert TOKEN.encode() not in on_disk and BASIC.encode() not in on_disk  # ... without the secret


def test_secret_is_masked_in_a_traceback(write_config, run, monkeypatch, tmp_path):
    class Exploding(MeConnector):
        def check_credentials(self):
            raise RuntimeError(f"bug while holding {TOKEN}")

    from bridge.framework import registry

    monkeypatch.setitem(registry._registry, "zendesk", Exploding)
    path = write_config(SOURCE)
    result = run("--config", str(path), "-v", "check", "--online", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and f"RuntimeError: bug while holding {MASK}" in result.stderr
    assert TOKEN not in result.stderr and TOKEN not in result.stdout
    with Store.open(tmp_path / "sla-bridge.db") as store:
        [recorded] = store.runs()
    assert (recorded["status"], recorded["exit_code"]) == ("failed", 1)
    assert recorded["error"] == f"RuntimeError: bug while holding {MASK}"


def test_json_summary_names_where_the_secret_is_not_what_it_is(write_config, run):
    path = write_config(SOURCE)
    result = run("--config", str(path), "check", "--json", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 0
    [source] = json.loads(result.stdout)["sources"]
    assert source["auth"] == {"kind": "token", "account": "bot@acme.example", "secret_from": "env ZD_TOKEN"}
    assert TOKEN not in result.stdout


def test_a_secret_does_not_print_itself():
    secret = Secret("hunter2-but-longer", "environment variable X")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2-but-longer"


# -- found in review ---------------------------------------------------------------------------


def test_secret_with_json_special_characters_is_masked_in_json_output():
    import logging

    from bridge.edges.credentials import redact
    from bridge.edges.logs import JsonFormatter

    odd = 'pa"ss\\wörd-123'
    Secret(odd, "environment variable X")
    record = logging.LogRecord("sla_bridge", logging.WARNING, __file__, 1, "token was %s", (odd,), None)
    record.detail = {"header": odd}
    line = JsonFormatter().format(record)
    assert "ss\\\\w" not in line and "w\\u00f6rd" not in line and odd not in line
    assert json.loads(line)["message"] == f"token was {MASK}"
    assert redact(json.dumps({"x": odd}, ensure_ascii=False)) == json.dumps({"x": MASK})


@respx.mock
def test_a_secret_across_the_excerpt_cut_is_masked_whole():
    from bridge.config import HttpConfig
    from bridge.edges.http import RetryPolicy, SourceClient, build_client
    from bridge.errors import AuthenticationFailed

    Secret(TOKEN, "environment variable ZD_TOKEN")
    body = "x" * 290 + f" {TOKEN} and more"
    respx.get(f"{ZD_URL}/api/v2/users/me.json").mock(return_value=httpx.Response(401, text=body))
    client = SourceClient("zd", build_client(ZD_URL, http=HttpConfig()), RetryPolicy(sleep=lambda s: None))
    with pytest.raises(AuthenticationFailed) as caught:
        client.get_json("/api/v2/users/me.json")
    assert TOKEN[:5] not in str(caught.value) and MASK in str(caught.value)


def test_the_bare_base64_of_basic_credentials_is_masked():
    from bridge.edges.credentials import redact
    from bridge.framework.contract import basic

    basic("bot@acme.example", Secret(TOKEN, "environment variable ZD_TOKEN"))
    assert redact(f"server said: {BASIC}") == f"server said: {MASK}"
