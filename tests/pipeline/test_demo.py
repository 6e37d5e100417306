"""`sla-bridge demo` and `sla-bridge sandbox`, as a new user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path


def run_cli(*args: str, **options):
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=600, **options)


def test_demo_syncs_a_quarter_and_shows_what_it_wrote(tmp_path):
    result = run_cli("demo", str(tmp_path / "demo"), "--tickets", "400")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Seeded 400 tickets for ACME Ltd, Globex and Initech" in out
    pulled = re.search(r"sync: (\d+) tickets pulled, [\d,]+ clocks computed, [1-9][\d,]* tickets written back \([1-9][\d,]* breach notes\)", out)
    # Jira's search leaves deleted issues out (Zendesk exports them as deleted): a few of the 400 are gone
    assert pulled and 380 <= int(pulled.group(1)) <= 400, out
    assert "Worst clocks now (sla-bridge status):" in out and "breached" in out
    # one story dealt between the helpdesks, both written back to
    for source in ("zendesk-sandbox", "jira-sandbox", "servicenow-sandbox"):
        assert re.search(rf"\| Ref: \[sla-bridge:{source}:\w+:\w+:\d+\]", out), source
    assert re.search(r"  jira-sandbox: [1-9][\d,]* tickets labelled", out) and re.search(r"  zendesk-sandbox: [1-9][\d,]* tickets tagged", out)
    assert re.search(r"  servicenow-sandbox: [1-9][\d,]* tickets with their SLA status field set", out)
    config = tmp_path / "demo" / "sla-bridge.toml"
    assert config.is_file() and (tmp_path / "demo" / "sla-bridge.db").is_file()
    # the user can go on exploring with the printed commands
    status = run_cli("--config", str(config), "status", "--json")
    assert status.returncode == 0 and '"state": "breached"' in status.stdout
    clocks = json.loads(status.stdout)["clocks"]
    assert {clock["ticket_id"].split(":")[0] for clock in clocks} == {"zendesk-sandbox", "jira-sandbox", "servicenow-sandbox"}


def test_sandbox_serves_until_stopped_and_prints_a_working_config(tmp_path):
    written = tmp_path / "sandbox.toml"
    server = subprocess.Popen([sys.executable, "-m", "bridge.cli", "sandbox", "--tickets", "50", "--write", str(written)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not written.exists() or not written.read_text():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.1)
        time.sleep(0.2)
        config = tomllib.loads(written.read_text())
        sources = config["sources"]
        assert sorted(source["system"] for source in sources.values()) == ["jira", "servicenow", "zendesk"]
        assert all(source["url"].startswith("http://127.0.0.1:") for source in sources.values())
        # each sandbox's secret (an API token, ServiceNow's password), as the command tells the user to export it
        tokens: dict[str, str] = {}
        assert server.stderr is not None
        while len(tokens) < len(sources):
            line = server.stderr.readline()
            assert line, "the sandbox command stopped before naming every secret"
            if line.startswith("# export "):
                name, _, value = line.removeprefix("# export ").strip().partition("=")
                tokens[name] = value
        assert set(tokens) == {source["auth"].get("token_env") or source["auth"]["password_env"] for source in sources.values()}
        check = run_cli("--config", str(written), "check", "--online", env={**os.environ, **tokens}, cwd=tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        for name in sources:
            assert f"Source {name}: credentials OK" in check.stdout
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert Path(written).read_text().startswith("# Written by `sla-bridge demo`")
