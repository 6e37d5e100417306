"""Pull, evaluate and write back N tickets against the Zendesk sandbox over loopback.

    pip install -e . && python bench/sync.py --tickets 10000 100000

Each phase runs as its own `sla-bridge` process (the CLI a cron job runs), so its peak resident
memory can be read from the kernel (wait4's ru_maxrss). The sandbox runs in this process, with
its rate limits lifted: this measures sla-bridge, not Zendesk's quotas (at 700 requests a minute,
Zendesk itself would pace the notes of a large first run over many minutes).
"""

from __future__ import annotations

import sys

# bench/calendar.py would shadow the standard library's calendar module: drop this folder.
if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    sys.path.pop(0)

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bridge.pipeline.demo import demo_config
from connectors.zendesk.sandbox import ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
NOW = "2026-11-01T12:00:00Z"


# Runs the CLI, then reports the process's own peak resident memory on its last stderr line.
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a child would
# report the high-water mark of this (sandbox-holding) parent at fork time.
WRAPPER = (
    "import re, sys\n"
    "from bridge.cli import main\n"
    "code = 0\n"
    "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code or 0\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
    "print(f'PEAK_RSS_KIB={hwm}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_phase(config: Path, phase: str, env: dict[str, str]) -> tuple[dict, float, int]:
    """(the phase's --json report, wall seconds, peak RSS in MiB)."""
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, "--config", str(config), phase, "--now", NOW, "--json"],
        capture_output=True, text=True, env=env,
    )
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{phase} failed ({result.returncode}): {result.stderr[-2000:]}")
    rss_kib = int(result.stderr.strip().splitlines()[-1].split("=")[1])
    return json.loads(result.stdout), seconds, rss_kib // 1024


def measure(tickets: int) -> dict:
    began = time.perf_counter()
    sandbox = ZendeskSandbox(tickets, seed=1, anchor=ANCHOR, clock=lambda: ANCHOR,
                             export_limit_per_minute=10**9, account_limit_per_minute=10**9)
    seeded = time.perf_counter() - began
    folder = Path(tempfile.mkdtemp(prefix=f"sla-bench-{tickets}-"))
    env = {**os.environ, "BENCH_ZD_TOKEN": sandbox.token}
    figures = {"tickets": tickets, "events": len(sandbox.events), "seeded_s": round(seeded, 1)}
    with sandbox.serve() as url:
        config = folder / "sla-bridge.toml"
        config.write_text(demo_config({"zd": sandbox.source_config(url, "BENCH_ZD_TOKEN")}))
        for phase in ("pull", "evaluate", "push"):
            before = len(sandbox.requests)
            report, seconds, rss = run_phase(config, phase, env)
            stats = report["sources"]["zd"]
            figures[phase] = {
                "seconds": round(seconds, 1),
                "tickets_per_s": round(tickets / seconds),
                "requests": len(sandbox.requests) - before,
                "peak_rss_mib": rss,
                **{k: stats[k] for k in ("tickets_pulled", "events_pulled", "tickets_evaluated", "clocks_changed",
                                         "writes_sent", "notes_sent") if stats.get(k)},
            }
    figures["store_mib"] = round(sum(p.stat().st_size for p in folder.glob("sla-bridge.db*")) / 2**20, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    results = [measure(n) for n in args.tickets]
    print(f"{'tickets':>8} {'phase':>8} {'seconds':>8} {'tickets/s':>10} {'requests':>9} {'peak RSS':>9}  detail")
    for r in results:
        for phase in ("pull", "evaluate", "push"):
            f = r[phase]
            detail = ", ".join(f"{k} {v:,}" for k, v in f.items() if k not in ("seconds", "tickets_per_s", "requests", "peak_rss_mib"))
            print(f"{r['tickets']:>8,} {phase:>8} {f['seconds']:>8.1f} {f['tickets_per_s']:>10,} {f['requests']:>9,} {f['peak_rss_mib']:>6} MiB  {detail}")
        print(f"{'':>8} store {r['store_mib']} MiB; sandbox seeded {r['events']:,} ticket events in {r['seeded_s']}s (not timed)")


if __name__ == "__main__":
    main()
