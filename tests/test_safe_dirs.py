"""Session roots and directories another local user could control are refused (ffsystemd.safe_dirs).

The tests run as root (as CI does) and play the other user with chown to `nobody`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from ffsystemd.app import FirefoxLauncher
from ffsystemd.safe_dirs import UnsafeDirectory, open_private_dir
from ffsystemd.session_dirs import (
    create_session_dirs,
    ensure_root,
    list_session_dirs,
    remove_session_credentials,
    remove_session_dir,
    session_paths,
)

NOBODY = pwd.getpwnam("nobody").pw_uid
SID = "abcdef012345"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays another user with chown: needs root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory of ours (session roots under it must fit the socket path limit)."""
    path = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _owned_by_nobody(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode)
    os.chmod(path, mode)
    os.chown(path, NOBODY, NOBODY)
    return path


def _launcher_root_error(root: Path) -> str:
    cfg = Config()
    cfg.FirefoxLauncher.session_root = str(root)
    app = FirefoxLauncher(config=cfg)
    with pytest.raises(TraitError) as exc:
        app.checked_session_root(app.resolved_session_root("lab-a"))
    return str(exc.value)


# --- the root ---------------------------------------------------------------------------------
def test_a_root_owned_by_another_user_is_refused_naming_the_trait_and_owner(base):
    root = _owned_by_nobody(base / "sessions")
    message = _launcher_root_error(root)
    assert "c.FirefoxLauncher.session_root" in message
    assert str(root) in message
    assert f"owned by nobody (uid {NOBODY})" in message
    assert os.lstat(root).st_uid == NOBODY  # not taken over either


def test_a_root_another_user_made_under_tmp_is_refused():
    root = Path("/tmp") / f"ffs-planted-{os.getpid()}"
    _owned_by_nobody(root, 0o777)
    try:
        message = _launcher_root_error(root)
        assert "nobody" in message and "session_root" in message
    finally:
        root.rmdir()


def test_a_root_that_is_a_symlink_is_refused(base):
    real = base / "real"
    real.mkdir(mode=0o700)
    link = base / "sessions"
    link.symlink_to(real, target_is_directory=True)
    message = _launcher_root_error(link)
    assert "is a symlink" in message and str(real) in message


def test_a_root_writable_by_others_is_refused_and_left_alone(base):
    root = base / "sessions"
    root.mkdir()
    os.chmod(root, 0o777)
    message = _launcher_root_error(root)
    assert "writable by other users" in message and "0777" in message
    assert _mode(root) == 0o777


def test_a_root_readable_by_others_is_tightened_to_0700(base):
    root = base / "sessions"
    root.mkdir()
    os.chmod(root, 0o755)
    assert ensure_root(root) == root
    assert _mode(root) == 0o700


def test_a_root_that_is_a_file_is_refused(base):
    (base / "sessions").write_text("x")
    assert "not a directory" in _launcher_root_error(base / "sessions").lower()


def test_missing_root_and_parents_are_created_0700(base):
    root = base / "a" / "b" / "sessions"
    assert ensure_root(root) == root
    for path in (base / "a", base / "a" / "b", root):
        assert _mode(path) == 0o700 and os.lstat(path).st_uid == os.geteuid()


# --- the directories above it ---------------------------------------------------------------------
def test_a_parent_owned_by_another_user_is_refused(base):
    parent = _owned_by_nobody(base / "theirs", 0o755)
    root = parent / "sessions"
    os.mkdir(root, 0o700)  # ours, but its parent's owner could rename it away
    message = _launcher_root_error(root)
    assert f"{parent} is owned by nobody" in message


def test_a_parent_writable_by_others_without_sticky_bit_is_refused(base):
    parent = base / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)
    message = _launcher_root_error(parent / "sessions")
    assert f"{parent} is writable by other users" in message
    assert not (parent / "sessions").exists()


def test_a_sticky_world_writable_parent_is_fine(base):
    parent = base / "tmp-like"
    parent.mkdir()
    os.chmod(parent, 0o1777)
    assert ensure_root(parent / "sessions") == parent / "sessions"


def test_a_symlinked_parent_of_ours_is_followed_and_the_real_path_returned(base):
    real_parent = base / "data"
    real_parent.mkdir()
    (base / "home").symlink_to(real_parent, target_is_directory=True)
    assert ensure_root(base / "home" / "sessions") == real_parent / "sessions"


def test_a_symlinked_parent_owned_by_another_user_is_refused(base):
    real_parent = base / "data"
    real_parent.mkdir()
    link = base / "home"
    link.symlink_to(real_parent, target_is_directory=True)
    os.lchown(link, NOBODY, NOBODY)
    assert f"{link} is a symlink owned by nobody" in _launcher_root_error(link / "sessions")


