"""The local SQLite store: normalised tickets, their history, clocks, write-back journal, runs.

Rules it keeps (DESIGN.md, "The store"):

- A page of records and the cursor that follows it are committed in one transaction, so a crash
  can repeat a page but never skip one.
- Upserts by primary key, so re-reading overlapping pages is harmless.
- Schema changes are named migrations (``sqlite_utils.Migrations``), applied on open.
- WAL mode; the file is created readable by its owner only; secrets are never stored (every text
  that could carry one passes through :func:`bridge.edges.credentials.redact`).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlite_utils
from sqlite_utils.migrations import Migrations

from bridge.edges.credentials import redact
from bridge.engine.evaluator import Clock
from bridge.errors import StoreError, StoreReplaced
from bridge.model import Page, QuarantinedRecord, Ticket, TicketEvent, from_iso, to_iso

__all__ = ["AgentSpan", "PageCounts", "Store", "clock_from_row", "clock_row", "migrations"]

migrations = Migrations("sla-bridge")
AgentSpan = tuple[str, datetime | None, datetime | None]


@migrations(name="0001_initial_schema")
def _initial_schema(db: sqlite_utils.Database) -> None:
    db.table("tickets").create(
        {
            "id": str,
            "source": str,
            "system": str,
            "external_id": str,
            "key": str,
            "url": str,
            "title": str,
            "status": str,
            "status_raw": str,
            "priority": str,
            "priority_raw": str,
            "customer": str,
            "requester": str,
            "assignee": str,
            "group": str,
            "service": str,
            "type": str,
            "created_at": str,
            "updated_at": str,
            "resolved_at": str,
            "fields": str,
            "version": str,
            "pulled_at": str,
        },
        pk="id",
        not_null={"source", "system", "external_id", "status", "created_at", "updated_at"},
    )
    db.table("tickets").create_index(["source", "updated_at"])
    db.table("tickets").create_index(["customer"])
    db.table("ticket_events").create(
        {
            "ticket_id": str,
            "event_id": str,
            "kind": str,
            "at": str,
            "from_value": str,
            "to_value": str,
            "author": str,
        },
        pk=("ticket_id", "event_id"),
        not_null={"kind", "at"},
    )
    db.table("ticket_events").create_index(["ticket_id", "at"])
    db.table("sla_clocks").create(
        {
            "ticket_id": str,
            "metric": str,
            "cycle": int,
            "policy": str,
            "policy_version": str,
            "state": str,
            "target_seconds": int,
            "elapsed_seconds": int,
            "paused_seconds": int,
            "started_at": str,
            "stopped_at": str,
            "due_at": str,
            "breached_at": str,
            "at_risk": int,
            "evaluated_at": str,
        },
        pk=("ticket_id", "metric", "cycle"),
    )
    db.table("sla_clocks").create_index(["state"])
    db.table("credits").create(
        {
            "id": str,
            "customer": str,
            "period": str,
            "kind": str,
            "ticket_id": str,
            "metric": str,
            "cycle": int,
            "policy": str,
            "percent": float,
            "amount": float,
            "currency": str,
            "reason": str,
            "computed_at": str,
        },
        pk="id",
    )
    db.table("credits").create_index(["customer", "period"])
    db.table("writebacks").create(
        {
            "ticket_id": str,
            "item": str,
            "value": str,
            "state": str,
            "run_id": int,
            "updated_at": str,
        },
        pk=("ticket_id", "item"),
    )
    db.table("sync_state").create(
        {"source": str, "stream": str, "cursor": str, "updated_at": str},
        pk=("source", "stream"),
    )
    db.table("runs").create(
        {
            "id": int,
            "command": str,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "exit_code": int,
            "pid": int,
            "sources": str,
            "error": str,
        },
        pk="id",
    )
    db.table("quarantine").create(
        {
            "source": str,
            "record_id": str,
            "reason": str,
            "raw": str,
            "first_seen": str,
            "last_seen": str,
            "times": int,
        },
        pk=("source", "record_id"),
    )


@migrations(name="0002_ticket_tags")
def _ticket_tags(db: sqlite_utils.Database) -> None:
    # Write-back adds and removes its own tags; it needs the ticket's others to leave them be.
    db.table("tickets").add_column("tags", str)


@migrations(name="0003_writeback_pending")
def _writeback_pending(db: sqlite_utils.Database) -> None:
    # `value` stays the last confirmed push; `pending` holds an intent until it is confirmed, so a
    # crash or an unknown outcome never loses track of what is on the ticket.
    db.table("writebacks").add_column("pending", str)


@migrations(name="0004_pull_sequence")
def _pull_sequence(db: sqlite_utils.Database) -> None:
    # Which run last pulled (or received history for) a ticket: the evaluation mark compares run
    # numbers, which only go up, where wall-clock times can step back (NTP, a resumed VM).
    db.table("tickets").add_column("pulled_run", int)
    db.table("tickets").create_index(["source", "id"])
    db.table("tickets").create_index(["source", "pulled_run"])


@migrations(name="0005_journal_fields_by_id")
def _journal_fields_by_id(db: sqlite_utils.Database) -> None:
    # The journal keeps each field by its target field id ("field:custom_field:123"), not one
    # "field" item per ticket. The id of an old "field" row is not known here: forgetting it
    # only means the (idempotent) status field is sent once more.
    db.execute("delete from writebacks where item = 'field'")


@migrations(name="0006_hardening")
def _hardening(db: sqlite_utils.Database) -> None:
    # Who was an agent when (bridge.framework.roster): since '' is "before this store looked".
    db.table("agent_spans").create({"source": str, "user": str, "since": str, "until": str}, pk=("source", "user", "since"))
    # A refusal is kept with why, what it depended on (the config and the ticket as they were),
    # and when to try again: a refusal whose cause may have changed is retried, not kept for ever.
    for column in ("reason", "cause", "retry_at"):
        db.table("writebacks").add_column(column, str)
    db.table("writebacks").add_column("refusals", int)
    # Markers seen on tickets are ticket_events of kind 'note'; push looks them up per ticket
    # through the (ticket_id, at) index: an index of their own would cost every pulled event.


# Every column that holds an instant written by to_iso, and the cursors (a watermark's JSON carries one).
_ISO_COLUMNS = {
    "tickets": ("created_at", "updated_at", "resolved_at", "pulled_at"),
    "ticket_events": ("at",),
    "sla_clocks": ("started_at", "stopped_at", "due_at", "breached_at", "evaluated_at"),
    "credits": ("computed_at",),
    "writebacks": ("updated_at", "retry_at"),
    "sync_state": ("updated_at",),
    "runs": ("started_at", "finished_at"),
    "quarantine": ("first_seen", "last_seen"),
    "agent_spans": ("since", "until"),
}
_SHORT_YEAR = re.compile(r"(?<![0-9])([0-9]{1,3})(-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)")


@migrations(name="0007_iso_years_padded")
def _iso_years_padded(db: sqlite_utils.Database) -> None:
    # to_iso once wrote years below 1000 unpadded (glibc's %Y): `start = "0001-01-01"` saved the
    # history mark '1-01-01T00:00:00.000Z', which fromisoformat cannot read, and every later run
    # failed until the store was edited by hand. Pad every such instant, wherever it was written.
    short = " or ".join(f"{{column}} glob '{digits}-[0-9][0-9]-[0-9][0-9]T*'" for digits in ("[0-9]", "[0-9]" * 2, "[0-9]" * 3))
    for table, columns in _ISO_COLUMNS.items():
        for column in columns:
            quoted = f'"{column}"'
            db.execute(f"update {table} set {quoted} = substr('000', 1, 5 - instr({quoted}, '-')) || {quoted} "
                       f"where {short.format(column=quoted)}")
    for source, stream, cursor in db.execute("select source, stream, cursor from sync_state where cursor is not null").fetchall():
        padded = _SHORT_YEAR.sub(lambda found: f"{int(found[1]):04d}{found[2]}", cursor)
        if padded != cursor:
            db.execute("update sync_state set cursor = ? where source = ? and stream = ?", [padded, source, stream])


@migrations(name="0008_agreements")
def _agreements(db: sqlite_utils.Database) -> None:
    # Several agreements judge one ticket (its customer's sla, an ola per team, a uc per third
    # party), each with its own clocks: the agreement joins the key, and what the clocks were
    # judged by (why each started and stopped, the spans left out, where an sla clock's time went)
    # is kept. SQLite cannot change a primary key in place: the table is copied into a new one.
    columns = ("ticket_id", "metric", "cycle", "policy", "policy_version", "state", "target_seconds", "elapsed_seconds",
               "paused_seconds", "started_at", "stopped_at", "due_at", "breached_at", "at_risk", "evaluated_at")
    db.execute("alter table sla_clocks rename to sla_clocks_before_agreements")
    db.execute("drop index if exists idx_sla_clocks_state")
    db.table("sla_clocks").create(
        {
            "ticket_id": str, "agreement": str, "kind": str, "metric": str, "cycle": int, "policy": str, "policy_version": str,
            "state": str, "target_seconds": int, "elapsed_seconds": int, "paused_seconds": int, "started_at": str,
            "stopped_at": str, "due_at": str, "breached_at": str, "at_risk": int, "evaluated_at": str,
            "started_by": str, "stopped_by": str, "pauses": str, "attribution": str,
        },
        pk=("ticket_id", "agreement", "metric", "cycle"),
        not_null={"agreement", "kind"},
        defaults={"agreement": "sla", "kind": "sla"},
    )
    listed = ", ".join(columns)
    db.execute(f"insert into sla_clocks ({listed}) select {listed} from sla_clocks_before_agreements")
    db.execute("drop table sla_clocks_before_agreements")
    db.table("sla_clocks").create_index(["state"])
    # A verdict a re-evaluation changes (late history, new terms) is evidence: kept, with why.
    db.table("verdict_changes").create(
        {
            "id": int, "ticket_id": str, "agreement": str, "metric": str, "cycle": int, "changed_at": str, "run_id": int,
            "before_state": str, "after_state": str, "before_target": int, "after_target": int, "before_policy": str,
            "after_policy": str, "before_version": str, "after_version": str, "why": str,
        },
        pk="id",
        not_null={"ticket_id", "agreement", "metric", "cycle", "before_state"},
    )
    db.table("verdict_changes").create_index(["ticket_id", "id"])


@dataclass(frozen=True, slots=True)
class PageCounts:
    tickets: int
    events: int
    quarantined: int


def _now() -> str:
    return to_iso(datetime.now(timezone.utc))


@functools.cache
def known_migrations() -> list[str]:
    """The names of the migrations this version knows, oldest first (all are pending on an empty database)."""
    return [migration.name for migration in migrations.pending(sqlite_utils.Database(memory=True))]


# -- what the store says when the disk or the file system says no ----------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def _store_errors(path: Path | None) -> Iterator[None]:
    """Turn what SQLite and the OS say about the store's file into a :class:`StoreError` that says
    what is wrong and what to do; anything else (a bug) goes on as it is."""
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        problem = _store_problem(error, path)
        if problem is None:
            raise
        raise problem from error


def _guarded(method: Callable[Concatenate[Store, _P], _R]) -> Callable[Concatenate[Store, _P], _R]:
    """A store method whose failures of the disk or the file system say so (see :func:`_store_errors`)."""

    @functools.wraps(method)
    def guarded(store: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _store_errors(store.path):
            return method(store, *args, **kwargs)

    return guarded


_AGAIN = "; the next run repeats what this one could not record"


def _store_problem(error: BaseException, path: Path | None) -> StoreError | None:
    """The StoreError for a failure of the store's file, or None for one that is not about it."""
    where = f"the store {path}" if path is not None else "the in-memory store"
    name = str(getattr(error, "sqlite_errorname", "") or "")
    code = error.errno if isinstance(error, OSError) else None
    text = str(error)
    filename = error.filename if isinstance(error, OSError) else None
    if name.startswith("SQLITE_READONLY") or "readonly database" in text or code in (errno.EROFS, errno.EACCES, errno.EPERM):
        # SQLITE_READONLY_DIRECTORY: the folder, where the -wal and -shm files must be created
        return StoreError(_read_only(path, where, filename, directory=name == "SQLITE_READONLY_DIRECTORY"))
    if name == "SQLITE_FULL" or "database or disk is full" in text or code in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"the disk holding {where} is full (or this user's quota is spent): the change being saved was rolled back, "
            f"so nothing is half-written. Free space on that file system, then run again{_AGAIN}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return StoreError(
            f"{where} stayed locked by another program for more than 30 s (an sqlite3 shell or a backup holding a "
            f"transaction open?): close it, then run again{_AGAIN}")
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text or code == errno.EIO:
        return StoreError(
            f"reading or writing {where} failed at the disk ({text}): check the disk and its file system (the kernel log "
            f"says more), then run again{_AGAIN}")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text:
        return StoreError(
            f"{path if path is not None else where} is not a usable sla-bridge store ({text}): restore it from a backup, or "
            "move it aside and let the next sync build a new one")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database file" in text:
        return StoreError(
            f"{where} cannot be opened ({text}): check that its folder exists and that this user may read and write "
            "there (SQLite keeps -wal and -shm files next to the store)")
    return None


