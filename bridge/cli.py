"""The ``sla-bridge`` command line.

Global options (``--config``, ``--db``, ``-v``, ``--log-format``) are defined once and stacked on
the group and on every command, so they work before or after the command name. Errors from
:mod:`bridge.errors` become one clean ``Error: ...`` line and their exit code (a traceback only
with ``-v``): 0 ok, 1 failure, 2 usage or configuration error, 3 partial (some sources failed),
75 another run holds the lock, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

Everything printed goes through :func:`_say`, which masks secrets, and every value from a
ticket, a vendor or a file is put in with :func:`bridge.edges.logs.printable`, so no such text
can move the cursor, retitle the terminal or forge a line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import textwrap
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from bridge._version import __version__
from bridge.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config, load_config
from bridge.edges.credentials import redact
from bridge.edges.logs import configure_logging, printable, printable_lines
from bridge.edges.store import Store
from bridge.engine.durations import format_duration
from bridge.engine.hours import parse_interval
from bridge.engine.policy import Policy, build_policies
from bridge.errors import ConfigError, SlaBridgeError, SourceError, Terminated
from bridge.framework.contract import Connector
from bridge.framework.registry import connector_class
from bridge.model import WritebackPlan, from_iso
from bridge.pipeline.connect import open_connector
from bridge.pipeline.demo import agreements_told, demo_config, start_sandboxes
from bridge.pipeline.report import RunReport, SourceStats
from bridge.pipeline.run import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, PHASES, exit_code_of, run_pipeline

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

    def open_existing_store(self) -> Store:
        """The store for a command that only reads: a missing one is a mistake to say, not to create."""
        path = self.config().store_path(self.db)
        if not path.exists() or (path.is_file() and path.stat().st_size == 0):
            config = self.config()
            said_by = "--db" if self.db is not None else "store.path"
            raise ConfigError(
                f"{said_by}: no store at {path}: run `sla-bridge sync` first, or check --db / store.path",
                file=None if self.db is not None or config.path is None else str(config.path),
            )
        return Store.open(path, create=False)  # and a read-only store can be read

    def store_path(self) -> Path | None:
        """The store this invocation uses, as far as it is known (for messages about it)."""
        if self._config is not None:
            return self._config.store_path(self.db)
        return Path(self.db).expanduser().absolute() if self.db is not None else None


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


def _say(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line the CLI composed, with every secret masked.

    The values put into ``text`` from tickets, vendors and files must already have gone through
    :func:`printable`; a line the CLI composes may span lines on purpose.
    """
    click.echo(redact(text), err=err, nl=nl)


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _raise_terminated(signum: int, _frame: object) -> None:
    # A second signal while this one unwinds the run ends the process at once, as it would
    # without sla-bridge: whoever sends it twice means it (the next run marks the row killed).
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def _signals_stop_the_run() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C: locks released, the run recorded, one line said."""
    try:
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in _STOP_SIGNALS}
    except ValueError:  # not the main thread (sla-bridge embedded in something else): leave it be
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class BridgeGroup(click.Group):
    """Turns sla-bridge's errors into ``Error: ...`` and the exit code DESIGN.md gives them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _signals_stop_the_run():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SlaBridgeError as error:
            _fail(ctx, error, error.exit_code)
        except KeyboardInterrupt as error:
            _stopped(ctx, error)
        except (sqlite3.Error, OSError) as error:
            _fail(ctx, error, EXIT_FAILURE, message=_explain_store_failure(error, ctx.ensure_object(AppState).store_path()))
        except Exception as error:  # noqa: BLE001 - a bug: say so plainly, keep the traceback for -v
            _fail(ctx, error, EXIT_FAILURE, unexpected=True)


def _stopped(ctx: click.Context, error: KeyboardInterrupt) -> None:
    signum = error.signum if isinstance(error, Terminated) else signal.SIGINT
    how = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
    with suppress(OSError):  # after SIGHUP the terminal may be gone
        _say(f"Stopped by {how}; the next run resumes where this one left off", err=True)
    ctx.exit(exit_code_of(error))


