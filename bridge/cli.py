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
import tempfile
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from bridge import __version__
from bridge.calendar import parse_interval
from bridge.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config, load_config
from bridge.credentials import redact
from bridge.durations import format_duration
from bridge.errors import ConfigError, SlaBridgeError, SourceError
from bridge.logs import configure_logging
from bridge.store import Store

__all__ = ["cli", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
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
        except Exception as error:  # a bug: say so plainly, keep the traceback for -v
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
    _require_secrets(config)
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


def _require_secrets(config: Config) -> None:
    """Every source's secret must be readable before anything is sent: one error listing all."""
    problems: list[str] = []
    for name in config.sources:
        try:
            config.source_secret(name)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems, file=str(config.path) if config.path else None)


def _summarise(config: Config, state: AppState) -> dict[str, Any]:
    sources = []
    for name, source in config.sources.items():
        auth = source.auth
        secret_from = getattr(auth, f"{auth.kind}_env") or getattr(auth, f"{auth.kind}_file")
        where = "env" if getattr(auth, f"{auth.kind}_env") else "file"
        sources.append(
            {
                "name": name,
                "system": source.system,
                "url": source.url,
                "auth": {"kind": auth.kind, "account": auth.principal, "secret_from": f"{where} {secret_from}"},
                "writeback": source.writeback.enabled,
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
    from connectors import open_connector  # the CLI is the edge that wires connectors in

    connector = None
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
    from connectors import open_connector

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