def _read_only(path: Path | None, where: str, filename: object, *, directory: bool) -> str:
    """What is read-only about the store, as far as can be told, and what to do."""
    elsewhere = "or point store.path / --db at a place this user can write"
    if path is None:
        return f"{where} cannot be written: {elsewhere.removeprefix('or ')}"
    folder = path.parent
    if not folder.exists():
        return f"the folder {folder} for {where} cannot be created ({filename or 'permission denied'}): create it for this user, {elsewhere}"
    if _mounted_read_only(folder):
        return f"the file system holding {where} is mounted read-only: remount it read-write, {elsewhere}"
    if directory or not os.access(folder, os.W_OK | os.X_OK):
        return (f"the folder {folder} of {where} is read-only for this user, and SQLite keeps the store's -wal and -shm "
                f"files (sla-bridge its lock file) next to it: make the folder writable for the user that runs sla-bridge, {elsewhere}")
    if path.exists() and not os.access(path, os.W_OK):
        return f"{where} is read-only for this user: make it writable for the user that runs sla-bridge (chmod u+w), {elsewhere}"
    if filename and str(filename) != str(path):
        return f"{where} cannot be written ({filename} is not writable for this user): make it writable for this user, {elsewhere}"
    return f"{where} cannot be written (read-only): make it writable for the user that runs sla-bridge, {elsewhere}"


