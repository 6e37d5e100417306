"""A run's life, as the ``runs`` table and the exit code tell it (issue 9): bounded in time,
interrupted by a signal, killed without a word, or robbed of its store mid-way."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.edges.store import Store
from bridge.errors import ConfigError, StoreReplaced, Terminated
from bridge.pipeline.demo import source_table
from bridge.pipeline.report import RunReport
from bridge.pipeline.run import PHASES, run_pipeline
from connectors.zendesk.sandbox import ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
NOW = "2026-11-01T12:00:00Z"
POLICY = '[[policies]]\nname = "standard"\ntargets.first_response = { p1 = "1h", p2 = "4h", p3 = "8h", p4 = "24h" }\n'


class World:
    def __init__(self, folder: Path, tickets: int = 120) -> None:
        self.box = ZendeskSandbox.for_tests(tickets, anchor=ANCHOR)
        self.folder = folder
        self.store_path = folder / "store.db"
        self.write_config("https://sandbox.zendesk.com")

    def write_config(self, url: str) -> None:
        self.config_path = self.folder / "sla-bridge.toml"
        self.config_path.write_text('[store]\npath = "store.db"\n[http]\nmax_attempts = 2\nmax_wait = "2s"\n' + POLICY
                                    + source_table("zd", self.box.source_config(url, "ZD_TOKEN")))

    def sync(self, **options: object) -> RunReport:
        return run_pipeline(load_config(self.config_path), "sync", PHASES, store_path=self.store_path, now=ANCHOR,
                            transports={"zd": self.box.transport()}, **options)  # type: ignore[arg-type]

    def runs(self) -> list[tuple[str, int | None]]:
        with sqlite3.connect(self.store_path) as db:
            return [tuple(row) for row in db.execute("select status, exit_code from runs order by id")]  # type: ignore[misc]


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    return World(tmp_path)


def raising(error: BaseException):
    def progress(source: str, count: int) -> None:
        raise error
    return progress


# -- how a run ended --------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "code"), [
    (KeyboardInterrupt(), 130),
    (Terminated(signal.SIGTERM), 143),
    (Terminated(signal.SIGHUP), 129),
], ids=["ctrl-c", "sigterm", "sighup"])
def test_a_run_stopped_by_a_signal_records_the_code_it_exits_with(world, error, code):
    with pytest.raises(KeyboardInterrupt):
        world.sync(progress=raising(error))
    assert world.runs() == [("interrupted", code)]


def test_runs_left_running_by_a_dead_process_are_recorded_as_killed(world, caplog):
    with Store.open(world.store_path) as store:
        store.start_run("sync")  # a run whose process was SIGKILLed: nothing recorded its end
        store.start_run("sync")
    with caplog.at_level(logging.INFO, logger="sla_bridge.run"):
        assert world.sync().exit_code == 0
    assert world.runs() == [("killed", None), ("killed", None), ("ok", 0)]
    assert "2 earlier run(s) had been left 'running' by a process that died; recorded as 'killed'" in caplog.text
    assert world.sync().exit_code == 0
    assert world.runs()[:2] == [("killed", None), ("killed", None)]


# -- a store deleted or replaced during the run ----------------------------------------------


def delete_store(path: Path):
    def progress(source: str, count: int) -> None:
        for name in (path.name, path.name + "-wal", path.name + "-shm"):
            (path.parent / name).unlink(missing_ok=True)
    return progress


def test_a_store_deleted_during_the_run_fails_it(world):
    with pytest.raises(StoreReplaced, match=r"the store .*store\.db was deleted while this run was using it"):
        world.sync(progress=delete_store(world.store_path))
    assert world.box.writes() == 0  # nothing was written from a store nobody will read


def test_a_store_replaced_during_the_run_fails_it(world, tmp_path):
    def replace(source: str, count: int) -> None:
        other = tmp_path / "restored.db"
        Store.open(other).close()
        other.replace(world.store_path)
    with pytest.raises(StoreReplaced, match="replaced by another file"):
        world.sync(progress=replace)


def test_the_cli_says_the_store_was_deleted_and_exits_1(tmp_path):
    world = World(tmp_path)
    world.box.inject("slow", delay=2.0, path="/incremental/ticket_events")  # the store is deleted meanwhile
    with world.box.serve() as url:
        world.write_config(url)
        command = [sys.executable, "-m", "bridge.cli", "--config", str(world.config_path), "sync", "--now", NOW]
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "ZD_TOKEN": "sandbox-token"})
        deadline = time.monotonic() + 60
        while not world.box.count("/incremental/ticket_events"):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.02)
        delete_store(world.store_path)("zd", 0)
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "was deleted while this run was using it" in errors[0] and "run again" in errors[0]
    assert "Traceback" not in stderr and world.box.writes() == 0


# -- the run's time bound ----------------------------------------------------------------------


def test_a_source_stopped_by_the_run_bound_ends_partial_and_the_next_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    world = World(tmp_path, tickets=1200)  # two pages of tickets
    real, spent = time.monotonic, [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + spent[0])

    def the_run_takes_an_hour(source: str, count: int) -> None:
        spent[0] += 3600  # past http.max_run (50 minutes) after the first page

    first = world.sync(progress=the_run_takes_an_hour)
    assert first.exit_code == 3 and first.sources["zd"].error_class == "RunBoundReached"
    assert "http.max_run" in (first.sources["zd"].error or "")
    assert first.sources["zd"].tickets_pulled == 1000 and world.box.writes() == 0
    assert world.runs() == [("partial", 3)]

    requests = len(world.box.requests)
    second = world.sync()
    assert second.exit_code == 0 and second.sources["zd"].tickets_pulled == 200
    resumed = next(query for _, path, query in world.box.requests[requests:] if path.endswith("/incremental/tickets/cursor"))
    assert "cursor" in resumed and "start_time" not in resumed


# -- a config that names no source -------------------------------------------------------------


@pytest.mark.parametrize("phases", [PHASES, ("evaluate",)], ids=["sync", "evaluate"])
def test_a_config_without_sources_does_not_run(tmp_path, phases):
    config = tmp_path / "sla-bridge.toml"
    config.write_text('[store]\npath = "store.db"\n' + POLICY)
    with pytest.raises(ConfigError, match="no sources are configured") as raised:
        run_pipeline(load_config(config), "sync", phases, store_path=tmp_path / "store.db", now=ANCHOR)
    assert raised.value.exit_code == 2 and not (tmp_path / "store.db").exists()
