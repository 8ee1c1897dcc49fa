"""Is a session's Xpra serving its HTML5 client yet? One HTTP request over its unix socket."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


async def http_status_on_socket(socket_path: Path, path: str = "/", timeout: float = 2.0) -> int | None:
    """Return the HTTP status code for GET `path` on a unix socket, or None if nobody answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path)), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            return int(parts[1])
        return None
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serves_html5_client(socket_path: Path) -> bool:
    """True when the socket answers GET / with 200, i.e. Xpra serves its HTML5 client."""
    return await http_status_on_socket(socket_path) == 200
