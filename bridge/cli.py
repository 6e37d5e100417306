"""The ``sla-bridge`` command line.

Global options (``--config``, ``--db``, ``-v``, ``--log-format``) are defined once and stacked on
the group and on every command, so they work before or after the command name. Errors from
:mod:`bridge.errors` become one clean ``Error: ...`` line and their exit code (a traceback only
with ``-v``): 0 ok, 1 failure, 2 usage or configuration error, 3 partial (some sources failed),
75 another run holds the lock.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from bridge._version import __version__
from bridge.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config, load_config
from bridge.edges.credentials import redact
from bridge.edges.logs import configure_logging
from bridge.edges.store import Store
from bridge.engine.durations import format_duration
from bridge.engine.hours import parse_interval
from bridge.errors import ConfigError, SlaBridgeError, SourceError
from bridge.framework.contract import Connector
from bridge.framework.registry import connector_class
from bridge.model import WritebackPlan, from_iso
from bridge.pipeline.connect import open_connector
from bridge.pipeline.demo import demo_config, start_sandboxes
from bridge.pipeline.report import RunReport
from bridge.pipeline.run import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, PHASES, run_pipeline

__all__ = ["cli", "main"]

EXIT_USAGE = 2
log = logging.getLogger("sla_bridge.cli")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppState:
    """What the global options said, shared by the group and its commands."""

    config_path: str | None = None
    db: str | None = None
    verbose: int = 0
    log_format: str = "text"
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def open_store(self) -> Store:
        return Store.open(self.config().store_path(self.db))


def _state() -> AppState:
    return click.get_current_context().ensure_object(AppState)


def _remember(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        state = ctx.ensure_object(AppState)
        if attribute == "verbose":
            state.verbose += value or 0
        elif value is not None:
            setattr(state, attribute, value)

    return callback


def global_options(command: F) -> F:
    """``--config``, ``--db``, ``-v`` and ``--log-format``, accepted on the group and every command."""
    options = [
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("config_path"),
            help=f"Config file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG_NAME}).",
        ),
        click.option(
            "--db",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("db"),
            help="SQLite store to use instead of store.path from the config.",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            expose_value=False,
            callback=_remember("verbose"),
            help="More output: -v progress and tracebacks, -vv every request.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default=None,
            expose_value=False,
            callback=_remember("log_format"),
            help="Log lines as text (default) or one JSON object per line.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(command)


class BridgeGroup(click.Group):
    """Turns sla-bridge's errors into ``Error: ...`` and the exit code DESIGN.md gives them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SlaBridgeError as error:
            _fail(ctx, error, error.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(130)
        except Exception as error:  # noqa: BLE001 - a bug: say so plainly, keep the traceback for -v
            _fail(ctx, error, EXIT_FAILURE, unexpected=True)


def _fail(ctx: click.Context, error: BaseException, code: int, *, unexpected: bool = False) -> None:
    state = ctx.ensure_object(AppState)
    if state.verbose:
        click.echo(redact("".join(traceback.format_exception(error))), err=True)
    message = f"{type(error).__name__}: {error}" if unexpected else str(error)
    hint = " (run with -v for the traceback)" if unexpected and not state.verbose else ""
    click.echo(redact(f"Error: {message}{hint}"), err=True)
    ctx.exit(code)


@click.group(cls=BridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="sla-bridge")
@global_options
def cli() -> None:
    """Evaluate SLAs across Zendesk, Jira Service Management and ServiceNow.

    Pulls tickets into a local store, applies the SLA policies of your config, and writes breach
    status and credit notes back to the tickets. Run from cron; quiet unless something is wrong.

    \b
    Example:
        sla-bridge --config /etc/sla-bridge.toml check --online
    """


def _setup() -> AppState:
    state = _state()
    configure_logging(state.verbose, state.log_format)
    return state


# -- init -----------------------------------------------------------------------------------


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@global_options
def init(path: str | None, force: bool) -> None:
    """Write a starter config that loads (never overwrites without --force).

    \b
    Example:
        sla-bridge init && sla-bridge check
    """
    state = _setup()
    target = Path(path or state.config_path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME).expanduser()
    if target.exists() and not force:
        raise click.UsageError(f"{target} already exists; pass --force to overwrite it")
    text = resources.files("bridge").joinpath("starter.toml").read_text(encoding="utf-8")
    load_config(data=tomllib.loads(text), environ=False)  # the starter must load: fail here, not in a user's hands
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    click.echo(f"Wrote {target}.")
    click.echo("Next: set sources.helpdesk.url and auth.email, export ZENDESK_API_TOKEN, then run:")
    click.echo(f"  sla-bridge --config {target} check --online")


# -- check ----------------------------------------------------------------------------------


@cli.command()
@click.option("--online", is_flag=True, help="Also try each source's credentials with one request.")
@json_option
@global_options
def check(online: bool, as_json: bool) -> None:
    """Validate the config and summarise sources, calendars and policies.

    Exit 0 when valid, 2 with every problem listed when not. --online also authenticates against
    each source once (exit 3 if any source fails) and records the run in the store.

    \b
    Example:
        sla-bridge check --online --json
    """
    state = _setup()
    config = state.config()
    config.require_secrets()
    summary = _summarise(config, state)
    exit_code = EXIT_OK
    if online:
        summary["online"] = _check_sources(config, state)
        if any(not result["ok"] for result in summary["online"].values()):
            exit_code = EXIT_PARTIAL
    if as_json:
        click.echo(redact(json.dumps(summary, indent=2, default=str)))
    else:
        _print_summary(summary)
    if exit_code:
        failed = [name for name, result in summary["online"].items() if not result["ok"]]
        click.echo(f"Error: {len(failed)} source(s) failed the credential check: {', '.join(failed)}", err=True)
        click.get_current_context().exit(exit_code)


def _summarise(config: Config, state: AppState) -> dict[str, Any]:
    sources = []
    for name, source in config.sources.items():
        auth = source.auth
        where = "env" if auth.secret_env else "file"
        writes = connector_class(source.system).writes
        sources.append(
            {
                "name": name,
                "system": source.system,
                "url": source.url,
                "auth": {"kind": auth.kind, "account": auth.principal, "secret_from": f"{where} {auth.secret_env or auth.secret_file}"},
                "writeback": source.writeback.enabled,
                "can_write": [what for what in ("status_field", "tags", "notes", "bulk", "concurrency") if getattr(writes, what)],
                "statuses_mapped": len(source.statuses),
                "priorities_mapped": len(source.priorities),
            }
        )
    calendars = []
    for name, cal in config.calendars.items():
        weekly = sum(end - start for intervals in cal.hours.values() for start, end in map(parse_interval, intervals))
        calendars.append(
            {
                "name": name,
                "timezone": cal.timezone,
                "weekly_hours": round(weekly / 3600, 2),
                "holidays": len(cal.holidays),
                "public_holidays": "-".join(filter(None, [cal.holiday_country, cal.holiday_subdivision])) or None,
                "overrides": len(cal.overrides),
            }
        )
    policies = [
        {
            "name": policy.name,
            "contract": policy.contract,
            "calendar": policy.calendar,
            "pause_when": list(policy.pause_when),
            "targets": {
                metric: {priority: format_duration(seconds) for priority, seconds in targets.items()}
                for metric, targets in policy.targets.items()
            },
            "credits": policy.credits.currency if policy.credits else None,
        }
        for policy in config.policies
    ]
    return {
        "config": str(config.path) if config.path else None,
        "store": str(config.store_path(state.db)),
        "sources": sources,
        "calendars": calendars,
        "policies": policies,
    }


def _check_sources(config: Config, state: AppState) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with state.open_store() as store:
        run_id = store.start_run("check --online")
        try:
            for name in config.sources:
                results[name] = _check_one_source(config, name)
        except BaseException as error:  # record the crash, then let the CLI report it
            store.finish_run(run_id, exit_code=EXIT_FAILURE, sources=results, error=f"{type(error).__name__}: {error}")
            raise
        failed = sum(1 for result in results.values() if not result["ok"])
        store.finish_run(run_id, exit_code=EXIT_PARTIAL if failed else EXIT_OK, sources=results)
    return results


def _check_one_source(config: Config, name: str) -> dict[str, Any]:
    connector: Connector | None = None
    try:
        connector = open_connector(config, name)
        account = connector.check_credentials()
        result: dict[str, Any] = {"ok": True, "account": account.account, "detail": account.detail}
    except SourceError as error:
        log.info("%s", error)
        result = {"ok": False, "error": str(error), "error_class": type(error).__name__}
    finally:
        if connector:
            connector.http.client.close()
    result["requests"] = connector.http.requests_made if connector else 0
    return result


# -- pull, evaluate, push, sync --------------------------------------------------------------


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return from_iso(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an instant with an offset, e.g. 2026-11-30T23:59:59Z") from None


def _progress(source: str, records: int) -> None:
    click.echo(f"\rpulling {source}: {records:,} records", nl=False, err=True)


def _run(command: str, phases: tuple[str, ...], sources: tuple[str, ...] = (), *, dry_run: bool = False,
         now: datetime | None = None, quiet: bool = False) -> RunReport:
    """The pipeline, locked and recorded, with progress on a terminal."""
    state = _state()
    config = state.config()
    interactive = sys.stderr.isatty() and not quiet
    report = run_pipeline(config, command, phases, sources, store_path=config.store_path(state.db), dry_run=dry_run, now=now,
                          progress=_progress if interactive else None)
    if interactive and "pull" in phases:
        click.echo("", err=True)
    return report


def _finish(report: RunReport, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        plan_docs = {s: [_plan_doc(p) for p in source_plans] for s, source_plans in report.plans.items()} if dry_run else None
        click.echo(redact(json.dumps({"command": report.command, "exit_code": report.exit_code, "seconds": report.seconds,
                                      "sources": report.source_docs(), "plans": plan_docs}, indent=2, default=str)))
    else:
        if dry_run:
            for source, plans in report.plans.items():
                click.echo(f"{source}: {len(plans)} ticket(s) would be written (dry run: nothing sent)")
                for plan in plans:
                    click.echo(f"  {plan.ticket_id}: {_describe_plan(plan)}")
        total = report.total
        click.echo(
            f"{report.command}: {len(report.sources)} source(s), {total('tickets_pulled'):,} tickets and "
            f"{total('events_pulled'):,} events pulled, {total('tickets_evaluated'):,} tickets evaluated, "
            f"{total('clocks_changed'):,} clocks changed, {total('writes_sent'):,} writes sent ({total('notes_sent'):,} notes)"
            + (f", {total('conflicts')} conflicts left for the next run" if total("conflicts") else "")
            + (f", {total('writes_refused')} tickets refused the write (-v lists them)" if total("writes_refused") else "")
            + (f", {total('quarantined')} records quarantined" if total("quarantined") else "")
            + f" in {report.seconds:.1f}s"
        )
        for name, stats in sorted(report.sources.items()):
            if stats.unmapped:
                click.echo(f"Warning: source {name!r}: unmapped values kept raw: "
                           + ", ".join(f"{k} ({v})" for k, v in stats.unmapped.items()), err=True)
    for name in report.failed:
        click.echo(f"Error: {report.sources[name].error}", err=True)
    if report.exit_code:
        click.get_current_context().exit(report.exit_code)


def _plan_doc(plan: WritebackPlan) -> dict[str, Any]:
    return {"ticket_id": plan.ticket_id, "set_fields": plan.set_fields, "add_tags": plan.add_tags,
            "remove_tags": plan.remove_tags, "notes": [n.marker for n in plan.notes]}


def _describe_plan(plan: WritebackPlan) -> str:
    parts = [f"set {k} = {v!r}" for k, v in plan.set_fields.items()]
    parts += [f"add tag {t}" for t in plan.add_tags] + [f"remove tag {t}" for t in plan.remove_tags]
    parts += [f"internal note {n.marker}" for n in plan.notes]
    return "; ".join(parts)


def _pipeline_command(name: str, phases: tuple[str, ...], doc: str, *, writes: bool) -> click.Command:
    """``pull``, ``evaluate``, ``push`` and ``sync``: one implementation, the phases differ."""

    def command(sources: tuple[str, ...], now: datetime | None, as_json: bool, dry_run: bool = False) -> None:
        _setup()
        _finish(_run(name, phases, sources, dry_run=dry_run, now=now), dry_run=dry_run, as_json=as_json)

    command.__doc__ = doc
    command.__name__ = name
    decorated: Any = command
    for option in (
        global_options,
        json_option,
        click.option("--now", callback=_instant, metavar="INSTANT",
                     help="Evaluate as of this instant (ISO 8601 with offset) instead of the current time."),
        *([click.option("--dry-run", is_flag=True, help="Print the write-back plan per ticket; write nothing to any source.")]
          if writes else []),
        click.option("--source", "sources", multiple=True, metavar="NAME",
                     help="Only this source (repeatable; default: every source)."),
    ):
        decorated = option(decorated)
    return cli.command(name)(decorated)


pull = _pipeline_command("pull", ("pull",), """Pull changed tickets and their history from the sources into the store.

    \b
    Example:
        sla-bridge pull --source zendesk-prod
    """, writes=False)
evaluate = _pipeline_command("evaluate", ("evaluate",), """Evaluate the SLA clocks of tickets that changed, and of clocks still running.

    \b
    Example:
        sla-bridge evaluate
    """, writes=False)
push = _pipeline_command("push", ("push",), """Write SLA status, tags and breach notes back to the tickets: only what changed.

    \b
    Example:
        sla-bridge push --dry-run
    """, writes=True)
sync = _pipeline_command("sync", PHASES, """Pull, evaluate and push in one locked run: what cron runs. Quiet on success.

    Exit 0 ok, 3 when a source failed (the others still ran; the next run resumes), 75 when
    another run holds the lock.

    \b
    Example:
        */5 * * * * sla-bridge --config /etc/sla-bridge.toml sync
    """, writes=True)


# -- status ---------------------------------------------------------------------------------


@cli.command()
@click.argument("ticket", required=False)
@click.option("--limit", type=int, default=50, show_default=True, help="Rows in the table (0: all).")
@json_option
@global_options
def status(ticket: str | None, limit: int, as_json: bool) -> None:
    """Show running, at-risk and breached clocks, worst first; or one ticket's timeline.

    TICKET is a ticket id (zd:123) or key (#123, SUP-12).

    \b
    Examples:
        sla-bridge status
        sla-bridge status zendesk-prod:4711
    """
    state = _setup()
    config = state.config()
    with Store.open(config.store_path(state.db)) as store:
        if ticket:
            _timeline(store, ticket, as_json)
            return
        rows = store.worst_clocks(None if as_json or not limit else limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No clock is running, at risk or breached.")
        return
    header = ("TICKET", "SOURCE", "CUSTOMER", "PRI", "METRIC", "STATE", "TARGET", "ELAPSED", "DUE (UTC)")
    table = [header] + [(
        row["key"], row["source"], (row["customer"] or "-")[:18], row["priority"] or "-",
        row["metric"] + (f"#{row['cycle']}" if row["cycle"] > 1 else ""),
        row["state"] + (" (at risk)" if row["at_risk"] else "") + (" (closed)" if row["stopped_at"] else ""),
        format_duration(row["target_seconds"]), format_duration(row["elapsed_seconds"]), (row["due_at"] or "")[:16].replace("T", " "),
    ) for row in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _timeline(store: Store, wanted: str, as_json: bool) -> None:
    from bridge.engine.evaluator import status_segments

    matches = store.find_tickets(wanted)
    if not matches:
        raise click.UsageError(f"no ticket {wanted!r} in the store (use an id such as zendesk-prod:123 or a key such as #123)")
    if len(matches) > 1:
        raise click.UsageError(f"{wanted!r} names tickets in several sources: {', '.join(matches)}; use the id")
    [(ticket, events)] = store.load(matches)
    clocks = store.clock_rows(ticket.id)
    segments = status_segments(ticket, events)
    if as_json:
        click.echo(json.dumps({"ticket": {"id": ticket.id, "key": ticket.key, "title": ticket.title, "status": ticket.status,
                                          "priority": ticket.priority, "customer": ticket.customer},
                               "events": [{"at": e.at.isoformat(), "kind": e.kind, "from": e.from_value, "to": e.to_value} for e in events],
                               "statuses": [{"from": at.isoformat(), "status": s} for at, s in segments],
                               "clocks": clocks}, indent=2, default=str))
        return
    click.echo(f"{ticket.key} ({ticket.id}) {ticket.title}")
    click.echo(f"  status {ticket.status}, priority {ticket.priority or '-'}, customer {ticket.customer or '-'}")
    click.echo("Events:")
    for event in events:
        change = f" {event.from_value or '-'} -> {event.to_value}" if event.kind in ("status", "priority") else ""
        click.echo(f"  {event.at:%Y-%m-%d %H:%M} {event.kind}{change}")
    click.echo("Statuses:")
    for at, status_name in segments:
        click.echo(f"  from {at:%Y-%m-%d %H:%M} {status_name}")
    click.echo("Clocks:")
    for c in clocks:
        click.echo(f"  {c['metric']}#{c['cycle']} {c['state']}{' (at risk)' if c['at_risk'] else ''}: "
                   f"{format_duration(c['elapsed_seconds'])} of {format_duration(c['target_seconds'])}, "
                   f"paused {format_duration(c['paused_seconds'])}, due {c['due_at']}"
                   + (f", breached {c['breached_at']}" if c["breached_at"] else "") + f" (policy {c['policy']})")


# -- sandbox and demo -----------------------------------------------------------------------


@cli.command()
@click.option("--tickets", type=int, default=1500, show_default=True, help="Tickets each sandbox seeds.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Seed of the sandbox data.")
@click.option("--write", "write_to", type=click.Path(dir_okay=False), help="Also write the config to this file.")
@global_options
def sandbox(tickets: int, seed: int, write_to: str | None) -> None:
    """Run every connector's sandbox on loopback and print a config that points at them.

    Runs until interrupted (Ctrl-C). Export the printed token variables in the shell that runs
    sla-bridge against it.

    \b
    Example:
        sla-bridge sandbox --write sandbox.toml
    """
    _setup()
    with ExitStack() as stack:
        running = start_sandboxes(stack, tickets, seed)
        text = demo_config({name: box.source for name, box in running.items()})
        if write_to:
            Path(write_to).write_text(text)
        click.echo(text)
        for box in running.values():
            click.echo(f"# export {box.source['auth']['token_env']}={box.sandbox.token}", err=True)
        click.echo("# sandboxes running on loopback; Ctrl-C to stop", err=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--tickets", type=int, default=1500, show_default=True, help="Tickets the sandbox seeds (a quarter's worth).")
@global_options
def demo(directory: str | None, tickets: int) -> None:
    """Run the whole product on local sandboxes: seed a quarter, sync, show status and write-back.

    Needs no credentials and no network beyond loopback. The config and the store stay in
    DIRECTORY (a new temporary folder when not given) to explore afterwards.

    \b
    Example:
        sla-bridge demo ./demo
    """
    state = _setup()
    folder = Path(directory or tempfile.mkdtemp(prefix="sla-bridge-demo-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("sla-bridge.db", "sla-bridge.db-wal", "sla-bridge.db-shm"):  # never the lock file
        (folder / stale).unlink(missing_ok=True)
    with ExitStack() as stack:
        running = start_sandboxes(stack, tickets, 2026)
        config_path = folder / "sla-bridge.toml"
        config_path.write_text(demo_config({name: box.source for name, box in running.items()}))
        state.config_path, state.db, state._config = str(config_path), None, None
        click.echo(f"Seeded {tickets:,} tickets for ACME Ltd, Globex and Initech in: " + ", ".join(running))
        report = _run("sync", PHASES)
        if report.exit_code:  # a source failed: say so, as sync would, and stop here
            _finish(report, dry_run=False, as_json=False)
        total = report.total
        click.echo(f"sync: {total('tickets_pulled'):,} tickets pulled, {total('clocks_changed'):,} clocks computed, "
                   f"{total('writes_sent'):,} tickets written back ({total('notes_sent'):,} breach notes) in {report.seconds:.1f}s\n")
        click.echo("Worst clocks now (sla-bridge status):")
        click.get_current_context().invoke(status, ticket=None, limit=12, as_json=False)
        click.echo("\nWritten back to the helpdesk:")
        for name, box in running.items():
            summary = box.sandbox.writeback_summary()
            verb = "tagged" if connector_class(box.system).writes.tag_word == "tags" else "labelled"
            click.echo(f"  {name}: {summary.tickets_tagged:,} tickets {verb} sla_at_risk / sla_breached, "
                       f"{len(summary.notes):,} internal notes")
            if summary.notes:
                example = next((n for n in summary.notes if "Service credit" in n), summary.notes[0])
                click.echo("  one of the notes an agent now sees:")
                for line in example.splitlines():
                    click.echo(f"    | {line}")
    click.echo(f"\nThe config and store are in {folder}. The sandboxes have stopped; to explore the results:")
    click.echo(f"  sla-bridge --config {config_path} status")
    click.echo(f"  sla-bridge --config {config_path} status <ticket id from the table>")


# -- fields ---------------------------------------------------------------------------------


@cli.command()
@click.argument("source")
@json_option
@global_options
def fields(source: str, as_json: bool) -> None:
    """List a source's ticket fields (id, title, type, options) to map in the config.

    The ID column is what to write in sources.NAME.fields (e.g. customer = "custom_field:ID")
    and in writeback.status_field.

    \b
    Example:
        sla-bridge fields zendesk-prod
    """
    state = _setup()
    config = state.config()
    if source not in config.sources:
        known = ", ".join(sorted(config.sources)) or "none"
        raise ConfigError(f"no source named {source!r} in the config; known: {known}", file=str(config.path) if config.path else None)
    config.source_secret(source)  # a ConfigError naming the key if the secret is not there
    connector = open_connector(config, source)
    try:
        found = connector.list_fields()
    finally:
        connector.http.client.close()
    if as_json:
        click.echo(json.dumps([{"id": f.id, "title": f.title, "type": f.type, "options": f.options} for f in found], indent=2))
        return
    width = max([len(f.id) for f in found] + [2])
    click.echo(f"{'ID'.ljust(width)}  {'TYPE'.ljust(12)}  TITLE (options)")
    for item in found:
        options = f" ({', '.join(item.options)})" if item.options else ""
        click.echo(f"{item.id.ljust(width)}  {item.type.ljust(12)}  {item.title}{options}")


def _print_summary(summary: dict[str, Any]) -> None:
    echo = click.echo
    echo(f"Config {summary['config']} is valid.")
    echo(f"Store: {summary['store']}")
    echo(f"Sources ({len(summary['sources'])}):")
    for source in summary["sources"]:
        auth = source["auth"]
        account = f" of {auth['account']}" if auth["account"] else ""
        echo(
            f"  {source['name']}: {source['system']} at {source['url']}; {auth['kind'].replace('_', ' ')}{account} "
            f"from {auth['secret_from']}; write-back {'on' if source['writeback'] else 'off'}"
        )
    echo(f"Calendars ({len(summary['calendars'])}, plus the built-in 24x7):")
    for cal in summary["calendars"]:
        extras = [f"{cal['holidays']} holiday(s)"]
        if cal["public_holidays"]:
            extras.append(f"public holidays {cal['public_holidays']}")
        if cal["overrides"]:
            extras.append(f"{cal['overrides']} override(s)")
        echo(f"  {cal['name']}: {cal['timezone']}, {cal['weekly_hours']:g} h/week, {', '.join(extras)}")
    echo(f"Policies ({len(summary['policies'])}, the first that matches a ticket applies):")
    for index, policy in enumerate(summary["policies"], 1):
        targets = "; ".join(
            f"{metric} " + ", ".join(f"{p} {d}" for p, d in per.items()) for metric, per in policy["targets"].items()
        )
        credit = f"; credits in {policy['credits']}" if policy["credits"] else ""
        echo(f"  {index}. {policy['name']} (calendar {policy['calendar']}): {targets}{credit}")
    for name, result in summary.get("online", {}).items():
        if result["ok"]:
            echo(f"Source {name}: credentials OK, authenticated as {result['account']} ({result['requests']} request(s))")
        else:
            echo(f"Source {name}: FAILED: {result['error']}")


def main() -> None:
    cli(prog_name="sla-bridge")


if __name__ == "__main__":
    main()