def _fail(ctx: click.Context, error: BaseException, code: int, *, unexpected: bool = False, message: str | None = None) -> None:
    state = ctx.ensure_object(AppState)
    if state.verbose:
        _say(printable_lines("".join(traceback.format_exception(error)).rstrip("\n")), err=True)
    if message is None:
        # A configuration error lists one problem a line; any other message is one line, so that
        # a vendor's text inside it cannot start a line of its own.
        clean = printable_lines if isinstance(error, ConfigError) else printable
        message = clean(f"{type(error).__name__}: {error}" if unexpected else str(error))
    hint = " (run with -v for the traceback)" if unexpected and not state.verbose else ""
    _say(f"Error: {message}{hint}", err=True)
    ctx.exit(code)


_FIX_ACCESS = "give the user running sla-bridge write access to it and to its folder, or point --db / store.path elsewhere"


def _explain_store_failure(error: sqlite3.Error | OSError, store: Path | None) -> str:
    """What an operator can act on, for the store or a file beside it that could not be written."""
    where = f"the store {store}" if store else "the store"
    if isinstance(error, sqlite3.Error):
        text = str(error).lower()
        if "readonly" in text or "read-only" in text:
            return (f"{where} cannot be written (the file is read-only, or its folder is, where SQLite keeps the "
                    f"-wal and -shm files beside it); {_FIX_ACCESS}")
        if "full" in text:
            return (f"no space left for {where} (SQLite: {printable(error)}): free space on its disk, then run again; "
                    "the next run resumes where this one stopped")
        if "unable to open" in text:
            return f"cannot open {where}: its folder is missing or cannot be written; {_FIX_ACCESS}"
        if "disk i/o" in text:
            return (f"the disk holding {where} failed a read or a write (full, failing or gone): check it, then run again; "
                    "the next run resumes where this one stopped")
        if "locked" in text or "busy" in text:
            return f"{where} stayed locked by another program for 30 s: stop whatever else has it open, then run again"
        if "malformed" in text or "not a database" in text:
            return (f"{where} is damaged or is not an sla-bridge store ({printable(error)}): restore it from a backup, "
                    "or point --db / store.path at a new file")
        return f"{where} failed: {type(error).__name__}: {printable(error)} (run with -v for the traceback)"
    filename = str(error.filename) if error.filename else None
    beside_store = store is not None and (filename is None or filename.startswith(str(store)))
    name = printable(filename or store or "a file")
    elsewhere = ", or point --db / store.path elsewhere" if beside_store else ""
    what = printable(error.strerror or error)
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"no space left for {name} ({what}): free space on its disk, then run again; the next run resumes where this one stopped"
    if error.errno == errno.EROFS:
        return f"{name} is on a read-only file system: remount it writable{elsewhere}"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied on {name}: give the user running sla-bridge access to it and to its folder{elsewhere}"
    if filename is None:  # not about a file (a socket, a pipe): nothing more to say than what it is
        return f"{type(error).__name__}: {what} (run with -v for the traceback)"
    return f"{name}: {what} ({type(error).__name__}; run with -v for the traceback)"


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
    _say(f"Wrote {printable(target)}.")
    _say("Next: set sources.helpdesk.url and auth.email, export ZENDESK_API_TOKEN, then run:")
    _say(f"  sla-bridge --config {printable(target)} check --online")


# -- check ----------------------------------------------------------------------------------


