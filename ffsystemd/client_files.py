"""The Xpra HTML5 client's static files, read once at start-up and served by the Jupyter server.

They are the same for every session (Xpra's installed `www` directory), so they are served
from memory under a content-addressed URL, `<base_url>firefox-launcher/client/<version>/<path>`,
with long-lived cache headers: a second launch loads them from the browser's cache, and no
session's Xpra is asked for them (only the page's per-session policy and the websocket need
the session). `version` is a digest of every file served, so a change of any file (an Xpra
upgrade, a new shim) changes every URL. The session page is built from them once (ClientFiles.page):
Chromium caches nothing for the opaque-origin page (not even these immutable files), so the
scripts it needs and its stylesheets are inline in the page itself, and only images and fonts
(and a script that cannot be inline) are fetched from here.

What is served is an allow-list built here, once: the regular files of the directory whose
extension is a client file type (ffsystemd.session_page.CONTENT_TYPES: scripts, styles,
images, fonts; never HTML), plus our shim. A symlink is followed only to a regular file inside
the directory itself or inside the system's shared JavaScript libraries
(`/usr/share/javascript`, where Debian keeps the jQuery the client links to); a symlinked
directory is never entered. A request names a key of that table or gets a 404: no path is ever
joined to a directory at request time, so `..`, symlinks planted later and unknown files cannot
be reached. Files on disk that change after start-up are not seen until a restart (and cannot
make the served bytes differ from their digest).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .session_page import (
    OUR_SCRIPTS,
    inline_style_hashes,
    page_scripts_dropped,
    rewrite_index,
    static_content_type,
)

log = logging.getLogger(__name__)

HTML5_DIRS = (Path("/usr/share/xpra/www"), Path("/usr/local/share/xpra/www"))
"""Where Xpra's HTML5 client is installed (the first with an index.html is used)."""

SHARED_JS_DIRS = (Path("/usr/share/javascript"),)
"""Outside the client's directory, symlinks are followed only into these (Debian's shared JS)."""

MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_FILES = 4096
VERSION_CHARS = 20
VERSION_PATTERN = rf"[0-9a-f]{{{VERSION_CHARS}}}"
INLINE_SCRIPT_MAX_BYTES = 30 * 1024
"""Scripts smaller than this go inline in the session page; larger ones stay files, which
Chromium compiles off its main thread while the page parses (script streaming; it streams no
script under 30 KiB). Paired warm clicks: see README, Benchmarks."""


@dataclass(frozen=True)
class StaticFile:
    """One served file: its bytes, our Content-Type for it and its ETag (a digest of the bytes)."""

    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class SessionPage:
    """The session page as served, and the CSP hashes of its inline scripts and styles."""

    body: bytes
    script_hashes: tuple[str, ...]
    style_hashes: tuple[str, ...]


@dataclass(frozen=True)
class ClientFiles:
    """The allow-list of the client's files, and its index.html as installed."""

    directory: Path
    version: str
    files: Mapping[str, StaticFile]
    index: bytes

    _pages: dict[tuple[str, bool], SessionPage] = field(default_factory=dict, compare=False, repr=False)

    def page(self, static_base: str, video: bool) -> SessionPage:
        """The session page (the same for every session) with the CSP hashes it needs.

        Xpra's index.html rewritten (ffsystemd.session_page.rewrite_index): without the scripts
        the client does not need (page_scripts_dropped(video)), every other script and every
        stylesheet of the allow-list inline (each hash once), the rest pointing to `static_base`.
        Built once per (static_base, video) and kept; raises PageError as rewrite_index does.
        """
        key = (static_base, video)
        if key not in self._pages:
            inline = {
                path: f.body
                for path, f in self.files.items()
                if path.endswith(".js") and len(f.body) < INLINE_SCRIPT_MAX_BYTES
            }
            styles = {path: f.body for path, f in self.files.items() if path.endswith(".css")}
            body, hashes = rewrite_index(
                self.index, static_base, drop=page_scripts_dropped(video), inline=inline, styles=styles
            )
            styled = tuple(dict.fromkeys(inline_style_hashes(body)))
            self._pages[key] = SessionPage(body, tuple(dict.fromkeys(hashes)), styled)
        return self._pages[key]

    def get(self, path: str) -> StaticFile | None:
        """The file served at `path` (relative, as in the URL), or None: only exact keys match."""
        return self.files.get(path)

    def url_path(self, base_url: str) -> str:
        """`<base_url>firefox-launcher/client/<version>/` (with the trailing slash)."""
        return f"{base_url.rstrip('/')}/firefox-launcher/client/{self.version}/"


