"""Where Firefox's downloads land and where its file-upload dialog opens (checked at start-up).

`downloads_dir` names a directory the JupyterLab file browser shows: relative to the server's
`root_dir` by default (`Downloads`), or an absolute path. It is opened the way the session root
is (ffsystemd.safe_dirs: a walk from `/` that follows no symlink another user owns), so:

* a missing directory is created mode 0700 (and so are missing parents);
* it must be a real directory, not a symlink, owned by the server's user and not writable by
  group or others; the directories above it must be root's or ours and not writable by others
  (unless sticky); an existing directory keeps its mode (we do not chmod a user's directory);
* a relative value must stay inside `root_dir` (no `..` or symlink on the way out of it).

Nothing here makes anything writable that was not: sessions run as the server's user, who
could already write there; ffsystemd only tells Firefox (user.js) to save downloads there.
"""

from __future__ import annotations

import os
from pathlib import Path

from .safe_dirs import open_private_dir


def resolve_downloads_dir(value: str, root_dir: str | os.PathLike[str]) -> Path | None:
    """The configured downloads directory as an absolute path; None for '' (the session's own).

    `~` is expanded; a relative value is taken relative to root_dir.
    """
    if not value:
        return None
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = Path(os.path.abspath(Path(root_dir).expanduser() / path))
    return path


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _deepest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_stays_inside(path: Path, root_dir: str | os.PathLike[str]) -> None:
    """ValueError unless path (relative to root_dir) stays inside it, before anything is created."""
    top = Path(os.path.abspath(Path(root_dir).expanduser()))
    real_top = os.path.realpath(top)
    if not _inside(str(path), str(top)):
        raise ValueError(f"{path} is outside the server's root_dir {top}")
    if os.path.islink(path):
        raise ValueError(f"{path} is a symlink (to {os.readlink(path)}); give the real directory")
    existing = os.path.realpath(_deepest_existing(path))
    if not _inside(existing, real_top):
        raise ValueError(f"{path} leads to {existing}, outside the server's root_dir {real_top}")


def open_downloads_dir(value: str, root_dir: str | os.PathLike[str]) -> Path | None:
    """Create or accept the downloads directory; return its real path (None for '').

    Raises ValueError (the message says which directory and why) when the directory is a
    symlink, is not ours, is writable by other users, sits under a directory another user
    controls, cannot be created, or (for a relative value) leads outside root_dir; in that
    last case nothing is created.
    """
    path = resolve_downloads_dir(value, root_dir)
    if path is None:
        return None
    relative = not Path(os.path.expanduser(value)).is_absolute()
    if relative:
        _check_stays_inside(path, root_dir)
    try:
        fd, real = open_private_dir(path, create=True, tighten=False)
    except OSError as exc:
        raise ValueError(f"cannot create {path}: {exc.strerror or exc}") from None
    os.close(fd)
    if relative:
        _check_stays_inside(Path(real), root_dir)
    return Path(real)


def upload_prefs(root_dir: str | os.PathLike[str]) -> dict[str, object]:
    """Firefox prefs: a page's file-upload dialog opens in root_dir (until the user picks another).

    `dom.input.fallbackUploadDir` is where Firefox's file picker for `<input type=file>` starts
    when it remembers no directory for the site (it remembers the last one per site).
    """
    return {"dom.input.fallbackUploadDir": str(Path(root_dir).expanduser().absolute())}