@cli.command()
@click.option("--online", is_flag=True, help="Also try each source's credentials with one request.")
@json_option
@global_options
def check(online: bool, as_json: bool) -> None:
    """Validate the config and summarise sources, calendars and policies.

    Exit 0 when valid, 2 with every problem listed when not. --online also authenticates against
    each source and checks what the configured features need (exit 3 if any source fails or has
    a problem), and records the run in the store.

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
        _say(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    if exit_code:
        failed = [name for name, result in summary["online"].items() if not result["ok"]]
        _say(f"Error: {len(failed)} source(s) failed the credential check: {', '.join(map(printable, failed))}", err=True)
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
            "kind": policy.kind,
            "team": policy.team,
            "third_party": policy.third_party,
            "preset": policy.preset,
            "extends": policy.extends,
            "effective_from": policy.effective_from.isoformat() if policy.effective_from else None,
            "effective_to": policy.effective_to.isoformat() if policy.effective_to else None,
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
        except BaseException as error:  # record the crash (or the signal), then let the CLI report it
            store.finish_run(run_id, exit_code=exit_code_of(error), sources=results, error=f"{type(error).__name__}: {error}")
            raise
        failed = sum(1 for result in results.values() if not result["ok"])
        store.finish_run(run_id, exit_code=EXIT_PARTIAL if failed else EXIT_OK, sources=results)
    return results


def _check_one_source(config: Config, name: str) -> dict[str, Any]:
    connector: Connector | None = None
    try:
        connector = open_connector(config, name)
        account = connector.check_credentials()
        # What the configured features need and the account lacks (permissions, a drop-down
        # without sla-bridge's values): authenticated, yet a sync would fail or lose writes.
        problems = list(account.problems)
        result: dict[str, Any] = {"ok": not problems, "account": account.account, "detail": account.detail}
        if problems:
            result["problems"] = problems
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
    _say(f"\rpulling {printable(source)}: {records:,} records", nl=False, err=True)


def _run(command: str, phases: tuple[str, ...], sources: tuple[str, ...] = (), *, dry_run: bool = False,
         now: datetime | None = None, quiet: bool = False) -> RunReport:
    """The pipeline, locked and recorded, with progress on a terminal."""
    state = _state()
    config = state.config()
    interactive = sys.stderr.isatty() and not quiet
    report = run_pipeline(config, command, phases, sources, store_path=config.store_path(state.db), dry_run=dry_run, now=now,
                          progress=_progress if interactive else None)
    if interactive and "pull" in phases:
        _say("", err=True)
    return report


def _finish(report: RunReport, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        plan_docs = {s: [_plan_doc(p) for p in source_plans] for s, source_plans in report.plans.items()} if dry_run else None
        _say(json.dumps({"command": report.command, "exit_code": report.exit_code, "seconds": report.seconds,
                         "sources": report.source_docs(), "plans": plan_docs}, indent=2, default=str))
    else:
        if dry_run:
            for source, plans in report.plans.items():
                _say(f"{printable(source)}: {len(plans)} ticket(s) would be written (dry run: nothing sent)")
                for plan in plans:
                    _say(f"  {printable(plan.ticket_id)}: {_describe_plan(plan)}")
        total = report.total
        _say(
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
                _say(f"Warning: source {name!r}: unmapped values kept raw: "
                     + ", ".join(f"{printable(k)} ({v})" for k, v in stats.unmapped.items()), err=True)
            for line in _writeback_warnings(name, stats):
                _say(line, err=True)
    for name in report.failed:
        stats = report.sources[name]
        if stats.error_class != "WritebackIncomplete":  # an exception failed it: its push problems are not in the error
            for problem in stats.problems:
                _say(f"Error: {printable(problem)}", err=True)
        _say(f"Error: {printable(stats.error)}", err=True)
    if report.exit_code:
        click.get_current_context().exit(report.exit_code)


def _writeback_warnings(name: str, stats: SourceStats) -> list[str]:
    """What the source refused or did not keep this run, by item, when no error line says it already."""
    if stats.error_class == "WritebackIncomplete":
        return []  # the Error line names them
    lines = []
    if stats.refused:
        listed = ", ".join(f"{printable(item)} ({count})" for item, count in sorted(stats.refused.items()))
        sample = next(iter(stats.refusal_reasons.values()), "")
        lines.append(f"Warning: source {name!r}: refused: {listed}" + (f"; e.g. {printable(sample)}" if sample else "")
                     + "; retried once the settings or the ticket change, or after the back-off (`sla-bridge status` lists them)")
    if stats.not_kept:
        listed = ", ".join(f"{printable(item)} ({count})" for item, count in sorted(stats.not_kept.items()))
        lines.append(f"Warning: source {name!r}: values the helpdesk accepted but did not keep: {listed} "
                     "(a drop-down without that option? `sla-bridge check --online` says)")
    if stats.notes_held:
        lines.append(f"Warning: source {name!r}: {stats.notes_held} breach note(s) held until its history is pulled: "
                     "run `sla-bridge sync`")
    return lines


def _plan_doc(plan: WritebackPlan) -> dict[str, Any]:
    return {"ticket_id": plan.ticket_id, "set_fields": plan.set_fields, "add_tags": plan.add_tags,
            "remove_tags": plan.remove_tags, "notes": [n.marker for n in plan.notes]}


def _describe_plan(plan: WritebackPlan) -> str:
    parts = [f"set {printable(k)} = {printable(repr(v))}" for k, v in plan.set_fields.items()]
    parts += [f"add tag {printable(t)}" for t in plan.add_tags] + [f"remove tag {printable(t)}" for t in plan.remove_tags]
    parts += [f"internal note {printable(n.marker)}" for n in plan.notes]
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

    TICKET is a ticket id (zd:123) or key (#123, SUP-12): its history, and each agreement's
    clocks (sla first, then OLAs and underpinning contracts) with why each stands where it does
    (what started, paused and stopped it, the terms that judged it, where an SLA clock's time
    went), then every verdict a re-evaluation changed.

    \b
    Examples:
        sla-bridge status
        sla-bridge status zendesk-prod:4711
    """
    state = _setup()
    _learn_secrets(state.config())
    with state.open_existing_store() as store:
        if ticket:
            _timeline(store, ticket, as_json, _policies_by_name(state.config()))
            return
        rows = store.worst_clocks(None if as_json or not limit else limit)
        refusals = store.refusals()
        last = next((run for run in store.runs(limit=50) if run["command"].split()[0] in (*PHASES, "sync")), None)
    if as_json:
        _say(json.dumps({"clocks": rows, "refusals": refusals, "last_run": last}, indent=2, default=str))
        return
    if last and last["exit_code"]:
        _print_last_run(last)
    if refusals:
        _print_refusals(refusals)
    if not rows:
        _say("No clock is running, at risk or breached.")
        return
    header = ("TICKET", "SOURCE", "CUSTOMER", "PRI", "METRIC", "STATE", "TARGET", "ELAPSED", "DUE (UTC)")
    # an OLA's or a UC's clock says whose it is: "ola:2nd line resolution"
    table = [header] + [tuple(map(printable, (
        row["key"], row["source"], printable(redact(row["customer"] or "-"))[:18], row["priority"] or "-",  # masked before cut
        ("" if row["agreement"] == "sla" else f"{row['agreement']} ") + row["metric"] + (f"#{row['cycle']}" if row["cycle"] > 1 else ""),
        row["state"] + (" (at risk)" if row["at_risk"] else "") + (" (closed)" if row["stopped_at"] else ""),
        format_duration(row["target_seconds"]), format_duration(row["elapsed_seconds"]), (row["due_at"] or "")[:16].replace("T", " "),
    ))) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for line in table:
        _say("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _print_last_run(run: dict[str, Any]) -> None:
    """The last pipeline run did not end well: what each source said (a source that refused every
    write, a field the helpdesk will not take), so `status` shows it after the cron run's log is gone."""
    ended = (run["finished_at"] or run["started_at"] or "")[:16].replace("T", " ")
    _say(f"Last run: {printable(run['command'])} at {ended} UTC ended {run['status']} (exit {run['exit_code']}):")
    errors = [(name, doc.get("error")) for name, doc in sorted(run["sources"].items()) if isinstance(doc, dict) and doc.get("error")]
    for name, error in errors:
        _say(f"  {printable(name)}: {printable(redact(str(error)))[:300]}")
    if not errors and run.get("error"):
        _say(f"  {printable(redact(str(run['error'])))[:300]}")
    _say()


def _print_refusals(refusals: list[dict[str, Any]]) -> None:
    """Write-backs the helpdesk refused or did not keep, not written yet: what, why, when tried again."""
    _say(f"Refused write-backs ({len(refusals)}), retried once the settings or the ticket change, or at RETRY:")
    for row in refusals[:20]:
        retry = (row["retry_at"] or "")[:16].replace("T", " ") or "next run"
        _say(f"  {printable(row['key'])}  {printable(row['item'])}  x{row['refusals'] or 1}  retry {retry}: "
             f"{printable(redact(row['reason'] or 'no reason given'))[:200]}")
    if len(refusals) > 20:
        _say(f"  ... and {len(refusals) - 20} more (status --json lists them all)")
    _say()


def _learn_secrets(config: Config) -> None:
    """Resolve what secrets are in reach, so that one a helpdesk echoed into a ticket is masked.

    ``status`` sends nothing and needs none: a secret that is not set is no error here.
    """
    for name in config.sources:
        with suppress(ConfigError):
            config.source_secret(name)


def _policies_by_name(config: Config) -> dict[str, Policy]:
    """The config's policies by name, for the terms a stored clock names (none if they cannot be built)."""
    try:
        return {policy.name: policy for policy in build_policies(config)}
    except (ValueError, ConfigError):
        return {}


def _terms(row: dict[str, Any], policies: dict[str, Policy]) -> dict[str, Any]:
    """The terms a stored clock was judged by, with their dates as the config gives them."""
    policy = policies.get(row["policy"])
    current = policy is not None and policy.version == row["policy_version"]
    return {"policy": row["policy"], "version": row["policy_version"],
            # midnight of the config's date in the calendar's zone, with its offset
            "effective_from": _iso_or_none(policy.effective_from) if current and policy else None,
            "effective_to": _iso_or_none(policy.effective_to) if current and policy else None,
            "in_config": "current" if current else ("another version" if policy is not None else "gone")}


def _iso_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _clock_doc(row: dict[str, Any], policies: dict[str, Policy]) -> dict[str, Any]:
    """A stored clock as `status TICKET --json` gives it: its spans and attribution decoded, its terms."""
    return {**row, "pauses": json.loads(row["pauses"] or "[]"), "attribution": json.loads(row["attribution"] or "{}"),
            "terms": _terms(row, policies)}


def _timeline(store: Store, wanted: str, as_json: bool, policies: dict[str, Policy]) -> None:
    from bridge.engine.evaluator import status_segments

    matches = store.find_tickets(wanted)
    if not matches:
        raise click.UsageError(f"no ticket {wanted!r} in the store (use an id such as zendesk-prod:123 or a key such as #123)")
    if len(matches) > 1:
        raise click.UsageError(f"{wanted!r} names tickets in several sources: {', '.join(map(printable, matches))}; use the id")
    [(ticket, events)] = store.load(matches)
    clocks = [_clock_doc(row, policies) for row in store.clock_rows(ticket.id)]
    changes = store.verdict_changes(ticket.id)
    segments = status_segments(ticket, events)
    if as_json:
        _say(json.dumps({"ticket": {"id": ticket.id, "key": ticket.key, "title": ticket.title, "status": ticket.status,
                                    "priority": ticket.priority, "customer": ticket.customer},
                         "events": [{"at": e.at.isoformat(), "kind": e.kind, "from": e.from_value, "to": e.to_value} for e in events],
                         "statuses": [{"from": at.isoformat(), "status": s} for at, s in segments],
                         "clocks": clocks, "verdict_changes": changes}, indent=2, default=str))
        return
    p = printable
    _say(f"{p(ticket.key)} ({p(ticket.id)}) {p(ticket.title)}")
    _say(f"  status {p(ticket.status)}, priority {p(ticket.priority or '-')}, customer {p(ticket.customer or '-')}")
    _say("Events:")
    for event in events:
        change = f" {p(event.from_value or '-')} -> {p(event.to_value)}" if event.kind in ("status", "priority", "group") else ""
        _say(f"  {event.at:%Y-%m-%d %H:%M} {p(event.kind)}{change}")
    _say("Statuses:")
    for at, status_name in segments:
        _say(f"  from {at:%Y-%m-%d %H:%M} {p(status_name)}")
    _say("Clocks:" if clocks else "Clocks: none (no agreement judges this ticket, or it was not evaluated yet)")
    agreement = None
    for clock in clocks:
        if clock["agreement"] != agreement:
            agreement = clock["agreement"]
            _say(f"  {_agreement_title(agreement)}:")
        for line in _clock_lines(clock):
            _say(line)
    if changes:
        _say("Verdict changes (oldest first):")
        for verdict in changes:
            _say(_wrapped(f"  {_when(verdict['changed_at'])}  {_clock_name(verdict)}: {_verdict(verdict, 'before')} -> "
                          f"{_verdict(verdict, 'after')}: {p(verdict['why'])}", indent=6))


STATUS_WIDTH = 100  # `status TICKET` keeps its lines to this many columns (a long name wraps)
PAUSES_SHOWN = 10


def _wrapped(line: str, *, indent: int) -> str:
    return textwrap.fill(line, STATUS_WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False)


def _when(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")


def _agreement_title(agreement: str) -> str:
    kind, _, scope = agreement.partition(":")
    if kind == "ola":
        return f"OLA of team {printable(scope)}"
    if kind == "uc":
        return f"Underpinning contract with {printable(scope)}"
    return "SLA (the customer's)" if kind == "sla" else printable(agreement)


def _clock_name(row: dict[str, Any]) -> str:
    return ("" if row["agreement"] == "sla" else f"{printable(row['agreement'])} ") + f"{printable(row['metric'])}#{row['cycle']}"


def _verdict(change: dict[str, Any], side: str) -> str:
    state = change[f"{side}_state"]
    if state is None:
        return "gone"
    target = change[f"{side}_target"]
    return f"{printable(state)}" + (f" (target {format_duration(target)})" if target is not None else "")


def _clock_lines(c: dict[str, Any]) -> list[str]:
    """One clock: where it stands, then why: what started, paused and stopped it, the terms, and
    for an SLA clock where its time went."""
    p = printable
    stands = (f"    {p(c['metric'])}#{c['cycle']}: {p(c['state'])}{' (at risk)' if c['at_risk'] else ''}, "
              f"{format_duration(c['elapsed_seconds'])} of {format_duration(c['target_seconds'])}"
              + (f", paused {format_duration(c['paused_seconds'])}" if c["paused_seconds"] else ""))
    if c["breached_at"]:
        stands += f", breached {_when(c['breached_at'])}"
    elif c["stopped_at"] is None:
        stands += f", due {_when(c['due_at'])}"
    lines = [_wrapped(stands, indent=6)]
    lines.append(_wrapped(f"      started {_when(c['started_at'])}" + (f" ({p(c['started_by'])})" if c["started_by"] else ""), indent=8))
    for start, end in c["pauses"][:PAUSES_SHOWN]:
        lines.append(f"      paused {_when(start)} -> {_when(end)}")
    if len(c["pauses"]) > PAUSES_SHOWN:
        lines.append(f"      ... and {len(c['pauses']) - PAUSES_SHOWN} more pauses (status TICKET --json lists them all)")
    if c["stopped_at"] is None:
        lines.append("      running" + (" (paused now)" if c["state"] == "paused" else ""))
    else:
        lines.append(_wrapped(f"      stopped {_when(c['stopped_at'])}" + (f" ({p(c['stopped_by'])})" if c["stopped_by"] else ""),
                              indent=8))
    terms = c["terms"]
    said = f"      terms: {p(terms['policy'])} version {p(terms['version'])}"
    if terms["in_config"] == "current":
        # the config's dates (midnight in the calendar's zone); "until" is exclusive, as in the config
        dates = [f"in force from {terms['effective_from'][:10]}" if terms["effective_from"] else "",
                 f"until {terms['effective_to'][:10]}" if terms["effective_to"] else ""]
        said += "".join(f", {part}" for part in dates if part)
    else:
        said += " (the config now has another version)" if terms["in_config"] == "another version" else " (no longer in the config)"
    lines.append(_wrapped(said, indent=8))
    if c["kind"] == "sla" and c["attribution"]:
        # the teams in the order they held the ticket, then the waits
        shares = sorted(c["attribution"].items(), key=lambda share: ("paused", "third_party").index(share[0]) + 1
                        if share[0] in ("paused", "third_party") else 0)
        parts = ", ".join(f"{p(_share(key))} {format_duration(seconds)}" for key, seconds in shares)
        lines.append(_wrapped(f"      time: {parts}", indent=8))
    return lines


def _share(key: str) -> str:
    return {"third_party": "third party"}.get(key, key)


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
        _say(text)
        for box in running.values():  # the sandbox's own made-up token, shown on purpose
            click.echo(f"# export {box.secret_env}={box.sandbox.token}", err=True)
        _say("# sandboxes running on loopback; Ctrl-C to stop", err=True)
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
        _say(f"Seeded {tickets:,} tickets for ACME Ltd, Globex and Initech in: " + ", ".join(running))
        report = _run("sync", PHASES)
        if report.exit_code:  # a source failed: say so, as sync would, and stop here
            _finish(report, dry_run=False, as_json=False)
        total = report.total
        _say(f"sync: {total('tickets_pulled'):,} tickets pulled, {total('clocks_changed'):,} clocks computed, "
             f"{total('writes_sent'):,} tickets written back ({total('notes_sent'):,} breach notes) in {report.seconds:.1f}s\n")
        _say("Worst clocks now (sla-bridge status):")
        click.get_current_context().invoke(status, ticket=None, limit=12, as_json=False)
        with state.open_existing_store() as store:
            told = agreements_told(store.db.query(
                "select agreement, policy, state, count(*) as count from sla_clocks group by agreement, policy, state"))
        if told:
            _say("\nThe teams' OLAs, and Globex's terms before and after its renegotiation:")
            for line in told:
                _say(printable(line))
        _say("\nWritten back to the helpdesk:")
        for name, box in running.items():
            summary = box.sandbox.writeback_summary()
            writes = connector_class(box.system).writes
            if writes.tags:
                verb = "tagged" if writes.tag_word == "tags" else "labelled"
                marked = f"{summary.tickets_tagged:,} tickets {verb} sla_at_risk / sla_breached"
            else:
                marked = f"{summary.tickets_tagged:,} tickets with their SLA status field set"
            _say(f"  {name}: {marked}, {len(summary.notes):,} internal notes")
            if summary.notes:
                example = next((n for n in summary.notes if "Service credit" in n), summary.notes[0])
                _say("  one of the notes an agent now sees:")
                for line in example.splitlines():
                    _say(f"    | {printable(line)}")
    _say(f"\nThe config and store are in {folder}. The sandboxes have stopped; to explore the results:")
    _say(f"  sla-bridge --config {config_path} status")
    _say(f"  sla-bridge --config {config_path} status <ticket id from the table>")


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
        _say(json.dumps([{"id": f.id, "title": f.title, "type": f.type, "options": f.options} for f in found], indent=2))
        return
    rows = [(printable(f.id), printable(f.type), printable(f.title), [printable(option) for option in f.options]) for f in found]
    width = max([len(field_id) for field_id, *_ in rows] + [2])
    _say(f"{'ID'.ljust(width)}  {'TYPE'.ljust(12)}  TITLE (options)")
    for field_id, kind, title, options in rows:
        listed = f" ({', '.join(options)})" if options else ""
        _say(f"{field_id.ljust(width)}  {kind.ljust(12)}  {title}{listed}")


def _print_summary(summary: dict[str, Any]) -> None:
    echo, p = _say, printable
    echo(f"Config {p(summary['config'])} is valid.")
    echo(f"Store: {p(summary['store'])}")
    echo(f"Sources ({len(summary['sources'])}):")
    for source in summary["sources"]:
        auth = source["auth"]
        account = f" of {p(auth['account'])}" if auth["account"] else ""
        echo(
            f"  {p(source['name'])}: {p(source['system'])} at {p(source['url'])}; {p(auth['kind'].replace('_', ' '))}{account} "
            f"from {p(auth['secret_from'])}; write-back {'on' if source['writeback'] else 'off'}"
        )
    echo(f"Calendars ({len(summary['calendars'])}, plus the built-in 24x7):")
    for cal in summary["calendars"]:
        extras = [f"{cal['holidays']} holiday(s)"]
        if cal["public_holidays"]:
            extras.append(f"public holidays {p(cal['public_holidays'])}")
        if cal["overrides"]:
            extras.append(f"{cal['overrides']} override(s)")
        echo(f"  {p(cal['name'])}: {p(cal['timezone'])}, {cal['weekly_hours']:g} h/week, {', '.join(extras)}")
    echo(f"Policies ({len(summary['policies'])}; the first sla that matches a ticket applies, and every ola and uc that does):")
    for index, policy in enumerate(summary["policies"], 1):
        targets = "; ".join(
            f"{p(metric)} " + ", ".join(f"{p(priority)} {p(d)}" for priority, d in per.items()) for metric, per in policy["targets"].items()
        )
        credit = f"; credits in {p(policy['credits'])}" if policy["credits"] else ""
        about = [f"calendar {p(policy['calendar'])}"]
        if policy.get("kind") == "ola":
            about.insert(0, f"OLA of team {p(policy['team'])}")
        elif policy.get("kind") == "uc":
            about.insert(0, f"underpinning contract with {p(policy['third_party'])}")
        if policy.get("preset"):
            about.append(f"preset {p(policy['preset'])}")
        if policy.get("extends"):
            about.append(f"extends {p(policy['extends'])}")
        if policy.get("effective_from") or policy.get("effective_to"):
            about.append(f"in force {p(policy.get('effective_from') or '...')} to {p(policy.get('effective_to') or '...')}")
        echo(f"  {index}. {p(policy['name'])} ({', '.join(about)}): {targets}{credit}")
    for name, result in summary.get("online", {}).items():
        if "error" in result:
            echo(f"Source {p(name)}: FAILED: {p(result['error'])}")
            continue
        who = f"authenticated as {p(result['account'])} ({result['requests']} request(s))"
        if not result.get("problems"):
            echo(f"Source {p(name)}: credentials OK, {who}")
            continue
        echo(f"Source {p(name)}: {who}, but {len(result['problems'])} problem(s) for what the config asks of it:")
        for problem in result["problems"]:
            echo(f"  - {p(problem)}")


def main() -> None:
    cli(prog_name="sla-bridge")


if __name__ == "__main__":
    main()
