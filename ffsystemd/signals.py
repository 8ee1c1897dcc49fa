"""SIGINT stops the Jupyter server through its normal shutdown, so the sessions stop with it.

jupyter_server installs its own SIGINT handler only when stdin is a terminal. Without one,
Python turns SIGINT into a KeyboardInterrupt that leaves the event loop with no cleanup at
all: `stop_extension` never runs and every session outlives the server. JupyterHub stops a
single-user server with SIGINT first (then SIGTERM after `interrupt_timeout`), and so do
process supervisors and `kill -INT`; the idle culler stops servers the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def stop_on_sigint(stop: Callable[[], None]) -> Callable[[], None] | None:
    """Make SIGINT call `stop()` (once; a second SIGINT is Python's default again).

    Installed only from the main thread and only where SIGINT still has Python's default
    handler (jupyter_server's interactive one, or anyone else's, is left alone). Returns a
    function that restores the default handler if ours is still installed, or None when
    nothing was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.info("ffsystemd: SIGINT: stopping the Jupyter server (its sessions per on_shutdown)")
        stop()

    signal.signal(signal.SIGINT, on_sigint)

    def restore() -> None:
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore
