"""What the helpdesk refused is in front of the operator: the run summary and `status` say it."""

from __future__ import annotations

import json

from connectors.kit.conformance import ANCHOR
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.pipeline.test_sync import NOW, cli, write_config


def test_refused_writes_are_warned_about_after_the_run_and_listed_by_status(tmp_path):
    box = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "pull", "--now", NOW).returncode == 0
        assert cli(config, "evaluate", "--now", NOW).returncode == 0
        plans = json.loads(cli(config, "push", "--dry-run", "--now", NOW, "--json").stdout)["plans"]["zd"]
        closing = [plan["ticket_id"].split(":")[1] for plan in plans[:3]]
        for number in closing:
            box.tickets[int(number)]["status"] = "closed"  # closed by an agent meanwhile: read-only in Zendesk
        push = cli(config, "push", "--now", NOW)
        status = cli(config, "status")
        listed = json.loads(cli(config, "status", "--json").stdout)
    assert push.returncode == 0, push.stderr  # the other tickets were written
    assert "Warning: source 'zd': refused: " in push.stderr and "closed prevents ticket update" in push.stderr
    assert "Refused write-backs (" in status.stdout
    for number in closing:
        assert f"#{number}  " in status.stdout
    assert {row["key"] for row in listed["refusals"]} == {f"#{number}" for number in closing}
    assert all(row["reason"] and row["retry_at"] for row in listed["refusals"])
    assert listed["clocks"]  # the clocks are still there


def test_a_source_that_refuses_the_status_field_is_shown_by_status_after_the_run(tmp_path):
    box = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        good = config.read_text()
        field = good.split('status_field = "')[1].split('"')[0]
        config.write_text(good.replace(field, "custom_field:999"))  # no such field in the account
        run = cli(config, "sync", "--now", NOW)
        status = cli(config, "status")
        listed = json.loads(cli(config, "status", "--json").stdout)
    assert run.returncode == 3
    assert "Last run: sync at " in status.stdout and "exit 3" in status.stdout
    assert "custom_field:999" in status.stdout and "sources.zd.writeback.status_field" in status.stdout
    assert listed["last_run"]["exit_code"] == 3 and "custom_field:999" in listed["last_run"]["sources"]["zd"]["error"]


def test_commands_that_do_not_pull_create_no_store(tmp_path):
    box = ZendeskSandbox(20, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        typo = tmp_path / "typo.db"
        for args in (("evaluate",), ("push", "--dry-run"), ("push",)):
            result = cli(config, "--db", str(typo), *args, "--now", NOW)
            assert result.returncode != 0 and "no store at" in result.stderr, (args, result.stderr)
    assert not any(tmp_path.glob("typo.db*"))
