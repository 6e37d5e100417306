from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bridge.cli import cli
from bridge.edges.credentials import forget_secrets
from bridge.framework import registry
from bridge.framework.contract import Connector, CredentialCheck
from bridge.framework.streams import read_stream
from bridge.model import Page
from bridge.pipeline.pull import history_horizon

ROOT = Path(__file__).resolve().parent.parent
ZD_URL = "https://acme.zendesk.com"

SOURCE = f"""
[sources.zd]
system = "zendesk"
url = "{ZD_URL}"
auth = {{ email = "bot@acme.example", token_env = "ZD_TOKEN" }}
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's SLA_BRIDGE_* variables, cwd config or earlier secrets."""
    for key in list(os.environ):
        if key.upper().startswith("SLA_BRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "sla-bridge.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run() -> Callable[..., Result]:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


class MeConnector(Connector):
    """A connector double whose credential check is one real request through the HTTP layer."""

    system = "zendesk"

    def check_credentials(self) -> CredentialCheck:
        data = self.http.get_json("/api/v2/users/me.json")
        return CredentialCheck(account=data["user"]["email"])

    def list_fields(self):  # pragma: no cover - not exercised by these tests
        raise NotImplementedError

    def streams(self):  # pragma: no cover
        raise NotImplementedError


@pytest.fixture
def me_connector(monkeypatch: pytest.MonkeyPatch) -> type[Connector]:
    monkeypatch.setitem(registry._registry, "zendesk", MeConnector)
    return MeConnector


def pages(connector: Connector, cursors: dict[str, str | None] | None = None, *, now, horizon=None) -> Iterator[Page]:
    """Every stream of ``connector``, read by the core's loop, without a store."""
    if horizon is None:
        horizon = history_horizon(connector.config.start, default=connector.history_default,
                                  newest=connector.newest_start, now=now)
    for stream in connector.streams():
        yield from read_stream(stream, connector.http, cursor=(cursors or {}).get(stream.name), horizon=horizon, now=now)


class Clock:
    """A clock a test moves by hand (``clock.now += timedelta(minutes=5)``), for a sandbox and the client."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pull_source(config_path: Path, store: Any, source: str, now: datetime) -> None:
    """Pull ``source`` of the config at ``config_path`` into ``store`` through the core's loop, from its saved cursors."""
    from bridge.config import load_config
    from bridge.pipeline.connect import open_connector

    connector = open_connector(load_config(config_path), source)
    try:
        for page in pages(connector, store.cursors(source), now=now):
            store.save_page(source, page)
    finally:
        connector.http.client.close()


def run_cli(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, with ``env`` added to this one's environment."""
    return subprocess.run([sys.executable, "-m", "bridge.cli", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


# One contract for every helpdesk: the end-to-end tests judge tickets from several sources by it.
ONE_POLICY = """
[store]
path = "store.db"

[[policies]]
name = "one-contract"
contract = "Support terms for every customer, whatever the helpdesk"
targets.first_response = { p1 = "30m", p2 = "1h", p3 = "2h", p4 = "4h", p5 = "8h" }
targets.resolution = { p1 = "4h", p2 = "8h", p3 = "16h", p4 = "24h", p5 = "48h" }
credits = { currency = "EUR", monthly_fee = 1000, per_breach = [{ over = "0%", percent = 1 }] }
"""
