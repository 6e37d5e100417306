"""The run lock: one run per store, a private plain file, never written through a link."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from bridge.edges.lock import RunLock
from bridge.errors import LockHeld, StoreError

not_as_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root, whom file permissions do not stop: the refusal under test cannot happen")


def test_a_second_run_is_refused_and_told_who_holds_the_lock(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    with RunLock(store, "sync"), pytest.raises(LockHeld, match=rf"holds the lock on {store}: sync with pid {os.getpid()}"):
        RunLock(store, "sync").acquire()
    with RunLock(store, "push") as again:  # released: the next run takes it
        assert json.loads(again.path.read_text())["command"] == "push"


def test_the_lock_file_is_owner_only_even_when_it_was_made_readable(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    with RunLock(store, "sync") as held:
        assert stat.S_IMODE(held.path.stat().st_mode) == 0o600
    held.path.chmod(0o644)  # an older version, or a hand-made file
    with RunLock(store, "sync"):
        assert stat.S_IMODE(held.path.stat().st_mode) == 0o600


def test_a_symlinked_lock_file_is_refused_and_its_target_left_whole(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("the operator's notes\n")
    store = tmp_path / "store.db"
    Path(f"{store}.lock").symlink_to(precious)
    with pytest.raises(StoreError, match=rf"the lock file {store}.lock is a symbolic link.*Remove the link"):
        RunLock(store, "sync").acquire()
    assert precious.read_text() == "the operator's notes\n"


def test_a_dangling_symlink_is_not_followed_to_create_its_target(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    target = tmp_path / "elsewhere"
    Path(f"{store}.lock").symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        RunLock(store, "sync").acquire()
    assert not target.exists()


@pytest.mark.parametrize("kind", ["directory", "fifo", "hard link"])
def test_a_lock_path_that_is_not_a_plain_file_of_its_own_is_refused_by_name(tmp_path: Path, kind: str) -> None:
    store = tmp_path / "store.db"
    lock_path = Path(f"{store}.lock")
    other = tmp_path / "other.txt"
    if kind == "directory":
        lock_path.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock_path)  # opening one for writing would block the run for ever
    else:
        other.write_text("another file's content\n")
        os.link(other, lock_path)
    with pytest.raises(StoreError, match=rf"the lock file {lock_path} (is a directory|is a named pipe|has other names)"):
        RunLock(store, "sync").acquire()
    if kind == "hard link":
        assert other.read_text() == "another file's content\n"


@not_as_root
def test_a_read_only_folder_says_so_instead_of_a_permission_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=rf"the folder {folder} is read-only for this user.*make the folder writable"):
            RunLock(folder / "store.db", "sync").acquire()
    finally:
        folder.chmod(0o700)


@not_as_root
def test_a_lock_file_of_another_user_is_named(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    lock_path = Path(f"{store}.lock")
    lock_path.write_text("")
    lock_path.chmod(0o400)
    with pytest.raises(StoreError, match=rf"the lock file {lock_path} is not writable for this user"):
        RunLock(store, "sync").acquire()


def test_a_full_disk_while_writing_the_lock_says_so_and_releases_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store.db"

    def full(_handle: int, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("bridge.edges.lock.os.write", full)
    with pytest.raises(StoreError, match=rf"the disk holding {tmp_path} is full.*Free space"):
        RunLock(store, "sync").acquire()
    monkeypatch.undo()
    with RunLock(store, "sync"):  # the failed run did not keep the lock
        pass


def test_a_read_only_file_system_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*_args: object, **_kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "store.db.lock"))

    monkeypatch.setattr("bridge.edges.lock.os.open", read_only)
    with pytest.raises(StoreError, match=rf"the file system holding {tmp_path} is mounted read-only"):
        RunLock(tmp_path / "store.db", "sync").acquire()
