"""A secret from the environment never reaches a log line, the store, an error or --json output."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from bridge.edges.credentials import MASK, Secret, read_secret
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


# -- issue 9: every form a secret takes on the way out ------------------------------------------

ODD_TOKEN = "s3cr3t/+~??>'q\"\\ü"  # a slash, a plus, both quotes, a backslash and a non-ASCII letter


def _forms_of(secret: str) -> dict[str, str]:
    from urllib.parse import quote, quote_plus

    encoded = quote(secret, safe="")
    head, *rest = encoded.split("%")
    return {
        "quote": quote(secret),
        "quote-safe-nothing": encoded,
        "quote-plus": quote_plus(secret),
        "lower-hex": head + "".join("%" + part[:2].lower() + part[2:] for part in rest),
        "repr": repr(secret)[1:-1],
        "repr-bytes": repr(secret.encode())[2:-1],
    }


_URL_FORMS = ["quote", "quote-safe-nothing", "quote-plus", "lower-hex"]


@pytest.mark.parametrize(("which", "form"), [("token", form) for form in [*_URL_FORMS, "repr", "repr-bytes"]]
                         + [("basic-blob", form) for form in _URL_FORMS])  # base64 has nothing repr() escapes
def test_url_encoded_and_repr_forms_of_a_secret_are_masked(form, which):
    from bridge.edges.credentials import redact
    from bridge.framework.contract import basic

    secret = Secret(ODD_TOKEN, "environment variable ZD_TOKEN")
    basic("ops@acme.example", secret)
    raw = ODD_TOKEN if which == "token" else base64.b64encode(f"ops@acme.example:{ODD_TOKEN}".encode()).decode()
    shown = _forms_of(raw)[form]
    assert shown != raw  # the case is only worth having if the form differs from the secret itself
    assert redact(f"Location: https://evil.example/?next={shown}&x=1") == f"Location: https://evil.example/?next={MASK}&x=1"


class _EchoingSource(MeConnector):
    """A source whose pull fails with a message that carries the credentials, unmasked."""

    shown = "raw"

    def streams(self):
        from urllib.parse import quote

        blob = BASIC if self.shown == "raw" else quote(BASIC, safe="")
        from bridge.errors import BadRequest

        raise BadRequest(f"GET /api/v2/incremental/tickets was redirected (302 Found) to https://evil.example/{blob}",
                         source=self.name)


@pytest.mark.parametrize("shown", ["raw", "url-encoded"])
def test_the_final_error_line_of_sync_never_shows_the_basic_blob(write_config, run, monkeypatch, tmp_path, shown):
    from bridge.framework import registry

    monkeypatch.setattr(_EchoingSource, "shown", shown)
    monkeypatch.setitem(registry._registry, "zendesk", _EchoingSource)
    path = write_config('[store]\npath = "store.db"\n' + SOURCE)
    result = run("--config", str(path), "-v", "sync", env={"ZD_TOKEN": TOKEN})
    assert result.exit_code == 3
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error == f"Error: source 'zd': GET /api/v2/incremental/tickets was redirected (302 Found) to https://evil.example/{MASK}"
    assert "Ym90QGFjbWUuZXhhbXBsZTp6ZC1zZWNyZXQtNGY4YTljMjFlNw" not in result.stdout + result.stderr  # the blob, any padding
    assert b"Ym90QGFjbWUuZXhhbXBsZTp6ZC1zZWNyZXQtNGY4YTljMjFlNw" not in store_bytes(tmp_path)


# -- issue 9: a token_file that is not a small regular file ------------------------------------


def _file_source(path) -> str:
    return SOURCE.replace('token_env = "ZD_TOKEN"', f'token_file = "{path}"')


def _run_cli_bounded(config, *args, memory_mb: int = 1024):
    """The real CLI in a subprocess with a time and a memory bound, so a regression hangs or
    swells only that process, not the test run."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))

    try:
        return subprocess.run([sys.executable, "-m", "bridge.cli", "--config", str(config), *args], capture_output=True,
                              text=True, timeout=60, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail("sla-bridge was still reading the token file after 60 s")


def test_a_token_file_that_is_a_fifo_is_refused_at_once(write_config, tmp_path):
    import os

    fifo = tmp_path / "token"
    os.mkfifo(fifo, 0o600)  # nobody ever writes to it: reading it would block for ever
    config = write_config('[store]\npath = "store.db"\n' + _file_source(fifo))
    result = _run_cli_bounded(config, "sync")
    assert result.returncode == 2, result.stderr
    assert f"sources.zd.auth.token_file: {fifo} is not a regular file (a FIFO)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "store.db").exists()  # refused before the lock and the store


def test_a_token_file_that_is_dev_zero_is_refused_without_reading_it(write_config, tmp_path):
    config = write_config('[store]\npath = "store.db"\n' + _file_source("/dev/zero"))
    result = _run_cli_bounded(config, "check", memory_mb=512)
    assert result.returncode == 2, result.stderr
    assert "sources.zd.auth.token_file: /dev/zero is not a regular file (a character device)" in result.stderr
    assert "MemoryError" not in result.stderr


def test_a_token_file_larger_than_any_secret_is_refused(write_config, run, tmp_path):
    big = tmp_path / "token"
    big.write_text("x" * (1024 * 1024))
    big.chmod(0o600)
    result = run("--config", str(write_config(_file_source(big))), "check")
    assert result.exit_code == 2
    assert f"sources.zd.auth.token_file: {big} is 1,048,576 bytes, more than a secret file may be (64 KiB)" in result.stderr


def test_a_token_file_that_is_a_directory_or_not_text_is_refused_by_key(write_config, run, tmp_path):
    folder = tmp_path / "tokens"
    folder.mkdir()
    binary = tmp_path / "token.bin"
    binary.write_bytes(b"\xff\xfe\x00secret")
    binary.chmod(0o600)
    for path, said in ((folder, "is not a regular file (a directory)"), (binary, "is not UTF-8 text")):
        result = run("--config", str(write_config(_file_source(path))), "check")
        assert result.exit_code == 2, result.output
        assert f"sources.zd.auth.token_file: {path} {said}" in result.stderr
        assert "Traceback" not in result.stderr and "UnicodeDecodeError" not in result.stderr


def test_a_symlink_to_a_private_token_file_still_works(write_config, run, tmp_path):
    real = tmp_path / "real-token"
    real.write_text(TOKEN + "\n")
    real.chmod(0o600)
    (tmp_path / "token").symlink_to(real)
    result = run("--config", str(write_config(_file_source(tmp_path / "token"))), "check")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("value", ["abc\ndef", "abc\rdef", "tok\u2603en"])
def test_a_secret_a_request_header_cannot_carry_is_refused_before_any_run(value, monkeypatch):
    monkeypatch.setenv("ODD_TOKEN", value)
    with pytest.raises(LookupError) as caught:
        read_secret(env="ODD_TOKEN", file=None, key="sources.zd.auth.token")
    message = str(caught.value)
    assert "sources.zd.auth.token_env" in message and "header" in message
    assert value not in message