def _mounted_read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _require_writable(path: Path) -> None:
    """A command that writes finds out before its work, not at its first commit."""
    if not os.access(path, os.W_OK):
        raise StoreError(_read_only(path, f"the store {path}", None, directory=False))


def _require_existing(path: Path) -> None:
    """A command that only reads never creates a store: a missing (or empty) file is a mistake to say."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    if info is None or (stat.S_ISREG(info.st_mode) and info.st_size == 0):
        raise StoreError(f"no store at {path}: run `sla-bridge sync` first (it creates the store), or check --db / store.path")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"the store path {path} is not a regular file (a directory?): point store.path or --db at a file")
    _tighten(path)


def _tighten(path: Path) -> None:
    """Make a file of this user's owner-only (one of another user's is theirs to set)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if os.name == "posix" and stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, 0o600)


def _tighten_side_files(path: Path) -> None:
    # SQLite creates the -wal and -shm files with the store's own mode, but ones that already
    # exist (left by a crash, or made while the store was still readable by others) keep theirs:
    # they hold the latest pages of the store, so they are as private as the store itself.
    for suffix in ("-wal", "-shm"):
        _tighten(Path(f"{path}{suffix}"))


class Store:
    """One SQLite file. Open it with :meth:`open`; it is migrated on the way in."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None) -> None:
        self.db = db
        self.path = path
        self.run_id = 0  # the run pulling now: set by start_run
        self._identity = _identity(path)

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        """Open and migrate the store at ``path``.

        ``create=True`` (commands that write: sync, pull, push, evaluate) makes the file, owner-only,
        and its folder if they are missing, and refuses a store this user cannot write before any
        work starts. ``create=False`` (commands that only read: status, reports) creates nothing:
        a missing file is a :class:`StoreError` "no store at PATH", and a read-only store can be
        read. Either way a store written by a newer sla-bridge, or a database of another program,
        is refused untouched.
        """
        target = Path(path)
        connection: sqlite3.Connection | None = None
        try:
            if create:
                target.parent.mkdir(parents=True, exist_ok=True)
                _create_private(target)
                _require_writable(target)
            else:
                _require_existing(target)
            connection = sqlite3.connect(str(target), timeout=30, isolation_level=None)
            store = cls(sqlite_utils.Database(connection), target)
            store._prepare(upgrade=create or os.access(target, os.W_OK))
            _tighten_side_files(target)
        except (OSError, sqlite3.Error) as error:
            if connection is not None:
                connection.close()
            problem = _store_problem(error, target)
            if problem is None:
                generic = "is not a usable sla-bridge store" if isinstance(error, sqlite3.Error) else "cannot be opened"
                problem = StoreError(f"{target} {generic}: {error}")
            raise problem from error
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        return store

    @classmethod
    def memory(cls) -> Store:
        store = cls(sqlite_utils.Database(memory=True), None)
        store._prepare()
        return store

    def _prepare(self, *, upgrade: bool = True) -> None:
        self.db.execute("PRAGMA busy_timeout = 30000")
        pending = self._check_schema()  # before anything writes: a store this version cannot use is left as it is
        if pending and not upgrade:
            raise StoreError(
                f"the store {self.path} was written by an older sla-bridge and needs upgrading, which this user cannot do "
                f"(the file is read-only here): run `sla-bridge sync` as the store's owner once, then read it again")
        if self.path is not None:
            self._enable_wal()
            # In WAL mode NORMAL is crash-safe (the file stays consistent; a power cut can lose the
            # last commits, which the write-back journal's recovery covers) and spares an fsync per
            # commit: 20 ms each here, per journaled write-back.
            self.db.execute("PRAGMA synchronous = NORMAL")
        if pending:
            # Two runs opening a new store at once: the write lock makes the second wait, then
            # find nothing pending (apply re-reads inside the transaction; savepoints nest).
            self.db.execute("BEGIN IMMEDIATE")
            try:
                migrations.apply(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _check_schema(self) -> bool:
        """Refuse a store from a newer sla-bridge (it records migrations this version does not
        know: its tables may mean what this version cannot read, and migrating it would corrupt
        it) and a database of another program; say whether migrations are pending."""
        applied = [migration.name for migration in migrations.applied(self.db)]
        known = known_migrations()
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise StoreError(
                f"the store {self.path} was written by a newer sla-bridge: it records schema migration(s) {', '.join(unknown)}, "
                f"and this version knows up to {known[-1]}. Upgrade sla-bridge to the version that wrote it, or point "
                "store.path / --db at a store this version wrote; nothing was changed in it")
        if not applied:
            foreign = [name for name in self.db.table_names() if name != Migrations.migrations_table and not name.startswith("sqlite_")]
            if foreign:
                listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise StoreError(
                    f"{self.path} is an SQLite database of another program (tables: {listed}), not an sla-bridge store: "
                    "point store.path / --db at an sla-bridge store or at a new file; nothing was changed in it")
        return bool(set(known) - set(applied))

    def _enable_wal(self) -> None:
        # Switching a new file to WAL needs it to itself; SQLite answers "locked" at once, without
        # the busy timeout, when another process is opening it too. Wait for it, bounded.
        for attempt in range(300):
            try:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.db.enable_wal()
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 299:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        self.db.close()

    def check_intact(self) -> None:
        """Raise :class:`StoreReplaced` if the file at ``path`` is no longer the one this store
        opened (deleted, or replaced by a restore, during the run): what was written is lost."""
        if self.path is None:
            return
        now = _identity(self.path)
        if now != self._identity:
            what = "deleted" if now is None else "replaced by another file"
            raise StoreReplaced(
                f"the store {self.path} was {what} while this run was using it: what this run pulled and "
                "wrote went into the old file and is lost. Nothing is wrong with the helpdesk; run again")

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        """One transaction (nested ones are savepoints); a full disk or a read-only store, at any
        statement or at the commit, is a :class:`StoreError` that says so."""
        with _store_errors(self.path), self.db.atomic() as db:
            yield db

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pulling --------------------------------------------------------------------------

    @_guarded
    def save_page(self, source: str, page: Page) -> PageCounts:
        """Upsert a page's records and move the source's cursor, all or nothing."""
        pulled_at = _now()
        with self.db.atomic():
            if page.tickets:
                self.db.table("tickets").upsert_all(({**_ticket_row(t, pulled_at), "pulled_run": self.run_id} for t in page.tickets), pk="id")
            if page.events:
                self.db.table("ticket_events").upsert_all(_event_rows(page.events), pk=("ticket_id", "event_id"))
                # New history changes a ticket's clocks even when the ticket row did not change.
                touched = sorted({e.ticket_id for e in page.events})
                for offset in range(0, len(touched), 500):
                    chunk = touched[offset : offset + 500]
                    self.db.execute(f"update tickets set pulled_run = ? where id in ({','.join('?' * len(chunk))})", [self.run_id, *chunk])
            for record in page.quarantined:
                self._quarantine(record, pulled_at)
            if page.cursor is not None:  # None: this page moves no cursor (the saved one stays)
                self._write_cursor(source, page.stream, page.cursor, pulled_at)
        return PageCounts(len(page.tickets), len(page.events), len(page.quarantined))

    def _write_cursor(self, source: str, stream: str, cursor: str | None, at: str) -> None:
        self.db.table("sync_state").upsert(
            {"source": source, "stream": stream, "cursor": cursor, "updated_at": at}, pk=("source", "stream")
        )

    @_guarded
    def cursor(self, source: str, stream: str = "tickets") -> str | None:
        row = self.db.execute(
            "select cursor from sync_state where source = ? and stream = ?", [source, stream]
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def cursors(self, source: str) -> dict[str, str | None]:
        """Every stream's saved cursor for ``source``."""
        return {row[0]: row[1] for row in self.db.execute("select stream, cursor from sync_state where source = ?", [source])}

    def _quarantine(self, record: QuarantinedRecord, at: str) -> None:
        existing = self.db.execute(
            "select first_seen, times from quarantine where source = ? and record_id = ?",
            [record.source, record.record_id],
        ).fetchone()
        self.db.table("quarantine").upsert(
            {
                "source": record.source,
                "record_id": record.record_id,
                "reason": redact(record.reason),
                "raw": redact(json.dumps(record.raw, default=str, sort_keys=True)),
                "first_seen": existing[0] if existing else at,
                "last_seen": at,
                "times": (existing[1] if existing else 0) + 1,
            },
            pk=("source", "record_id"),
        )

    # -- reading --------------------------------------------------------------------------

    @_guarded
    def ticket(self, ticket_id: str) -> Ticket | None:
        rows = list(self.db.table("tickets").rows_where("id = ?", [ticket_id]))
        return _ticket_from_row(rows[0]) if rows else None

    @_guarded
    def events(self, ticket_id: str) -> list[TicketEvent]:
        rows = self.db.table("ticket_events").rows_where("ticket_id = ?", [ticket_id], order_by="at, event_id")
        return [_event_from_row(row) for row in rows]

    @_guarded
    def count(self, table: str) -> int:
        return self.db[table].count

    @_guarded
    def load(self, ticket_ids: list[str]) -> list[tuple[Ticket, list[TicketEvent]]]:
        """Tickets with their events, in the order of ``ticket_ids`` (missing ids are left out)."""
        found: list[tuple[Ticket, list[TicketEvent]]] = []
        for offset in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            tickets = {row["id"]: _ticket_from_row(row) for row in self.db.query(f"select * from tickets where id in ({marks})", chunk)}
            events: dict[str, list[TicketEvent]] = {}
            for row in self.db.query(f"select * from ticket_events where ticket_id in ({marks}) order by ticket_id, at, event_id", chunk):
                events.setdefault(row["ticket_id"], []).append(_event_from_row(row))
            found.extend((tickets[i], events.get(i, [])) for i in chunk if i in tickets)
        return found

    @_guarded
    def tickets(self, ticket_ids: list[str]) -> list[Ticket]:
        """Tickets without their events, in the order of ``ticket_ids``."""
        marks = ",".join("?" * len(ticket_ids))
        found = {row["id"]: _ticket_from_row(row) for row in self.db.query(f"select * from tickets where id in ({marks})", ticket_ids)}
        return [found[i] for i in ticket_ids if i in found]

    def ticket_id_chunks(self, source: str, *, pulled_after_run: int | None, size: int = 500) -> Iterator[list[str]]:
        """Ids to evaluate, in chunks by key: pulled (or given history) after that run, or with a
        clock still open; all of them when ``pulled_after_run`` is None. Paging by key on the
        (source, id) index keeps memory flat and each chunk a range scan."""
        last = ""
        while True:
            with _store_errors(self.path):
                rows = self.db.execute(
                    "select t.id from tickets t where t.source = ? and t.id > ? and (? or t.pulled_run > ? or exists "
                    "(select 1 from sla_clocks c where c.ticket_id = t.id and c.stopped_at is null)) order by t.id limit ?",
                    [source, last, int(pulled_after_run is None), pulled_after_run or 0, size],
                ).fetchall()
            if not rows:
                return
            yield [row[0] for row in rows]
            last = rows[-1][0]

    def clocked_ticket_id_chunks(self, source: str, size: int = 500) -> Iterator[list[str]]:
        """Ids of a source's tickets that have clocks, in chunks by key."""
        last = ""
        while True:
            with _store_errors(self.path):
                rows = self.db.execute(
                    "select t.id from tickets t where t.source = ? and t.id > ? and exists "
                    "(select 1 from sla_clocks c where c.ticket_id = t.id) order by t.id limit ?", [source, last, size]).fetchall()
            if not rows:
                return
            yield [row[0] for row in rows]
            last = rows[-1][0]

    @_guarded
    def replace_clocks(self, ticket_id: str, rows: list[dict[str, Any]]) -> int:
        """Make ``rows`` (:func:`clock_row`) the ticket's clocks; returns how many changed state or
        deadline (elapsed time moving on is written, so `status` is current, but is not counted as
        a change).

        Evidence is kept: a stored verdict (met, breached, canceled) that the new rows change (in
        state or target) or leave out is recorded in ``verdict_changes``, with why. A running
        clock moving on (running to breached as time passes) is no verdict changing."""
        keys = ("state", "at_risk", "due_at", "breached_at", "stopped_at", "policy_version", "target_seconds")
        current = list(self.db.table("sla_clocks").rows_where("ticket_id = ?", [ticket_id]))
        old = {_clock_key(r): r for r in current}
        new = {_clock_key(r): r for r in rows}
        changed = sum(1 for key in new.keys() | old.keys()
                      if key not in new or key not in old or any(new[key][k] != old[key][k] for k in keys))
        moved = changed or any(
            any(row[column] != old[key][column] for column in _CLOCK_COLUMNS if column != "evaluated_at")
            for key, row in new.items())
        if moved:
            changes = _verdict_changes(old, new, self.run_id or None)
            self.db.execute("delete from sla_clocks where ticket_id = ?", [ticket_id])
            if rows:
                self.db.table("sla_clocks").insert_all(rows, pk=_CLOCK_KEY)
            if changes:
                self.db.table("verdict_changes").insert_all(changes, pk="id")
        return changed

    @_guarded
    def verdict_changes(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's recorded verdict changes, oldest first."""
        return list(self.db.table("verdict_changes").rows_where("ticket_id = ?", [ticket_id], order_by="id"))

    @_guarded
    def clocks(self, ticket_ids: list[str]) -> dict[str, list[Clock]]:
        """The stored clocks of each ticket: the sla's first, then each other agreement's, each in
        metric then cycle order."""
        found: dict[str, list[Clock]] = {}
        for offset in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"select * from sla_clocks where ticket_id in ({marks}) order by ticket_id, {_AGREEMENT_ORDER}, "
                                     "metric, cycle", chunk):
                found.setdefault(row["ticket_id"], []).append(clock_from_row(row))
        return found

    @_guarded
    def clock_state(self, ticket_id: str, metric: str, cycle: int, agreement: str = "sla") -> str | None:
        row = self.db.execute("select state from sla_clocks where ticket_id = ? and agreement = ? and metric = ? and cycle = ?",
                              [ticket_id, agreement, metric, cycle]).fetchone()
        return row[0] if row else None

    @_guarded
    def record_breach_credit(self, row: Mapping[str, Any]) -> None:
        self.db.table("credits").upsert(dict(row), pk="id")

    @_guarded
    def breach_credits(self, ticket_ids: list[str]) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
        """Per ticket, the per-breach credit of each (metric, cycle)."""
        found: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
        marks = ",".join("?" * len(ticket_ids))
        for row in self.db.query(f"select * from credits where kind = 'breach' and ticket_id in ({marks})", ticket_ids):
            found.setdefault(row["ticket_id"], {})[(row["metric"], row["cycle"])] = row
        return found

    @_guarded
    def forget_breach_credits(self, ticket_id: str, keep: list[str]) -> None:
        """Remove the ticket's per-breach credit rows other than ``keep`` (their clock is no longer breached)."""
        # The ids share the prefix ``breach:<ticket id>:``, so the range is a walk of the primary key
        # (';' follows ':'), and ticket_id = ? keeps out a ticket whose id merely begins the same.
        prefix = f"breach:{ticket_id}:"
        self.db.execute(
            f"delete from credits where id >= ? and id < ? and ticket_id = ? and kind = 'breach' "
            f"and id not in ({','.join('?' * len(keep))})",
            [prefix, prefix[:-1] + ";", ticket_id, *keep])

    @_guarded
    def pulled(self, ticket_ids: list[str]) -> dict[str, tuple[int | None, str | None]]:
        """(pulled_run, pulled_at) of each ticket: which run last pulled it or its history, and when its row was read."""
        found: dict[str, tuple[int | None, str | None]] = {}
        for offset in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[offset : offset + 500]
            rows = self.db.execute(f"select id, pulled_run, pulled_at from tickets where id in ({','.join('?' * len(chunk))})", chunk)
            found.update({row[0]: (row[1], row[2]) for row in rows})
        return found

    @_guarded
    def notes_seen(self, ticket_ids: list[str]) -> dict[str, set[str]]:
        """Per ticket, the sla-bridge markers its pulled history shows in internal notes."""
        found: dict[str, set[str]] = {}
        for offset in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"select ticket_id, to_value from ticket_events where kind = 'note' and ticket_id in ({marks})", chunk):
                found.setdefault(row[0], set()).add(row[1])
        return found

    # -- who was an agent when ------------------------------------------------------------

    @_guarded
    def agent_spans(self, source: str) -> list[AgentSpan]:
        """(user, since, until) per span in which a user was seen as an agent (None: unbounded)."""
        rows = self.db.execute("select user, since, until from agent_spans where source = ? order by user, since", [source])
        return [(user, from_iso(since) if since else None, from_iso(until) if until else None) for user, since, until in rows]

    @_guarded
    def save_agent_spans(self, source: str, spans: Iterable[AgentSpan]) -> None:
        with self.db.atomic():
            self.db.execute("delete from agent_spans where source = ?", [source])
            self.db.table("agent_spans").insert_all(
                ({"source": source, "user": user, "since": to_iso(since) if since else "", "until": _iso_or_none(until)}
                 for user, since, until in spans), pk=("source", "user", "since"))

    # -- what `sla-bridge status` shows ---------------------------------------------------

    @_guarded
    def worst_clocks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Running, at-risk and breached clocks, worst first: open breaches, at risk, closed
        breaches, the rest; within each, the largest overrun, then the earliest due."""
        sql = _STATUS_SQL + (" limit ?" if limit else "")
        return list(self.db.query(sql, [limit] if limit else []))

    @_guarded
    def find_tickets(self, wanted: str) -> list[str]:
        """Ids of the tickets whose id or key (``#123``, ``SUP-12``) is ``wanted``."""
        return [row[0] for row in self.db.execute("select id from tickets where id = ? or key = ?", [wanted, wanted])]

    @_guarded
    def clock_rows(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's clocks as stored (sla first, then each other agreement; metric, cycle)."""
        return list(self.db.table("sla_clocks").rows_where("ticket_id = ?", [ticket_id],
                                                           order_by=f"{_AGREEMENT_ORDER}, metric, cycle"))

    @_guarded
    def mark(self, name: str) -> str | None:
        return self.cursor("_sla-bridge", name)

    @_guarded
    def set_mark(self, name: str, value: str) -> None:
        self._write_cursor("_sla-bridge", name, value, _now())

    # -- the write-back journal -------------------------------------------------------------

    @_guarded
    def journal(self, ticket_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        for offset in range(0, len(ticket_ids), 500):
            chunk = ticket_ids[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"select * from writebacks where ticket_id in ({marks})", chunk):
                rows.setdefault(row["ticket_id"], []).append(row)
        return rows

    @_guarded
    def journal_intend(self, run_id: int, entries: list[tuple[str, str, str]]) -> None:
        """Before a push: (ticket_id, item, value) is about to be sent. One transaction."""
        at = _now()
        with self.db.atomic():
            for ticket_id, item, value in entries:
                self.db.execute(
                    "insert into writebacks (ticket_id, item, pending, state, run_id, updated_at) values (?, ?, ?, 'intent', ?, ?) "
                    "on conflict (ticket_id, item) do update set pending = excluded.pending, state = 'intent', "
                    "run_id = excluded.run_id, updated_at = excluded.updated_at",
                    [ticket_id, item, value, run_id, at],
                )

    @_guarded
    def journal_confirm(self, ticket_id: str, items: list[str] | None = None) -> None:
        """After a push the source accepted: the pending values become the confirmed ones."""
        sql = "update writebacks set value = pending, pending = null, state = 'sent', updated_at = ? where ticket_id = ? and state = 'intent'"
        args: list[Any] = [_now(), ticket_id]
        if items is not None:
            sql += f" and item in ({','.join('?' * len(items))})"
            args += items
        with self.db.atomic():
            self.db.execute(sql, args)

    @_guarded
    def journal_refuse(self, ticket_id: str, items: list[str], *, reason: str = "", cause: str = "",
                       retry_at: datetime | None = None) -> None:
        """The source refused these: keep what was asked, why, what the refusal depended on
        (``cause``: the planner's fingerprint of the config and the ticket) and when to try again."""
        if not items:
            return
        with self.db.atomic():
            self.db.execute(
                f"update writebacks set value = pending, pending = null, state = 'refused', updated_at = ?, reason = ?, cause = ?, "
                f"retry_at = ?, refusals = coalesce(refusals, 0) + 1 "
                f"where ticket_id = ? and state = 'intent' and item in ({','.join('?' * len(items))})",
                [_now(), redact(reason), cause, _iso_or_none(retry_at), ticket_id, *items])

    @_guarded
    def refusals(self, source: str | None = None) -> list[dict[str, Any]]:
        """Journal items the source refused and that are not written yet, with why, newest first."""
        sql = ("select t.source, t.key, w.ticket_id, w.item, w.value, w.reason, w.retry_at, w.refusals, w.updated_at "
               "from writebacks w join tickets t on t.id = w.ticket_id where w.state = 'refused'")
        args: list[Any] = []
        if source is not None:
            sql += " and t.source = ?"
            args.append(source)
        return list(self.db.query(sql + " order by w.updated_at desc, w.ticket_id, w.item", args))

    @_guarded
    def journal_forget(self, ticket_id: str, item: str) -> None:
        self.db.execute("update writebacks set pending = null, state = 'gone', updated_at = ? where ticket_id = ? and item = ?",
                        [_now(), ticket_id, item])

    @_guarded
    def intents(self, source: str) -> list[dict[str, Any]]:
        """Journal entries whose push was started but never confirmed (a crash, an unknown outcome)."""
        return list(self.db.query(
            "select w.*, t.external_id from writebacks w join tickets t on t.id = w.ticket_id "
            "where w.state = 'intent' and t.source = ?", [source]))

    # -- runs -----------------------------------------------------------------------------

    @_guarded
    def start_run(self, command: str) -> int:
        table = self.db.table("runs")
        table.insert({"command": command, "started_at": _now(), "status": "running", "pid": os.getpid()})
        assert table.last_pk is not None
        self.run_id = int(table.last_pk)
        return self.run_id

    @_guarded
    def reap_dead_runs(self) -> int:
        """Runs left ``running`` by a process that died (SIGKILL, power loss) become ``killed``.

        Call with the run lock held: no other run can be live then, so every ``running`` row is dead.
        """
        with self.db.atomic():
            cursor = self.db.execute("update runs set status = 'killed', finished_at = coalesce(finished_at, ?) where status = 'running'",
                                     [_now()])
        return cursor.rowcount

    @_guarded
    def finish_run(
        self,
        run_id: int,
        *,
        exit_code: int,
        sources: dict[str, dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        status = {0: "ok", 3: "partial"}.get(exit_code, "interrupted" if exit_code >= 128 else "failed")
        self.db.table("runs").update(
            run_id,
            {
                "finished_at": _now(),
                "status": status,
                "exit_code": exit_code,
                "sources": redact(json.dumps(sources or {}, sort_keys=True, default=str)),
                "error": redact(error) if error else None,
            },
        )

    @_guarded
    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.table("runs").rows_where(order_by="id desc", limit=limit)
        return [{**row, "sources": json.loads(row["sources"] or "{}")} for row in rows]


_STATUS_SQL = """
select t.key, t.source, t.customer, t.priority, c.ticket_id, c.agreement, c.kind, c.metric, c.cycle, c.state,
       c.target_seconds, c.elapsed_seconds, c.due_at, c.breached_at, c.at_risk, c.stopped_at
from sla_clocks c join tickets t on t.id = c.ticket_id
where c.stopped_at is null or c.state = 'breached'
order by case when c.state = 'breached' and c.stopped_at is null then 0 when c.state = 'breached' then 2
              when c.at_risk then 1 else 3 end,
         (c.elapsed_seconds - c.target_seconds) desc, c.due_at, c.ticket_id,
         case when c.agreement = 'sla' then 0 else 1 end, c.agreement, c.metric, c.cycle
"""
# sla first, then the other agreements by name
_AGREEMENT_ORDER = "case when agreement = 'sla' then 0 else 1 end, agreement"
_CLOCK_KEY = ("ticket_id", "agreement", "metric", "cycle")
_CLOCK_COLUMNS = ("ticket_id", "agreement", "kind", "metric", "cycle", "policy", "policy_version", "state", "target_seconds",
                  "elapsed_seconds", "paused_seconds", "started_at", "stopped_at", "due_at", "breached_at", "at_risk",
                  "evaluated_at", "started_by", "stopped_by", "pauses", "attribution")
# Text of a clock that comes from the helpdesk: a team is a group's name, a reason names groups.
_CLOCK_TEXT = ("agreement", "started_by", "stopped_by", "attribution")
_VERDICTS = frozenset({"met", "breached", "canceled"})


def _clock_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    return row["agreement"], row["metric"], row["cycle"]


def _verdict_changes(old: Mapping[tuple[str, str, int], Mapping[str, Any]], new: Mapping[tuple[str, str, int], Mapping[str, Any]],
                     run_id: int | None) -> list[dict[str, Any]]:
    """The stored verdicts that ``new`` changes or leaves out, as ``verdict_changes`` rows."""
    changed_at = next((row["evaluated_at"] for row in new.values()), None) or _now()
    found: list[dict[str, Any]] = []
    for key, before in sorted(old.items()):
        if before["state"] not in _VERDICTS:
            continue
        after = new.get(key)
        if after is not None and (after["state"], after["target_seconds"]) == (before["state"], before["target_seconds"]):
            continue
        if after is None:
            # Gone: the terms that judge its agreement now say whether they are new ones.
            after_terms = next(((row["policy"], row["policy_version"]) for k, row in sorted(new.items()) if k[0] == key[0]), None)
        else:
            after_terms = (after["policy"], after["policy_version"])
        before_terms = (before["policy"], before["policy_version"])
        if after_terms is None:
            why = "no longer judged (its terms or the ticket's history changed)"
        elif after_terms != before_terms:
            named = "" if after_terms[0] == before_terms[0] else f"{after_terms[0]} "
            why = f"terms changed: {before_terms[0]} version {before_terms[1]} -> {named}{after_terms[1]}"
        else:
            why = "history changed"
        found.append(_masked({
            "ticket_id": before["ticket_id"], "agreement": key[0], "metric": key[1], "cycle": key[2],
            "changed_at": after["evaluated_at"] if after is not None else changed_at, "run_id": run_id,
            "before_state": before["state"], "after_state": after["state"] if after is not None else None,
            "before_target": before["target_seconds"], "after_target": after["target_seconds"] if after is not None else None,
            "before_policy": before_terms[0], "after_policy": after_terms[0] if after_terms else None,
            "before_version": before_terms[1], "after_version": after_terms[1] if after_terms else None, "why": why,
        }, ("agreement", "before_policy", "after_policy", "why")))
    return found


def clock_row(clock: Clock, evaluated_at: str) -> dict[str, Any]:
    """The ``sla_clocks`` row of ``clock``: the spans it did not count as JSON ``[[from, to], ...]``,
    its attribution as a JSON object, helpdesk text (team names) masked."""
    iso = _iso_or_none
    row = {
        "ticket_id": clock.ticket_id, "agreement": clock.agreement, "kind": clock.kind, "metric": clock.metric,
        "cycle": clock.cycle, "policy": clock.policy, "policy_version": clock.policy_version, "state": clock.state,
        "target_seconds": clock.target_seconds, "elapsed_seconds": clock.elapsed_seconds, "paused_seconds": clock.paused_seconds,
        "started_at": to_iso(clock.started_at), "stopped_at": iso(clock.stopped_at), "due_at": to_iso(clock.due_at),
        "breached_at": iso(clock.breached_at), "at_risk": int(clock.at_risk), "evaluated_at": evaluated_at,
        "started_by": clock.started_by, "stopped_by": clock.stopped_by, "attribution": clock.attribution,
        "pauses": json.dumps([[to_iso(start), to_iso(end)] for start, end in clock.pauses]),
    }
    row = _masked(row, _CLOCK_TEXT)
    row["attribution"] = json.dumps(row["attribution"])  # in the evaluator's order: the teams as they held the ticket
    return row


def clock_from_row(row: Mapping[str, Any]) -> Clock:
    def parse(text: str | None) -> datetime | None:
        return from_iso(text) if text else None

    return Clock(
        ticket_id=row["ticket_id"], metric=row["metric"], cycle=row["cycle"], policy=row["policy"],
        policy_version=row["policy_version"], state=row["state"], target_seconds=row["target_seconds"],
        elapsed_seconds=row["elapsed_seconds"], paused_seconds=row["paused_seconds"], started_at=from_iso(row["started_at"]),
        stopped_at=parse(row["stopped_at"]), due_at=from_iso(row["due_at"]), breached_at=parse(row["breached_at"]),
        at_risk=bool(row["at_risk"]), agreement=row["agreement"], kind=row["kind"], started_by=row["started_by"] or "",
        stopped_by=row["stopped_by"] or "", pauses=tuple((from_iso(a), from_iso(b)) for a, b in json.loads(row["pauses"] or "[]")),
        attribution={str(k): int(v) for k, v in json.loads(row["attribution"] or "{}").items()},
    )


def _identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _create_private(path: Path) -> None:
    """Create the file owner-only before SQLite opens it; tighten an existing loose one."""
    if str(path) == ":memory:":
        return
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if not stat.S_ISREG(path.stat().st_mode):
            raise StoreError(f"the store path {path} is not a regular file (a directory?): point store.path or --db at a file") from None
        _tighten(path)
        return
    os.close(descriptor)


def _iso_or_none(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item)


def _clean(value: Any) -> Any:
    """``value`` with every secret masked in each text it holds (a helpdesk can echo a token
    into a subject, a custom field or a tag: the store keeps none)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    return value


def _masked(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """``row`` with the secrets in ``columns`` masked. One look over all their text first: a
    secret is rare, and masking each text on its own costs a pass per text and per secret."""
    if redact(blob := "\x00".join(_texts([row[c] for c in columns]))) == blob:
        return row
    return {**row, **{c: _clean(row[c]) for c in columns}}


# Every text of a ticket that came from the helpdesk's users. Identity (source, ids, key, url,
# version) is sla-bridge's or the helpdesk's own and is used as a key.
_TICKET_TEXT = ("title", "status", "status_raw", "priority", "priority_raw", "customer", "requester", "assignee", "group",
                "service", "type", "fields", "tags")


def _ticket_row(ticket: Ticket, pulled_at: str) -> dict[str, Any]:
    texts = _masked({
        "title": ticket.title, "status": ticket.status, "status_raw": ticket.status_raw, "priority": ticket.priority,
        "priority_raw": ticket.priority_raw, "customer": ticket.customer, "requester": ticket.requester, "assignee": ticket.assignee,
        "group": ticket.group, "service": ticket.service, "type": ticket.type, "fields": ticket.fields, "tags": ticket.tags,
    }, _TICKET_TEXT)
    return {
        "id": ticket.id,
        "source": ticket.source,
        "system": ticket.system,
        "external_id": ticket.external_id,
        "key": ticket.key,
        "url": ticket.url,
        **{column: texts[column] for column in _TICKET_TEXT if column not in ("fields", "tags")},
        "created_at": to_iso(ticket.created_at),
        "updated_at": to_iso(ticket.updated_at),
        "resolved_at": _iso_or_none(ticket.resolved_at),
        "fields": json.dumps(texts["fields"], sort_keys=True, default=str),
        "tags": json.dumps(list(texts["tags"])),
        "version": ticket.version,
        "pulled_at": pulled_at,
    }


def _ticket_from_row(row: dict[str, Any]) -> Ticket:
    return Ticket(
        source=row["source"],
        system=row["system"],
        external_id=row["external_id"],
        key=row["key"],
        url=row["url"] or "",
        title=row["title"] or "",
        status=row["status"],
        status_raw=row["status_raw"] or "",
        priority=row["priority"],
        priority_raw=row["priority_raw"],
        customer=row["customer"],
        requester=row["requester"],
        assignee=row["assignee"],
        group=row["group"],
        service=row["service"],
        type=row["type"],
        created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]),
        resolved_at=from_iso(row["resolved_at"]) if row["resolved_at"] else None,
        fields=json.loads(row["fields"] or "{}"),
        tags=json.loads(row.get("tags") or "[]"),
        version=row["version"],
    )


def _event_columns(event: TicketEvent) -> tuple[str, ...]:
    # A note's value is sla-bridge's own marker, matched as it is to never post a note twice.
    return ("from_value", "author") if event.kind == "note" else ("from_value", "to_value", "author")


def _event_row(event: TicketEvent) -> dict[str, Any]:
    return {
        "ticket_id": event.ticket_id,
        "event_id": event.event_id,
        "kind": event.kind,
        "at": to_iso(event.at),
        "from_value": event.from_value,
        "to_value": event.to_value,
        "author": event.author,
    }


def _event_rows(events: list[TicketEvent]) -> list[dict[str, Any]]:
    """A page's event rows with their helpdesk text masked. Events carry short texts (a status,
    an author id), a thousand a page: one look over the whole page's text decides whether any
    row needs masking, instead of one per row."""
    rows = [_event_row(event) for event in events]
    blob = "\x00".join(str(row[column]) for row, event in zip(rows, events, strict=True) for column in _event_columns(event)
                        if row[column] is not None)
    if redact(blob) == blob:
        return rows
    return [_masked(row, _event_columns(event)) for row, event in zip(rows, events, strict=True)]


def _event_from_row(row: dict[str, Any]) -> TicketEvent:
    return TicketEvent(
        ticket_id=row["ticket_id"],
        event_id=row["event_id"],
        kind=row["kind"],
        at=from_iso(row["at"]),
        from_value=row["from_value"],
        to_value=row["to_value"],
        author=row["author"],
    )