def find_client_dir(candidates: tuple[Path, ...] | None = None) -> Path | None:
    """The first directory of candidates (default HTML5_DIRS) holding Xpra's index.html, or None."""
    dirs = HTML5_DIRS if candidates is None else candidates
    return next((d for d in dirs if (d / "index.html").is_file()), None)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _safe_target(entry: Path, directory: Path) -> Path | None:
    """The regular file `entry` stands for, if it may be served; None otherwise."""
    try:
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = entry.resolve(strict=True)
            if not _inside(target, (directory, *(d.resolve() for d in SHARED_JS_DIRS if d.exists()))):
                log.debug("ffsystemd: not serving %s: its link leads to %s", entry, target)
                return None
            st = target.stat()
        else:
            target = entry
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    if st.st_uid not in (0, os.getuid()):
        return None
    return target


def load_client_files(directory: Path) -> ClientFiles:
    """Read the client's files under directory into the allow-list (see the module docstring).

    Raises OSError when the directory or its index.html cannot be read, ValueError when it
    holds more than MAX_FILES files or MAX_TOTAL_BYTES bytes of client files.
    """
    directory = directory.resolve(strict=True)
    index_path = _safe_target(directory / "index.html", directory)
    if index_path is None:
        raise OSError(f"{directory}/index.html is not a regular file owned by root or this user")
    index = index_path.read_bytes()
    files: dict[str, StaticFile] = {}
    total = 0
    for top, dirs, names in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            entry = Path(top) / name
            relative = entry.relative_to(directory).as_posix()
            content_type = static_content_type(relative)
            if content_type is None or relative.startswith("_ffsystemd/"):
                continue
            target = _safe_target(entry, directory)
            if target is None:
                continue
            body = target.read_bytes()
            total += len(body)
            if total > MAX_TOTAL_BYTES or len(files) >= MAX_FILES:
                raise ValueError(f"{directory} holds more client files than ffsystemd serves")
            files[relative] = _static(body, content_type)
    for path, script in OUR_SCRIPTS.items():
        files[path] = _static(script, "text/javascript; charset=utf-8")
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(f"{relative}\0{files[relative].etag}\0".encode())
    digest.update(hashlib.sha256(index).hexdigest().encode())
    return ClientFiles(directory, digest.hexdigest()[:VERSION_CHARS], files, index)


def _static(body: bytes, content_type: str) -> StaticFile:
    return StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def discover_client_files(candidates: tuple[Path, ...] | None = None) -> ClientFiles | None:
    """The client's files from the first installed directory, or None (then Xpra serves them).

    Never raises: a missing or unreadable directory is logged and the session pages fall back
    to fetching the client's files from each session's Xpra.
    """
    directory = find_client_dir(candidates)
    if directory is None:
        dirs = HTML5_DIRS if candidates is None else candidates
        log.warning("ffsystemd: Xpra's HTML5 client not found in %s", ", ".join(map(str, dirs)))
        return None
    try:
        files = load_client_files(directory)
    except (OSError, ValueError) as exc:
        log.warning("ffsystemd: cannot serve Xpra's HTML5 client from %s: %s", directory, exc)
        return None
    log.info(
        "ffsystemd: serving %d files of Xpra's HTML5 client from %s (version %s)",
        len(files.files),
        directory,
        files.version,
    )
    return files
