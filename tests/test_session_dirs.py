"""Unit tests for ffsystemd.session_dirs (creating, listing and removing session directories)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ffsystemd.session_dirs import (
    MAX_SOCKET_PATH,
    SUBDIRS,
    SessionPaths,
    check_root_length,
    create_session_dirs,
    discard_session_dir,
    ensure_root,
    list_session_dirs,
    remove_session_credentials,
    remove_session_dir,
    session_paths,
)

SID = "abcdef012345"
OTHER = "0123456789ab"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return ensure_root(tmp_path / "sessions")


def test_session_paths_layout(tmp_path):
    paths = session_paths(tmp_path, SID)
    base = tmp_path / f"session-{SID}"
    assert paths.base == base
    assert paths.profile == base / "profile"
    assert paths.cache == base / "cache"
    assert paths.temp == base / "temp"
    assert paths.runtime == base / "runtime"
    assert paths.sockets == base / "sockets"
    assert paths.xdg_config == base / "xdg"
    assert paths.socket == base / "sockets" / "xpra.sock"
    assert paths.xpra_log == base / "runtime" / "xpra.log"
    assert paths.home == base / "home"
    assert paths.downloads == base / "downloads"
    assert paths.xauthority == base / "runtime" / "Xauthority"


def test_downloads_dir_can_be_placed_outside_the_session(tmp_path):
    paths = SessionPaths(tmp_path, SID, downloads_dir=tmp_path / "shared-downloads")
    assert paths.downloads == tmp_path / "shared-downloads"
    assert paths.home == paths.base / "home"


@pytest.mark.parametrize("bad", ["../x", "", "ABCDEF012345", "abcdef012345/..", "abcdef012345\n"])
def test_session_paths_rejects_invalid_ids(tmp_path, bad):
    with pytest.raises(ValueError):
        session_paths(tmp_path, bad)


def test_ensure_root_creates_0700(tmp_path):
    root = ensure_root(tmp_path / "a" / "b")
    assert root.is_dir()
    assert root == (tmp_path / "a" / "b").resolve()
    assert _mode(root) == 0o700


def test_ensure_root_tightens_existing_mode(tmp_path):
    existing = tmp_path / "open"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    ensure_root(existing)
    assert _mode(existing) == 0o700


def test_create_session_dirs_all_0700(root):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    assert paths.base.is_dir()
    assert _mode(paths.base) == 0o700
    for name in SUBDIRS:
        sub = paths.base / name
        assert sub.is_dir() and not sub.is_symlink(), name
        assert _mode(sub) == 0o700, name
    assert (paths.xdg_config / "xpra").is_dir()
    assert _mode(paths.xdg_config / "xpra") == 0o700
    for directory in (paths.profile, paths.cache, paths.temp, paths.runtime, paths.sockets, paths.xdg_config):
        assert directory.is_dir()
    for directory in (paths.home, paths.downloads):
        assert directory.is_dir() and _mode(directory) == 0o700


def test_create_session_dirs_makes_an_empty_private_x_cookie(root):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    cookie = paths.xauthority
    assert cookie.is_file() and not cookie.is_symlink()
    assert _mode(cookie) == 0o600
    assert cookie.stat().st_size == 0
    assert cookie.stat().st_uid == os.getuid()


def test_create_session_dirs_twice_fails(root):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    (paths.profile / "prefs.js").write_text("x")
    with pytest.raises(FileExistsError):
        create_session_dirs(paths)
    assert (paths.profile / "prefs.js").read_text() == "x"


def test_create_session_dirs_refuses_existing_symlink(root, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    paths = session_paths(root, SID)
    paths.base.symlink_to(victim, target_is_directory=True)
    with pytest.raises(FileExistsError):
        create_session_dirs(paths)
    assert list(victim.iterdir()) == []


def test_remove_session_dir_removes(root):
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    (paths.profile / "prefs.js").write_text("x")
    (paths.runtime / "deep" / "er").mkdir(parents=True)
    assert remove_session_dir(paths) is True
    assert not paths.base.exists()
    assert root.is_dir()


def test_remove_session_dir_missing_returns_false(root):
    assert remove_session_dir(session_paths(root, SID)) is False
    assert root.is_dir()


def test_remove_session_dir_leaves_other_sessions(root):
    mine, other = session_paths(root, SID), session_paths(root, OTHER)
    create_session_dirs(mine)
    create_session_dirs(other)
    remove_session_dir(mine)
    assert other.profile.is_dir()
    assert list_session_dirs(root) == [OTHER]


@pytest.mark.parametrize("bad", ["../x", "..", "", "../../x", "ABCDEF012345", "abc/def"])
def test_remove_session_dir_refuses_invalid_id(root, tmp_path, bad):
    # a directory the bad id might point at must survive
    (tmp_path / "x").mkdir(exist_ok=True)
    (tmp_path / "x" / "keep").write_text("keep")
    with pytest.raises(ValueError):
        remove_session_dir(SessionPaths(root, bad))
    assert (tmp_path / "x" / "keep").read_text() == "keep"
    assert root.is_dir()


def test_remove_session_dir_refuses_base_outside_root(root, tmp_path):
    elsewhere = tmp_path / "elsewhere"

    class Moved(SessionPaths):
        @property
        def base(self) -> Path:
            return elsewhere / f"session-{self.session_id}"

    moved = Moved(root, SID)
    moved.base.mkdir(parents=True)
    (moved.base / "keep").write_text("keep")
    with pytest.raises(ValueError):
        remove_session_dir(moved)
    assert (moved.base / "keep").read_text() == "keep"


def test_remove_session_dir_refuses_nested_base(root):
    class Nested(SessionPaths):
        @property
        def base(self) -> Path:
            return self.root / "deeper" / f"session-{self.session_id}"

    nested = Nested(root, SID)
    nested.base.mkdir(parents=True)
    with pytest.raises(ValueError):
        remove_session_dir(nested)
    assert nested.base.is_dir()


def test_remove_session_dir_unlinks_symlink_out_of_root(root, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("precious")
    (victim / "sub").mkdir()
    (victim / "sub" / "more.txt").write_text("more")
    paths = session_paths(root, SID)
    paths.base.symlink_to(victim, target_is_directory=True)

    assert remove_session_dir(paths) is True

    assert not paths.base.is_symlink()
    assert not os.path.lexists(paths.base)
    assert (victim / "precious.txt").read_text() == "precious"
    assert (victim / "sub" / "more.txt").read_text() == "more"


def test_remove_session_dir_unlinks_dangling_symlink(root, tmp_path):
    paths = session_paths(root, SID)
    paths.base.symlink_to(tmp_path / "does-not-exist")
    assert remove_session_dir(paths) is True
    assert not os.path.lexists(paths.base)


def test_remove_session_dir_does_not_follow_symlink_inside(root, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("precious")
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    (paths.profile / "escape").symlink_to(victim, target_is_directory=True)
    assert remove_session_dir(paths) is True
    assert not os.path.lexists(paths.base)
    assert (victim / "precious.txt").read_text() == "precious"


def test_remove_session_dir_through_symlinked_root(tmp_path):
    real_root = ensure_root(tmp_path / "real")
    link_root = tmp_path / "link"
    link_root.symlink_to(real_root, target_is_directory=True)
    paths = session_paths(link_root, SID)
    create_session_dirs(paths)
    assert remove_session_dir(paths) is True
    assert not (real_root / f"session-{SID}").exists()
    assert real_root.is_dir()


def test_list_session_dirs_ignores_foreign_names(root):
    for sid in (SID, OTHER):
        create_session_dirs(session_paths(root, sid))
    (root / "session-ABCDEF012345").mkdir()
    (root / "session-abcdef01234").mkdir()
    (root / "session-abcdef0123456").mkdir()
    (root / "session-").mkdir()
    (root / "other-abcdef012345").mkdir()
    (root / "abcdef012345").mkdir()
    (root / "notes.txt").write_text("x")
    (root / "session-abcdef012345.bak").mkdir()
    assert list_session_dirs(root) == sorted([SID, OTHER])


def test_list_session_dirs_missing_root(tmp_path):
    assert list_session_dirs(tmp_path / "nope") == []


def test_list_session_dirs_empty_root(root):
    assert list_session_dirs(root) == []


# --- check_root_length ----------------------------------------------------------------


def test_check_root_length_accepts_short_root():
    check_root_length(Path("/srv/ff"))
    paths = session_paths(Path("/srv/ff"), SID)
    assert len(os.fsencode(paths.socket)) <= MAX_SOCKET_PATH


def test_check_root_length_boundary():
    # the longest socket path that fits is exactly MAX_SOCKET_PATH bytes
    suffix = len(f"/session-{SID}/sockets/xpra.sock")
    fits = Path("/" + "a" * (MAX_SOCKET_PATH - suffix - 1))
    check_root_length(fits)
    assert len(os.fsencode(session_paths(fits, SID).socket)) == MAX_SOCKET_PATH
    too_long = Path("/" + "a" * (MAX_SOCKET_PATH - suffix))
    with pytest.raises(ValueError, match="unix socket"):
        check_root_length(too_long)


def test_check_root_length_counts_bytes_not_characters():
    suffix = len(f"/session-{SID}/sockets/xpra.sock")
    # 'é' is two bytes in UTF-8: same character count as the fitting root, one byte more per char
    root = Path("/" + "é" * ((MAX_SOCKET_PATH - suffix - 1) // 2 + 1))
    with pytest.raises(ValueError):
        check_root_length(root)


def _populated(root: Path) -> SessionPaths:
    """A session directory as a dead session leaves it: profile, home, cookie, sockets, temp files."""
    paths = session_paths(root, SID)
    create_session_dirs(paths)
    paths.xauthority.write_bytes(b"cookie")
    (paths.profile / "places.sqlite").write_text("bookmarks")
    (paths.home / ".config" / "mozilla").mkdir(parents=True)
    (paths.downloads / "report.pdf").write_text("pdf")
    (paths.cache / "fontconfig").mkdir()
    paths.xpra_log.write_text("log")
    (paths.runtime / "firefox.exit").write_text("0")
    (paths.runtime / "xpra" / "tmp").mkdir(parents=True)
    (paths.runtime / "dconf").mkdir()
    paths.socket.write_text("")  # stands for the unix socket
    (paths.temp / "mozilla_0").mkdir()
    (paths.temp / "x.tmp").write_text("t")
    return paths


def test_remove_session_credentials_keeps_the_profile_but_no_credentials(root):
    paths = _populated(root)
    remove_session_credentials(paths)
    assert not paths.xauthority.exists()
    assert list(paths.sockets.iterdir()) == []
    assert list(paths.temp.iterdir()) == []
    assert [p.name for p in paths.runtime.iterdir()] == ["xpra.log"]
    assert (paths.profile / "places.sqlite").read_text() == "bookmarks"
    assert (paths.home / ".config" / "mozilla").is_dir()
    assert (paths.downloads / "report.pdf").read_text() == "pdf"
    assert (paths.cache / "fontconfig").is_dir()


def test_remove_session_credentials_does_not_follow_symlinks(root, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("precious")
    paths = _populated(root)
    (paths.runtime / "link").symlink_to(victim, target_is_directory=True)
    (paths.runtime / "xpra.log").unlink()
    (paths.runtime / "xpra.log").symlink_to(victim / "precious")
    remove_session_credentials(paths)
    assert (victim / "precious").read_text() == "precious"
    assert list(paths.runtime.iterdir()) == []


def test_remove_session_credentials_on_a_missing_directory_does_nothing(root):
    remove_session_credentials(session_paths(root, SID))
    assert list(root.iterdir()) == []


def test_remove_session_credentials_refuses_base_outside_root(root, tmp_path):
    class Moved(SessionPaths):
        @property
        def base(self) -> Path:
            return tmp_path / "elsewhere" / f"session-{self.session_id}"

    moved = Moved(root, SID)
    (moved.base / "runtime").mkdir(parents=True)
    (moved.base / "runtime" / "Xauthority").write_text("keep")
    with pytest.raises(ValueError):
        remove_session_credentials(moved)
    assert (moved.base / "runtime" / "Xauthority").read_text() == "keep"


@pytest.mark.parametrize("keep_profile", [False, True])
def test_discard_session_dir_never_keeps_the_x_cookie(root, keep_profile):
    paths = _populated(root)
    assert discard_session_dir(paths, keep_profile) is True
    assert not paths.xauthority.exists()
    assert not paths.socket.exists()
    assert (paths.profile / "places.sqlite").exists() is keep_profile
    assert paths.base.exists() is keep_profile


def test_discard_session_dir_missing_returns_false(root):
    assert discard_session_dir(session_paths(root, SID), True) is False
    assert discard_session_dir(session_paths(root, SID), False) is False
