"""`ffsystemd doctor`'s session_root check agrees with start-up (both use ffsystemd.safe_dirs).

Each case builds a session root, asks the doctor (which must change nothing), then does what
start-up does (session_dirs.ensure_root + check_root_length) and compares the verdicts. The
tests run as root (as CI does) and play another user with chown to `nobody`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ffsystemd.cli.doctor import session_root_check
from ffsystemd.session_dirs import check_root_length, ensure_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays another user with chown: needs root")

NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory of ours under /tmp (session roots must be short for socket paths)."""
    path = Path(tempfile.mkdtemp(prefix="ffs-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _own_dir(base: Path, mode: int = 0o700) -> Path:
    path = base / "root"
    path.mkdir()
    path.chmod(mode)
    return path


def _nobodys(base: Path) -> Path:
    path = _own_dir(base)
    os.chown(path, NOBODY, NOBODY)
    return path


def _symlink(base: Path) -> Path:
    target = _own_dir(base)
    link = base / "link"
    link.symlink_to(target)
    return link


def _under_open_dir(base: Path) -> Path:
    parent = base / "open"
    parent.mkdir()
    parent.chmod(0o777)  # no sticky bit: anyone may rename our root away
    return parent / "root"


def _under_nobodys_dir(base: Path) -> Path:
    parent = base / "theirs"
    parent.mkdir(mode=0o755)
    os.chown(parent, NOBODY, NOBODY)
    return parent / "root"


def _file(base: Path) -> Path:
    path = base / "root"
    path.write_text("")
    return path


CASES: dict[str, tuple[Callable[[Path], Path], bool]] = {
    "own-0700": (_own_dir, True),
    "own-0755": (lambda base: _own_dir(base, 0o755), True),  # start-up tightens it to 0700
    "missing": (lambda base: base / "new" / "root", True),
    "writable-by-others": (lambda base: _own_dir(base, 0o777), False),
    "other-users": (_nobodys, False),
    "symlink": (_symlink, False),
    "under-a-dir-anyone-writes": (_under_open_dir, False),
    "under-another-users-dir": (_under_nobodys_dir, False),
    "a-file": (_file, False),
}


def _tree(base: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(path.relative_to(base)), path.lstat().st_mode, path.lstat().st_uid) for path in base.rglob("*")
    )


def _startup_accepts(root: Path) -> bool:
    try:
        check_root_length(root)
        check_root_length(ensure_root(root))
    except (OSError, ValueError):
        return False
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_doctor_and_start_up_agree(base: Path, case: str) -> None:
    make, accepted = CASES[case]
    root = make(base)
    before = _tree(base)
    check = session_root_check(root)
    assert _tree(base) == before, "the doctor changed something"
    assert check.verdict == ("ok" if accepted else "error"), check
    assert _startup_accepts(root) is accepted
    if not accepted:
        assert check.hint
        assert str(root) in check.detail or str(base) in check.detail


def test_doctor_names_the_owner_found(base: Path) -> None:
    root = _nobodys(base)
    check = session_root_check(root)
    assert check.verdict == "error"
    assert "nobody" in check.detail


def test_doctor_says_a_missing_root_will_be_created(base: Path) -> None:
    check = session_root_check(base / "new" / "root")
    assert check.verdict == "ok"
    assert "created at the first launch" in check.detail
    assert not (base / "new").exists()
