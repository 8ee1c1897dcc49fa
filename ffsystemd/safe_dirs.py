"""Opening directories that no other local user can have planted, swapped or redirected.

A directory is opened by walking its path from `/` one component at a time with
`openat(..., O_DIRECTORY | O_NOFOLLOW)`, checking every directory on the way with `fstat`
of the descriptor actually opened (never a path that may have changed since):

* an **ancestor** must be owned by root or by us and not writable by group or others,
  unless it has the sticky bit (like `/tmp`, where only an entry's owner may rename it);
  otherwise its owner (or group) could rename our directory away and put theirs there;
* a **symlink** on the way is followed only if root or we own it (its directory was checked
  as an ancestor already), and the walk goes on from its target, checking that path too;
* the **directory itself** must be ours, a real directory, and not writable by group or
  others (someone may already have planted entries in it: refused, not repaired); read or
  search bits for group/others are removed (mode 0700), which is safe to repair.

Operations inside such a directory are then done relative to its descriptor (`dir_fd=`),
so a swapped path can never make us create or delete anything outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from collections import deque
from collections.abc import Iterator

OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""Flags that open a directory and never follow a symlink in its place."""
_MAX_SYMLINKS = 40


class UnsafeDirectory(ValueError):
    """A directory (or one on its path) that another user could control; the message says which and why."""


def owner_name(uid: int) -> str:
    """`name (uid N)` for a uid, or `uid N` when it has no name."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check_ancestor(st: os.stat_result, path: str, uid: int) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if st.st_uid not in (0, uid):
        raise UnsafeDirectory(f"{path} is owned by {owner_name(st.st_uid)}, who could replace what is in it")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise UnsafeDirectory(
            f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}, no sticky bit)"
        )


def _check_own(st: os.stat_result, path: str, uid: int) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if st.st_uid != uid:
        raise UnsafeDirectory(f"{path} is owned by {owner_name(st.st_uid)}, not by {owner_name(uid)}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); check what is"
            " in it, then chmod 700 it"
        )


def _join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else f"{parent}/{name}"


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


class _Walk:
    """The directories opened so far (a stack of descriptors, so `..` in a link target works)."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.stack: list[tuple[str, int]] = []
        self.restart()

    def restart(self) -> None:
        self.close()
        fd = os.open("/", OPEN_DIR)
        self.stack = [("/", fd)]
        _check_ancestor(os.fstat(fd), "/", self.uid)

    def close(self) -> None:
        for _path, fd in self.stack:
            os.close(fd)
        self.stack = []

    @property
    def here(self) -> tuple[str, int]:
        return self.stack[-1]

    def up(self) -> None:
        if len(self.stack) > 1:
            os.close(self.stack.pop()[1])


def open_private_dir(
    path: str | os.PathLike[str], create: bool = True, final_symlink_ok: bool = False, tighten: bool = True
) -> tuple[int, str]:
    """Open a directory of ours safely: (descriptor, its real path). Raises UnsafeDirectory.

    Missing directories on the way (and the directory itself) are created mode 0700 when
    create is true (FileNotFoundError otherwise). The directory must not itself be a
    symlink unless final_symlink_ok (then a symlink of root's or ours is followed as any
    other on the path). With tighten (the default) an existing directory's read and search
    bits for group and others are removed (mode 0700). The caller closes the descriptor.
    """
    fd, real = _walk_private_dir(path, create, final_symlink_ok, tighten, dry_run=False)
    assert fd is not None
    return fd, real


def check_private_dir(path: str | os.PathLike[str], final_symlink_ok: bool = False) -> tuple[str, bool]:
    """Whether open_private_dir(path) (create and tighten) would succeed, changing nothing.

    Returns (real path, whether it exists already). Raises UnsafeDirectory for exactly the
    directories open_private_dir refuses; for a directory still to be created, the deepest
    existing one on the way must be one we may create it in (checked as an ancestor, and
    writable by us). Nothing is created and no mode is changed.
    """
    fd, real = _walk_private_dir(path, True, final_symlink_ok, False, dry_run=True)
    if fd is None:
        return real, False
    os.close(fd)
    return real, True


def _walk_private_dir(
    path: str | os.PathLike[str], create: bool, final_symlink_ok: bool, tighten: bool, dry_run: bool
) -> tuple[int | None, str]:
    """open_private_dir's walk; with dry_run, (None, the path it would have) at the first missing one."""
    uid = os.geteuid()
    absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
    parts = _components(absolute)
    if not parts:
        raise UnsafeDirectory("/ cannot be a private directory")
    pending: deque[tuple[str, bool]] = deque((name, i == len(parts) - 1) for i, name in enumerate(parts))
    walk = _Walk(uid)
    links = 0
    try:
        while pending:
            name, final = pending.popleft()
            if name == "..":
                walk.up()
                continue
            parent, parent_fd = walk.here
            child = _join(parent, name)
            try:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                if dry_run:
                    if not os.access(parent, os.W_OK | os.X_OK):
                        raise UnsafeDirectory(
                            f"{parent} is not writable: {child} cannot be created"
                        ) from None
                    rest = [step for step, _final in pending if step != ".."]
                    return None, "/".join([child, *rest])
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if final and not final_symlink_ok:
                    target = os.readlink(name, dir_fd=parent_fd)
                    raise UnsafeDirectory(f"{child} is a symlink (to {target}); give the real directory")
                if st.st_uid not in (0, uid):
                    raise UnsafeDirectory(f"{child} is a symlink owned by {owner_name(st.st_uid)}")
                links += 1
                if links > _MAX_SYMLINKS:
                    raise UnsafeDirectory(f"too many symlinks on the way to {absolute}")
                target = os.readlink(name, dir_fd=parent_fd)
                if target.startswith("/"):
                    walk.restart()
                steps = _components(target)
                pending.extendleft(
                    reversed([(step, final and i == len(steps) - 1) for i, step in enumerate(steps)])
                )
                continue
            fd = os.open(name, OPEN_DIR, dir_fd=parent_fd)
            walk.stack.append((child, fd))
            if not final:
                _check_ancestor(os.fstat(fd), child, uid)
        if len(walk.stack) < 2:
            raise UnsafeDirectory(f"{absolute} leads to /, which cannot be a private directory")
        real, fd = walk.stack[-1]
        opened = os.fstat(fd)
        _check_own(opened, real, uid)
        if tighten and stat.S_IMODE(opened.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
        walk.stack.pop()
        return fd, real
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, UnsafeDirectory)):
            raise
        raise UnsafeDirectory(f"cannot open {absolute} safely: {exc.strerror or exc}") from None
    finally:
        walk.close()


@contextlib.contextmanager
def private_dir(path: str | os.PathLike[str], create: bool = False) -> Iterator[int]:
    """`with private_dir(root) as fd:` open_private_dir (following a symlink of ours) and close it after."""
    fd, _real = open_private_dir(path, create=create, final_symlink_ok=True)
    try:
        yield fd
    finally:
        os.close(fd)


def open_child_dir(parent_fd: int, name: str) -> int | None:
    """Open the real directory `name` in parent_fd (never through a symlink); None if it is not one."""
    try:
        return os.open(name, OPEN_DIR, dir_fd=parent_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink
            return None
        raise
