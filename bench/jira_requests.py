"""Requests the Jira connector makes per 1,000 issues: a first pull, a quiet re-run, a re-run after changes.

    pip install -e . && python bench/jira_requests.py --issues 1000 10000

The Jira sandbox serves on loopback with its limits lifted; the connector pulls into a fresh
store through the core's loop. Printed per route, against the theoretical minimum (the search
pages, ceil(issues / 100), since a page holds 100, plus one bulk changelog per 1,000 issues whose
history the search cuts, plus the look-ups every run makes).
"""

from __future__ import annotations

import sys

if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    sys.path.pop(0)  # bench/calendar.py would shadow the standard library's calendar module

import argparse
import math
import os
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridge.config import load_config
from bridge.edges.store import Store
from bridge.framework.streams import read_stream
from bridge.pipeline.connect import open_connector
from bridge.pipeline.demo import source_table
from connectors.jira.sandbox import JiraSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = ANCHOR

    def __call__(self) -> datetime:
        return self.now


def pull(config_path: Path, store: Store, now: datetime) -> None:
    connector = open_connector(load_config(config_path), "jira")
    horizon = now - timedelta(days=100)
    for stream in connector.streams():
        for page in read_stream(stream, connector.http, cursor=store.cursors("jira").get(stream.name), horizon=horizon, now=now):
            store.save_page("jira", page)
    connector.http.client.close()


def routes(requests: list[tuple[str, str, dict[str, list[str]]]]) -> Counter[str]:
    named = Counter[str]()
    for method, path, _ in requests:
        if path.endswith("/comment"):
            path = "/rest/api/3/issue/{id}/comment"
        named[f"{method} {path}"] += 1
    return named


def measure(issues: int) -> None:
    clock = Clock()
    sandbox = JiraSandbox(issues, seed=5, anchor=ANCHOR, clock=clock, burst_per_second=None, issue_writes=None)
    cut = sum(1 for issue in sandbox.issues.values() if len(issue.histories) > sandbox.inline_changelog)
    os.environ["BENCH_JIRA_TOKEN"] = sandbox.token
    with tempfile.TemporaryDirectory() as folder, sandbox.serve() as url:
        config = Path(folder) / "sla-bridge.toml"
        config.write_text('[store]\npath = "store.db"\n' + source_table("jira", sandbox.source_config(url, "BENCH_JIRA_TOKEN")))
        with Store.open(Path(folder) / "store.db") as store:
            began = time.perf_counter()
            pull(config, store, clock.now)
            seconds = time.perf_counter() - began
            first = routes(sandbox.requests)
            held = store.count("tickets")
            clock.now += timedelta(minutes=15)
            seen = len(sandbox.requests)
            pull(config, store, clock.now)
            quiet = routes(sandbox.requests[seen:])
            changed = [n for n in sorted(sandbox.issues)][:: max(1, len(sandbox.issues) // 10)]
            for number in changed:
                sandbox.customer_replies(number)
            clock.now += timedelta(minutes=2)
            seen = len(sandbox.requests)
            pull(config, store, clock.now)
            after = routes(sandbox.requests[seen:])
    total = sum(first.values())
    print(f"\n{held:,} issues ({cut:,} with a history longer than the search embeds): first pull {total} requests in "
          f"{seconds:.1f}s ({total * 1000 / held:.1f} per 1,000 issues; the minimum: {math.ceil(held / 100)} search pages "
          f"+ {math.ceil(cut / 1000)} bulk changelog + the run's look-ups)")
    for route, count in sorted(first.items()):
        print(f"  {count:6}  {route}")
    print(f"quiet re-run: {sum(quiet.values())} requests: " + ", ".join(f"{c} {r}" for r, c in sorted(quiet.items())))
    print(f"after {len(changed)} issues changed: {sum(after.values())} requests: " + ", ".join(f"{c} {r}" for r, c in sorted(after.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, nargs="+", default=[1000])
    for issues in parser.parse_args().issues:
        measure(issues)


if __name__ == "__main__":
    main()
