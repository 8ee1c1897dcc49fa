"""A unix-socket relay in front of a bus: cut() drops only the connections made through it.

    relay = BusRelay(fake.bus.socket, workdir).start()   # relay.address: unix:path=<workdir>/relay
    relay.cut()                                         # its clients lose the bus; others keep it

One server connects through the relay, another directly to the bus: cutting the relay is an
outage (and a reconnect) of the first server only. The relay forwards bytes both ways; D-Bus's
EXTERNAL authentication passes because the relay runs as the same user.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class BusRelay:
    """Accepts on `<workdir>/relay` and relays each connection to `target` (threads, by bytes)."""

    def __init__(self, target: Path, workdir: Path) -> None:
        self.target = str(target)
        self.path = Path(workdir) / "relay"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    def start(self) -> BusRelay:
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection made through the relay so far (new ones are relayed again)."""
        with self._lock:
            open_now, self._open = self._open, []
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()
