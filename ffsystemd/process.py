"""Start a session's Xpra held at a gate, so systemd can place it in a scope before it runs.

The child is `/bin/sh` blocked reading its stdin; `release()` writes `go` and the
shell execs Xpra, `abort()` closes the pipe and the shell exits without running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from .commands import gate_command


class GatedProcess:
    """A child process waiting at the gate, then running argv; owns its stdin pipe and log."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self._proc = proc
        self.log_path = log_path
        self.released = False  # the gate was opened: the child runs (or ran) its command

    @classmethod
    async def spawn(
        cls, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> GatedProcess:
        """Fork the gated child (its own session, output to log_path); it runs nothing yet."""
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *gate_command(argv),
                stdin=asyncio.subprocess.PIPE,
                stdout=fd,
                stderr=fd,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
        return cls(proc, log_path)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), None while running."""
        return self._proc.returncode

    @property
    def exited(self) -> bool:
        """The child has exited, even if the event loop has not reaped it yet (it is a zombie)."""
        if self._proc.returncode is not None:
            return True
        try:
            with open(f"/proc/{self._proc.pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except (OSError, IndexError):
            return True

    async def release(self) -> None:
        """Let the child exec its command."""
        assert self._proc.stdin is not None
        self.released = True
        self._proc.stdin.write(b"go\n")
        await self._proc.stdin.drain()
        self._proc.stdin.close()

    async def abort(self, timeout: float = 5.0) -> None:
        """Close the gate so the child exits without running its command, and reap it."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        await self.wait_or_kill(timeout)

    async def wait(self) -> int:
        """Wait for the child to exit and return its status."""
        return await self._proc.wait()

    async def wait_or_kill(self, timeout: float) -> int:
        """Wait up to timeout for the exit, then SIGKILL this PID and reap it."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)
            return await self._proc.wait()


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16384) -> list[str]:
    """Return the last lines of a log file (empty if it is missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    return [line for line in text if line.strip()][-lines:]
