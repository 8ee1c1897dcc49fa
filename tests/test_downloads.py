"""Unit tests for ffsystemd.downloads: where downloads land, checked at start-up."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from ffsystemd.commands import user_js
from ffsystemd.downloads import open_downloads_dir, resolve_downloads_dir, upload_prefs
from ffsystemd.session_dirs import session_paths

SID = "0123456789ab"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="plays another user with chown: needs root")


def _root_dir(tmp_path: Path) -> Path:
    root = tmp_path / "notebooks"
    root.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    return root


def test_empty_means_the_session_directory(tmp_path):
    assert resolve_downloads_dir("", tmp_path) is None
    assert open_downloads_dir("", tmp_path) is None
    assert session_paths(tmp_path, SID).downloads == tmp_path / f"session-{SID}" / "downloads"


def test_relative_is_inside_root_dir_and_created_0700(tmp_path):
    root = _root_dir(tmp_path)
    found = open_downloads_dir("Downloads", root)
    assert found == root / "Downloads"
    assert stat.S_IMODE(found.stat().st_mode) == 0o700
    assert session_paths(tmp_path, SID, found).downloads == found
    nested = open_downloads_dir("work/from-firefox", root)
    assert nested == root / "work" / "from-firefox" and nested.is_dir()


def test_an_existing_directory_keeps_its_mode(tmp_path):
    root = _root_dir(tmp_path)
    (root / "Downloads").mkdir(mode=0o755)
    (root / "Downloads").chmod(0o755)
    assert open_downloads_dir("Downloads", root) == root / "Downloads"
    assert stat.S_IMODE((root / "Downloads").stat().st_mode) == 0o755


def test_absolute_path_of_ours_outside_root_dir_is_accepted(tmp_path):
    root = _root_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    assert open_downloads_dir(str(elsewhere), root) == elsewhere
    assert elsewhere.is_dir()


def test_a_symlink_is_refused(tmp_path):
    root = _root_dir(tmp_path)
    (tmp_path / "real").mkdir()
    (root / "Downloads").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="is a symlink"):
        open_downloads_dir("Downloads", root)
    with pytest.raises(ValueError, match="is a symlink"):
        open_downloads_dir(str(root / "Downloads"), "/")


def test_a_relative_path_may_not_leave_root_dir(tmp_path):
    root = _root_dir(tmp_path)
    with pytest.raises(ValueError, match="outside the server's root_dir"):
        open_downloads_dir("../escaped", root)
    assert not (tmp_path / "escaped").exists()  # refused before anything is created
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")  # a symlink of ours on the way out
    with pytest.raises(ValueError, match="outside the server's root_dir"):
        open_downloads_dir("link/Downloads", root)
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_directory_writable_by_others_is_refused(tmp_path):
    root = _root_dir(tmp_path)
    (root / "Downloads").mkdir()
    (root / "Downloads").chmod(0o777)
    with pytest.raises(ValueError, match="writable by other users"):
        open_downloads_dir("Downloads", root)


@root_only
def test_a_directory_of_another_user_is_refused(tmp_path):
    root = _root_dir(tmp_path)
    nobody = pwd.getpwnam("nobody").pw_uid
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, nobody, nobody)
    with pytest.raises(ValueError, match=r"owned by nobody"):
        open_downloads_dir(str(theirs), root)
    # ... nor anything under a directory another user controls
    with pytest.raises(ValueError, match=r"owned by nobody"):
        open_downloads_dir(str(theirs / "sub"), root)
    assert list(theirs.iterdir()) == []


def test_a_file_in_its_place_is_refused(tmp_path):
    root = _root_dir(tmp_path)
    (root / "Downloads").write_text("not a directory")
    with pytest.raises(ValueError, match=r"not a directory|cannot"):
        open_downloads_dir("Downloads", root)


def test_the_upload_dialog_starts_in_root_dir_and_downloads_go_to_the_directory(tmp_path):
    prefs = upload_prefs(tmp_path)
    assert prefs == {"dom.input.fallbackUploadDir": str(tmp_path)}
    text = user_js("about:blank", prefs, tmp_path / "Downloads")
    assert f'user_pref("dom.input.fallbackUploadDir", "{tmp_path}");' in text
    assert f'user_pref("browser.download.dir", "{tmp_path / "Downloads"}");' in text
    assert f'user_pref("browser.download.lastDir", "{tmp_path / "Downloads"}");' in text
