"""The command line as a user meets it: version, init, help, global options, docs."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import click
import pytest

import bridge
from bridge.cli import cli
from bridge.config import load_config
from tests.conftest import SOURCE

ROOT = Path(__file__).resolve().parent.parent


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"sla-bridge, version {bridge.__version__}\n"


def test_init_writes_a_starter_config_that_loads_and_checks(run, tmp_path):
    result = run("init")
    assert result.exit_code == 0, result.output
    written = tmp_path / "sla-bridge.toml"
    assert result.stdout.startswith(f"Wrote {Path('sla-bridge.toml')}.")
    config = load_config(written)
    assert list(config.sources) == ["helpdesk"] and config.policies[0].calendar == "office"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    checked = run("check", env={"ZENDESK_API_TOKEN": "token-abcdef"})
    assert checked.exit_code == 0, checked.output
    assert "helpdesk: zendesk at https://your-subdomain.zendesk.com" in checked.stdout


def test_init_refuses_to_overwrite_without_force(run, tmp_path):
    target = tmp_path / "mine.toml"
    target.write_text("# my edits\n")
    refused = run("init", str(target))
    assert refused.exit_code == 2
    assert f"Error: {target} already exists; pass --force to overwrite it" in refused.stderr
    assert target.read_text() == "# my edits\n"
    forced = run("init", str(target), "--force")
    assert forced.exit_code == 0
    assert tomllib.loads(target.read_text())["sources"]["helpdesk"]["system"] == "zendesk"


def test_init_honours_the_global_config_option(run, tmp_path):
    assert run("--config", str(tmp_path / "etc" / "sla.toml"), "init").exit_code == 0
    assert (tmp_path / "etc" / "sla.toml").is_file()


def test_global_options_work_after_the_command_too(write_config, run, tmp_path):
    path = write_config('[store]\npath = "a.db"\n' + SOURCE)
    before = run("--config", str(path), "--db", str(tmp_path / "b.db"), "check", env={"ZD_TOKEN": "token-abcdef"})
    after = run("check", "--config", str(path), "--db", str(tmp_path / "b.db"), env={"ZD_TOKEN": "token-abcdef"})
    assert before.stdout == after.stdout
    assert f"Store: {tmp_path / 'b.db'}" in after.stdout


EXAMPLE_SECRETS = {"ZENDESK_API_TOKEN": "token-abcdef", "JIRA_API_TOKEN": "jira-token-abcdef", "SERVICENOW_PASSWORD": "sn-password-abcdef"}


def test_check_summarises_sources_calendars_and_policies(run, tmp_path):
    result = run("--config", str(ROOT / "config.example.toml"), "check", env=EXAMPLE_SECRETS)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "zendesk-prod: zendesk at http://127.0.0.1:8801; token of sla-bot@example.com from env ZENDESK_API_TOKEN" in out
    # 4 x 8.5 h + 8 h on Friday
    assert "uk-office: Europe/London, 42 h/week, 2 holiday(s), public holidays GB-ENG, 1 override(s)" in out
    assert "1. acme-gold (calendar uk-office): first_response p1 30m, p2 2h, p3 4h, p4 8h;" in out
    assert "2. default (calendar 24x7):" in out


def _commands() -> list[tuple[str, click.Command]]:
    assert isinstance(cli, click.Group)
    return sorted(cli.commands.items())


@pytest.mark.parametrize(("name", "command"), _commands())
def test_every_command_has_one_line_help_and_an_example(name, command, run):
    result = run(name, "--help")
    assert result.exit_code == 0
    assert command.help and command.get_short_help_str(limit=200).endswith(".")
    assert re.search(rf"Examples?:\s+.*sla-bridge .*{name}", result.stdout), f"{name} --help shows no example"


@pytest.mark.parametrize(("name", "command"), _commands())
def test_every_command_is_documented_in_the_readme(name, command):
    assert f"sla-bridge {name}" in (ROOT / "README.md").read_text()


def test_readme_opens_with_the_demo_and_the_test_command_ci_runs():
    readme = (ROOT / "README.md").read_text()
    demo, tests = re.findall(r"```sh\n(.+?)\n```", readme)[:2]
    assert demo.endswith("sla-bridge demo")
    assert tests.endswith("pytest") and tests in (ROOT / ".ci" / "run").read_text()


def test_public_surface_is_sorted_and_importable():
    assert bridge.__all__ == sorted(bridge.__all__)
    for name in bridge.__all__:
        assert hasattr(bridge, name), name


def test_an_unexpected_error_is_one_line_without_v(write_config, run, monkeypatch):
    import bridge.cli

    monkeypatch.setattr(bridge.cli, "_summarise", lambda *a: 1 / 0)
    path = write_config(SOURCE)
    result = run("--config", str(path), "check", env={"ZD_TOKEN": "token-abcdef"})
    assert result.exit_code == 1
    assert result.stderr == "Error: ZeroDivisionError: division by zero (run with -v for the traceback)\n"


def test_init_is_not_upset_by_the_environment(run, tmp_path):
    # a cron environment set up for another config: the starter has no source named "prod"
    result = run("init", str(tmp_path / "new.toml"), env={"SLA_BRIDGE_SOURCES__PROD__URL": "https://x.zendesk.com"})
    assert result.exit_code == 0, result.output
