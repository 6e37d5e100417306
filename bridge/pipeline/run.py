"""One locked run of the pipeline, as cron runs it, recorded in the store's ``runs`` table.

Safe to run every few minutes and to kill at any instant (each phase's module says how). One
source failing (bad credentials, a vendor down past the retry bound, an answer its connector did
not expect) is recorded and the others go on; the run then exits 3. A source that failed is
never written to in that run: its data may be incomplete.

The run is bounded in time (``http.max_run``): past it each source stops cleanly
(:class:`~bridge.errors.RunBoundReached`, exit 3) and the next run resumes from the saved cursors.
Its ``runs`` row always says how it ended: ``ok``, ``partial``, ``failed``, ``interrupted``
(Ctrl-C 130, SIGTERM 143, SIGHUP 129), or ``killed``, written by the next run for a run whose
process died without a word. A store deleted or replaced while the run used it fails the run
(:class:`~bridge.errors.StoreReplaced`): what it wrote went into a file nobody will read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bridge.config import Config
from bridge.edges.lock import RunLock
from bridge.edges.store import Store
from bridge.engine.policy import Policy, build_policies
from bridge.errors import ConfigError, FatalSourceError, SlaBridgeError, SourceError, Terminated
from bridge.framework.contract import Connector
from bridge.model import WritebackPlan
from bridge.pipeline.connect import open_connector
from bridge.pipeline.evaluate import evaluate_source
from bridge.pipeline.pull import pull_source
from bridge.pipeline.push import Push
from bridge.pipeline.report import RunReport, SourceStats, stats_docs

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "PHASES", "Pipeline", "exit_code_of", "run_pipeline"]

log = logging.getLogger("sla_bridge.run")
EXIT_OK, EXIT_FAILURE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 3, 130
PHASES = ("pull", "evaluate", "push")
Progress = Callable[[str, int], None]


class Pipeline:
    """The phases over one store. ``transports`` lets tests and the demo route a source to a sandbox."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        now: datetime,
        run_id: int,
        transports: Mapping[str, httpx.BaseTransport] | None = None,
        progress: Progress | None = None,
        run_deadline: float | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.run_id = run_id
        self.run_deadline = run_deadline  # a time.monotonic() instant: the run's time bound
        self.transports = dict(transports or {})
        self.progress = progress
        self.stats: dict[str, SourceStats] = {}
        self._connectors: dict[str, Connector] = {}
        self._policies: list[Policy] | None = None

    def stat(self, source: str) -> SourceStats:
        return self.stats.setdefault(source, SourceStats())

    def failed(self, source: str) -> bool:
        return self.stat(source).error is not None

    def connector(self, source: str) -> Connector:
        if source not in self._connectors:
            self._connectors[source] = open_connector(self.config, source, transport=self.transports.get(source),
                                                      run_deadline=self.run_deadline)
        return self._connectors[source]

    def policies(self) -> list[Policy]:
        if self._policies is None:
            self._policies = build_policies(self.config)
        return self._policies

    @contextmanager
    def _isolated(self, source: str) -> Iterator[None]:
        """A source's failure is recorded and ends that source's phase; the other sources go on."""
        try:
            yield
        except SourceError as error:
            self._fail(source, error)
        except SlaBridgeError:
            raise  # the store or the config: every source is affected
        except Exception as error:
            log.info("source %r: unexpected %s", source, type(error).__name__, exc_info=True)
            self._fail(source, FatalSourceError(
                f"unexpected {type(error).__name__}: {error} (run with -v for the traceback)", source=source))

    def _fail(self, source: str, error: SourceError) -> None:
        stats = self.stat(source)
        stats.error, stats.error_class = str(error), type(error).__name__
        log.info("%s", error)  # the CLI prints it once, as an Error line

    def pull(self, sources: Sequence[str]) -> None:
        for source in sources:
            with self._isolated(source):
                pull_source(self.store, self.connector(source), now=self.now, stats=self.stat(source), progress=self.progress)
        self.store.check_intact()

    def evaluate(self, sources: Sequence[str]) -> None:
        for source in sources:
            evaluate_source(self.store, source, self.policies(), now=self.now, run_id=self.run_id, stats=self.stat(source))
        self.store.check_intact()

    def push(self, sources: Sequence[str], *, dry_run: bool = False) -> dict[str, list[WritebackPlan]]:
        contracts = {policy.name: policy.contract for policy in self.policies()}
        planned: dict[str, list[WritebackPlan]] = {}
        for source in sources:
            if self.failed(source):
                continue  # its data is stale this run; do not write from it
            settings = self.config.sources[source].writeback
            planned[source] = []
            if not settings.enabled:
                continue  # nothing may be written: no need to open its connector
            with self._isolated(source):
                push = Push(self.store, self.connector(source), settings, contracts, run_id=self.run_id, stats=self.stat(source))
                planned[source] = push.run(dry_run=dry_run)
        self.store.check_intact()
        return planned

    def close(self) -> None:
        for name, connector in self._connectors.items():
            self.stat(name).requests += connector.http.requests_made
            self.stat(name).unmapped = connector.unmapped()
            connector.http.client.close()
        self._connectors.clear()


