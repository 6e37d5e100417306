"""The demo: every landed connector's sandbox on loopback, and one config for three customers.

Three customers with different calendars, policies and credits, one of them (Globex) on terms
renegotiated a month ago, and an OLA for each support line (the story hands tickets from first
line to the 2nd line); the config is written next to
the demo's store so the user can re-run any command against it afterwards. Sandboxes are used
only through their protocol (:mod:`bridge.framework.sandbox`), so a new connector with a
sandbox joins the demo by registering.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from bridge.framework.registry import sandbox_class, sandbox_systems
from bridge.framework.sandbox import Sandbox

__all__ = ["RunningSandbox", "agreements_told", "demo_config", "source_table", "start_sandboxes"]


@dataclass(frozen=True)
class RunningSandbox:
    system: str
    sandbox: Sandbox
    source: dict[str, Any]  # its [sources.NAME] table, pointing at where it listens
    secret_env: str  # the environment variable its secret (token, password) is read from


def start_sandboxes(stack: ExitStack, tickets: int, seed: int) -> dict[str, RunningSandbox]:
    """Every sandbox on a loopback port for the life of ``stack``, by source name."""
    running: dict[str, RunningSandbox] = {}
    systems = sandbox_systems()
    for index, system in enumerate(systems):
        # One story dealt between the helpdesks: each customer's tickets live partly in each.
        box = sandbox_class(system).for_demo(tickets=tickets, seed=seed, deal=(index, len(systems)))
        url = stack.enter_context(box.serve())
        token_env = f"SLA_DEMO_{system.upper()}_TOKEN"
        os.environ[token_env] = box.token
        running[f"{system}-sandbox"] = RunningSandbox(system, box, box.source_config(url, token_env), token_env)
    return running

CONTRACTS = """\
# Written by `sla-bridge demo`: three customers, three contracts, their tickets in every helpdesk sandbox.

[store]
path = "sla-bridge.db"

[calendars.london]          # ACME's support desk: office hours in London, English bank holidays
timezone = "Europe/London"
hours = {{ mon = ["09:00-17:30"], tue = ["09:00-17:30"], wed = ["09:00-17:30"], thu = ["09:00-17:30"], fri = ["09:00-17:00"] }}
holiday_country = "GB"
holiday_subdivision = "ENG"

[calendars.new-york]        # Globex: extended hours in New York, a Saturday night shift, US holidays
timezone = "America/New_York"
hours = {{ mon = ["07:00-22:00"], tue = ["07:00-22:00"], wed = ["07:00-22:00"], thu = ["07:00-22:00"], fri = ["07:00-22:00"], sat = ["22:00-06:00"] }}
holiday_country = "US"

[[policies]]
name = "acme-gold"
contract = "ACME MSA 2026 s.9.2.3"
calendar = "london"
match = {{ customer = ["ACME Ltd"] }}
targets.first_response = {{ p1 = "30m", p2 = "2h", p3 = "4h", p4 = "8h" }}
targets.next_response = {{ p1 = "1h", p2 = "4h", p3 = "8h", p4 = "16h" }}
targets.resolution = {{ p1 = "4h", p2 = "16h", p3 = "40h", p4 = "80h" }}
[policies.credits]
currency = "GBP"
monthly_fee = 12000
cap_percent = 20
per_breach = [{{ over = "0%", percent = 1 }}, {{ over = "50%", percent = 2.5 }}, {{ over = "8h", percent = 5 }}]
success_rate = [{{ below = 95, percent = 5 }}, {{ below = 90, percent = 10 }}]

[[policies]]
name = "globex-extended"
contract = "Globex Support Schedule B"
effective_to = {renegotiated}   # renegotiated: the tighter terms below judge what starts from then
calendar = "new-york"
match = {{ customer = ["Globex"] }}
pause_when = ["waiting_customer", "on_hold"]
on_reopen = "new_cycle"
targets.first_response = {{ p1 = "15m", p2 = "1h", p3 = "4h", p4 = "8h" }}
targets.resolution = {{ p1 = "8h", p2 = "24h", p3 = "48h", p4 = "96h" }}
[policies.credits]
currency = "USD"
monthly_fee = 8000
cap_percent = 15
per_breach = [{{ over = "0%", percent = 0.5 }}, {{ over = "100%", percent = 2 }}]

[[policies]]
name = "globex-renewed"
extends = "globex-extended"
contract = "Globex Support Schedule B, 2nd edition"
effective_from = {renegotiated}
targets.first_response = {{ p1 = "10m", p2 = "45m", p3 = "3h", p4 = "6h" }}

[[policies]]
name = "standard"
contract = "Standard terms"
targets.first_response = {{ p1 = "1h", p2 = "4h", p3 = "8h", p4 = "24h" }}
targets.resolution = {{ p1 = "8h", p2 = "24h", p3 = "72h", p4 = "120h" }}

# Operational level agreements: first line answers or hands on quickly; the 2nd line, once a
# ticket is handed to it, has its own time to resolve it, whatever first line used.
[[policies]]
name = "first-line-ola"
kind = "ola"
team = "Support"
targets.first_response = {{ p1 = "1h", p2 = "2h", p3 = "4h", p4 = "8h" }}

[[policies]]
name = "second-line-ola"
kind = "ola"
team = "2nd line"
targets.resolution = {{ p1 = "8h", p2 = "16h", p3 = "40h", p4 = "80h" }}
"""


RENEGOTIATED_DAYS_AGO = 30


def demo_config(sources: dict[str, dict[str, Any]], *, renegotiated: date | None = None) -> str:
    """The TOML text: the contracts above plus one ``[sources.NAME]`` table per sandbox. Globex's
    contract was renegotiated ``renegotiated`` (by default 30 days ago, inside the story's quarter)."""
    day = renegotiated or (datetime.now(timezone.utc) - timedelta(days=RENEGOTIATED_DAYS_AGO)).date()
    contracts = CONTRACTS.format(renegotiated=day.isoformat())
    return "\n".join([contracts, *(source_table(name, source) for name, source in sources.items())])


def agreements_told(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """What the demo says about its OLAs and its contract change, from (agreement, policy, state,
    count) rows of the clocks: one line per OLA, one per version of a customer's terms that a
    later version replaced."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        states = counts.setdefault((str(row["agreement"]), str(row["policy"])), {})
        states[str(row["state"])] = states.get(str(row["state"]), 0) + int(row["count"])
    lines = []
    for (agreement, policy), states in sorted(counts.items()):
        told = ", ".join(f"{count:,} {state}" for state, count in sorted(states.items()))
        if agreement.startswith("ola:"):
            lines.append(f"  OLA of {agreement.removeprefix('ola:')} ({policy}): {told}")
        elif policy.startswith("globex"):
            lines.append(f"  Globex under {policy}: {told}")
    return lines


def source_table(name: str, source: dict[str, Any]) -> str:
    """``[sources.NAME]`` in TOML: top-level keys one per line, tables inline."""
    lines = [f"[sources.{name}]"]
    lines += [f"{key} = {_toml(value)}" for key, value in source.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON's string syntax
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")
