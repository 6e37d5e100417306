"""The store as the CLI meets it: a read command never creates one, and a store that cannot be
written (read-only, its folder read-only, the disk full) is one ``Error:`` line that says what
to do, not a ``OperationalError`` from inside SQLite."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from bridge.edges.store import Store
from tests.conftest import SOURCE

STORE = '[store]\npath = "data/store.db"\n'


def _file_modes_bind() -> bool:
    """False for root with CAP_DAC_OVERRIDE, who writes through any file mode."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        probe = os.path.join(folder, "probe")
        with open(probe, "w"):
            pass
        os.chmod(probe, 0o400)
        try:
            with open(probe, "w"):
                return False
        except PermissionError:
            return True


needs_file_modes = pytest.mark.skipif(not _file_modes_bind(), reason="this user writes through file modes (root)")


def files_in(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("status", "zd:1"), ("status", "#1", "--json")])
def test_a_read_command_given_a_wrong_db_creates_nothing(write_config, run, tmp_path, args):
    config = write_config(STORE + SOURCE)
    before = files_in(tmp_path)
    result = run("--config", str(config), "--db", "typo.db", *args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: --db: no store at {tmp_path / 'typo.db'}: run `sla-bridge sync` first, "
                             "or check --db / store.path\n")
    assert result.stdout == ""
    assert files_in(tmp_path) == before  # no typo.db, no -wal, no lock file


def test_a_read_command_names_store_path_and_the_config_when_the_store_is_not_there(write_config, run, tmp_path):
    config = write_config(STORE + SOURCE)
    result = run("--config", str(config), "status")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {config}: store.path: no store at {tmp_path / 'data' / 'store.db'}: "
                             "run `sla-bridge sync` first, or check --db / store.path\n")
    assert not (tmp_path / "data").exists()


def test_status_reads_a_store_that_is_there(write_config, run, tmp_path):
    config = write_config(STORE + SOURCE)
    Store.open(tmp_path / "data" / "store.db").close()
    result = run("--config", str(config), "status")
    assert (result.exit_code, result.stdout) == (0, "No clock is running, at risk or breached.\n")


# -- a store that cannot be written ---------------------------------------------------------------


@pytest.fixture
def existing(write_config, tmp_path):
    """A config and its store, made by a run, as an operator has them after the first sync."""
    config = write_config(STORE + SOURCE)
    Store.open(tmp_path / "data" / "store.db").close()
    return config


def _make_read_only(monkeypatch):
    """Every connection to the store refuses writes, with the error SQLite gives for a read-only file."""
    connect = sqlite3.connect

    def read_only(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.execute("PRAGMA query_only = ON")
        return connection

    monkeypatch.setattr(sqlite3, "connect", read_only)


def assert_one_line_about(result, store) -> str:
    """One Error line naming the store and what to do; no SQLite class name, no traceback."""
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: the store {store}") or line.startswith(f"Error: permission denied on {store}"), line
    assert "OperationalError" not in line and "Traceback" not in result.stderr
    return line


def test_a_read_only_store_says_so_and_what_to_do(existing, run, monkeypatch, tmp_path):
    _make_read_only(monkeypatch)
    line = assert_one_line_about(run("--config", str(existing), "evaluate"), tmp_path / "data" / "store.db")
    assert "read-only" in line and ("writable" in line or "write access" in line)


def test_with_v_the_traceback_comes_too(existing, run, monkeypatch):
    _make_read_only(monkeypatch)
    result = run("--config", str(existing), "-v", "evaluate")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "sqlite3.OperationalError: attempt to write a readonly database" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: the store ")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (sqlite3.OperationalError("database or disk is full"),
         "no space left for the store {store} (SQLite: database or disk is full): free space on its disk, then run again; "
         "the next run resumes where this one stopped"),
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "{store}-wal"),
         "no space left for {store}-wal (No space left on device): free space on its disk, then run again; "
         "the next run resumes where this one stopped"),
        (OSError(errno.EROFS, os.strerror(errno.EROFS), "{store}"),
         "{store} is on a read-only file system: remount it writable, or point --db / store.path elsewhere"),
        (sqlite3.DatabaseError("file is not a database"),
         "the store {store} is damaged or is not an sla-bridge store (file is not a database): restore it from a backup, "
         "or point --db / store.path at a new file"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), "BrokenPipeError: Broken pipe (run with -v for the traceback)"),
    ],
    ids=["sqlite-full", "enospc", "erofs", "not-a-database", "not-about-a-file"],
)
def test_a_store_failure_is_one_line_naming_the_store_and_what_to_do(existing, run, monkeypatch, tmp_path, error, said):
    store = tmp_path / "data" / "store.db"
    if isinstance(error, OSError) and error.filename:
        error = OSError(error.errno, error.strerror, error.filename.format(store=store))

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Store, "start_run", fail)
    result = run("--config", str(existing), "evaluate")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {said.format(store=store)}\n"


@needs_file_modes
def test_a_store_file_without_write_permission_is_named_with_what_to_do(existing, run, tmp_path):
    store = tmp_path / "data" / "store.db"
    for path in store.parent.iterdir():
        path.chmod(0o400)
    try:
        result = run("--config", str(existing), "evaluate")
    finally:
        for path in store.parent.iterdir():
            path.chmod(0o600)
    line = assert_one_line_about(result, store)
    assert "writable" in line or "write access" in line


@needs_file_modes
def test_a_store_folder_without_write_permission_is_named_with_what_to_do(existing, run, tmp_path):
    folder = tmp_path / "data"
    for leftover in folder.glob("store.db?*"):
        leftover.unlink()  # the -wal, -shm and lock files must be created anew
    folder.chmod(0o500)
    try:
        result = run("--config", str(existing), "evaluate")
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and str(folder) in line, line
    assert "writable" in line or "access to it and to its folder" in line
    assert "OperationalError" not in line