def test_a_parent_link_into_a_foreign_directory_is_refused(base):
    theirs = _owned_by_nobody(base / "theirs", 0o755)
    (base / "home").symlink_to(theirs, target_is_directory=True)
    assert f"{theirs} is owned by nobody" in _launcher_root_error(base / "home" / "sessions")


def test_relative_and_dotted_paths_are_walked_as_written(base, monkeypatch):
    (base / "x").mkdir()
    monkeypatch.chdir(base / "x")
    fd, real = open_private_dir("../y/./z/../sessions")
    os.close(fd)
    assert real == str(base / "y" / "sessions")


def test_slash_cannot_be_a_root():
    with pytest.raises(UnsafeDirectory):
        open_private_dir("/")


# --- session directories under a checked root -------------------------------------------------------
@pytest.fixture
def root(base: Path) -> Path:
    return ensure_root(base / "sessions")


def test_a_session_dir_swapped_for_a_symlink_is_unlinked_and_its_target_kept(root, base):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    elsewhere = base / "elsewhere"
    (elsewhere / "sockets").mkdir(parents=True)
    (elsewhere / "precious.txt").write_text("precious")
    remove_session_dir(paths)
    paths.base.symlink_to(elsewhere, target_is_directory=True)  # the swap

    assert list_session_dirs(root) == []  # a symlink is not a session directory
    assert remove_session_dir(paths) is True
    assert not os.path.lexists(paths.base)
    assert (elsewhere / "precious.txt").read_text() == "precious"
    assert (elsewhere / "sockets").is_dir()


def test_credentials_cleanup_does_not_follow_a_swapped_runtime_dir(root, base):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "Xauthority").write_text("theirs")
    (paths.runtime / "Xauthority").unlink()
    paths.runtime.rmdir()
    paths.runtime.symlink_to(elsewhere, target_is_directory=True)
    remove_session_credentials(paths)
    assert (elsewhere / "Xauthority").read_text() == "theirs"
    assert not os.path.lexists(paths.runtime)
    assert paths.profile.is_dir()
    remove_session_dir(paths)


def test_session_dirs_are_made_under_the_real_root_not_a_swapped_one(root, base):
    theirs = _owned_by_nobody(base / "theirs", 0o777)
    moved = base / "moved-away"
    root.rename(moved)
    root.symlink_to(theirs, target_is_directory=True)
    os.lchown(root, NOBODY, NOBODY)
    paths = session_paths(root, SID)
    with pytest.raises(UnsafeDirectory, match="symlink owned by nobody"):
        create_session_dirs(paths)
    assert list(theirs.iterdir()) == []
    with pytest.raises(UnsafeDirectory):
        remove_session_dir(paths)
    assert list(theirs.iterdir()) == []


def test_a_foreign_root_is_not_listed_into(base):
    root = _owned_by_nobody(base / "sessions", 0o755)
    os.mkdir(root / f"session-{SID}")
    assert list_session_dirs(root) == []


def test_a_session_dir_of_another_user_is_not_listed(root):
    _owned_by_nobody(root / f"session-{SID}")
    create_session_dirs(session_paths(root, "0123456789ab"))
    assert list_session_dirs(root) == ["0123456789ab"]


def test_removal_racing_a_swapper_never_deletes_outside_the_root(root, base):
    """Another process swaps the session directory for a symlink (and back) while it is removed."""
    victim = base / "victim"
    victim.mkdir()
    (victim / "sub").mkdir()
    (victim / "sub" / "precious.txt").write_text("precious")
    paths = session_paths(root, SID)
    stop = threading.Event()

    def swap() -> None:
        aside = root / "aside"
        while not stop.is_set():
            with contextlib.suppress(OSError):
                os.rename(paths.base, aside)
                os.symlink(victim, paths.base)
                os.unlink(paths.base)
                os.rename(aside, paths.base)

    for _ in range(10):
        with contextlib.suppress(OSError):
            create_session_dirs(paths)
        (paths.profile / "sub").mkdir(exist_ok=True)
        swapper = threading.Thread(target=swap)
        swapper.start()
        try:
            for _ in range(5):
                with contextlib.suppress(OSError):
                    remove_session_dir(paths)
        finally:
            stop.set()
            swapper.join()
            stop.clear()
        assert (victim / "sub" / "precious.txt").read_text() == "precious"
        for leftover in (paths.base, root / "aside"):
            if os.path.islink(leftover):
                os.unlink(leftover)
            elif os.path.isdir(leftover):
                shutil.rmtree(leftover)