def run_pipeline(
    config: Config,
    command: str,
    phases: Sequence[str],
    sources: Sequence[str] = (),
    *,
    store_path: Path,
    dry_run: bool = False,
    now: datetime | None = None,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Lock the store, run ``phases`` over ``sources`` (default: all), record the run."""
    config.require_sources()  # an empty config must not create a store and report success
    names = list(sources) or sorted(config.sources)
    unknown = [name for name in names if name not in config.sources]
    if unknown:
        raise ConfigError(f"--source {unknown[0]!r}: no such source; known: {', '.join(sorted(config.sources)) or 'none'}",
                          file=str(config.path) if config.path else None)
    if "pull" in phases or "push" in phases:
        config.require_secrets(names)
    began = time.monotonic()
    run_deadline = began + config.http.max_run  # every source stops cleanly past it (RunBoundReached)
    label = command + (" --dry-run" if dry_run else "")
    if "pull" not in phases:
        # Only a pull brings data into a store: evaluate or push on a store that is not there (a
        # typo in --db) says so instead of creating an empty one and reporting success.
        Store.open(store_path, create=False).close()
    with RunLock(store_path, command), Store.open(store_path) as store:
        reaped = store.reap_dead_runs()
        if reaped:
            log.info("%d earlier run(s) had been left 'running' by a process that died; recorded as 'killed'", reaped)
        run_id = store.start_run(label)
        pipeline = Pipeline(config, store, now=now or datetime.now(timezone.utc), run_id=run_id, transports=transports,
                            progress=progress, run_deadline=run_deadline)
        planned: dict[str, list[WritebackPlan]] = {}
        try:
            if "pull" in phases:
                pipeline.pull(names)
            if "evaluate" in phases:
                pipeline.evaluate(names)
            if "push" in phases:
                planned = pipeline.push(names, dry_run=dry_run)
            store.check_intact()  # the end recorded in a file nobody reads would be a success nobody had
        except BaseException as error:
            pipeline.close()
            store.finish_run(run_id, exit_code=exit_code_of(error), sources=stats_docs(pipeline.stats),
                             error=f"{type(error).__name__}: {error}")
            raise
        pipeline.close()
        stats = {name: pipeline.stat(name) for name in names}
        report = RunReport(command, EXIT_PARTIAL if any(s.error for s in stats.values()) else EXIT_OK, stats, planned)
        store.finish_run(run_id, exit_code=report.exit_code, sources=report.source_docs())
    report.seconds = round(time.monotonic() - began, 2)
    return report


def exit_code_of(error: BaseException) -> int:
    """The exit code a run that ended in ``error`` ends with, as the CLI exits and the store records."""
    if isinstance(error, Terminated):
        return error.exit_code  # 143 for SIGTERM, 129 for SIGHUP
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, SlaBridgeError):
        return error.exit_code
    return EXIT_FAILURE
