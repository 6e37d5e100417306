"""Requests the ServiceNow connector makes per 1,000 records: a first pull, a quiet re-run, a re-run after changes.

    pip install -e . && python bench/servicenow_requests.py --records 1000 10000

The ServiceNow sandbox serves on loopback with no rate-limit rule; the connector pulls into a
fresh store through the core's loop. Printed per route, against the theoretical minimum:

- record pages, ceil(records / 500): the Table API answers at most ``sysparm_limit`` rows, and
  500 keeps a page well inside the instance's 60 s transaction quota. The keyset walk also reads
  one empty page at its end, because a short page is not the end (row ACLs apply after the
  limit, so a page can come back short while more rows follow);
- sys_audit, ceil(records / 100): the history (state, hold reason, priority, comments, work
  notes) is nowhere on the record in raw mode, and 100 sys_ids in ``documentkeyIN`` keep the URL
  near 3.3 KB, under the proxies' 8 KB. A request whose rows pass 1,000 follows its ``Link``;
- 2 look-ups: sys_choice (every instance configures its own state codes and labels, so they are
  never hard-coded) and sys_user_has_role (who holds itil or sn_customerservice_agent, so that an
  agent's comment is not taken for the customer's).
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
from connectors.servicenow.sandbox import ServiceNowSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
PAGE, AUDIT_IDS, LOOK_UPS = 500, 100, 2


class Clock:
    def __init__(self) -> None:
        self.now = ANCHOR

    def __call__(self) -> datetime:
        return self.now


def pull(config_path: Path, store: Store, now: datetime) -> None:
    connector = open_connector(load_config(config_path), "sn")
    horizon = now - timedelta(days=100)
    for stream in connector.streams():
        for page in read_stream(stream, connector.http, cursor=store.cursors("sn").get(stream.name), horizon=horizon, now=now):
            store.save_page("sn", page)
    connector.http.client.close()


def routes(requests: list[tuple[str, str, dict[str, list[str]]]]) -> Counter[str]:
    named = Counter[str]()
    for method, path, query in requests:
        named[f"{method} {path}" + (" (Link page)" if "sysparm_offset" in query else "")] += 1
    return named


def line(counts: Counter[str]) -> str:
    return f"{sum(counts.values())} requests: " + ", ".join(f"{c} {r}" for r, c in sorted(counts.items()))


def measure(records: int) -> None:
    clock = Clock()
    sandbox = ServiceNowSandbox(records, seed=5, anchor=ANCHOR, clock=clock)
    os.environ["BENCH_SN_PASSWORD"] = sandbox.password
    with tempfile.TemporaryDirectory() as folder, sandbox.serve() as url:
        config = Path(folder) / "sla-bridge.toml"
        config.write_text('[store]\npath = "store.db"\n' + source_table("sn", sandbox.source_config(url, "BENCH_SN_PASSWORD")))
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
            rows = sandbox.tables[sandbox.table].rows
            changed = [n for n, s in sorted(sandbox.numbers.items()) if s in rows][:: max(1, len(rows) // 10)]
            for number in changed:
                sandbox.customer_replies(number)
            clock.now += timedelta(minutes=2)
            seen = len(sandbox.requests)
            pull(config, store, clock.now)
            after = routes(sandbox.requests[seen:])
    total = sum(first.values())
    minimum = math.ceil(held / PAGE) + math.ceil(held / AUDIT_IDS) + LOOK_UPS
    print(f"\n{held:,} records: first pull {total} requests in {seconds:.1f}s ({total * 1000 / held:.1f} per 1,000 records; "
          f"the minimum: {math.ceil(held / PAGE)} record pages + {math.ceil(held / AUDIT_IDS)} sys_audit + {LOOK_UPS} look-ups "
          f"= {minimum}, {minimum * 1000 / held:.1f} per 1,000)")
    for route, count in sorted(first.items()):
        print(f"  {count:6}  {route}")
    print(f"quiet re-run: {line(quiet)}")
    print(f"after {len(changed)} records changed: {line(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1000])
    for records in parser.parse_args().records:
        measure(records)


if __name__ == "__main__":
    main()
