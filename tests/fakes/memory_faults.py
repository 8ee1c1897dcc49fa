"""Fault injection of the in-memory systemd (tests/fakes/memory_systemd.py): failing calls and jobs.

`FaultPlan` holds what the next calls and start jobs do instead of succeeding: a call of a
SystemdPort method raises an injected error (`fail_next`, `fail_with_systemd_error`), start
jobs finish with another result (`set_start_result`) or never (`hang_start_jobs`), and a hanging
job wait fails when the manager goes away (`fail_jobs`). Faults of the manager as a whole (it
leaves the bus, a unit fails or vanishes) are MemorySystemd's own methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ffsystemd.errors import SystemdError, SystemdTimeout, SystemdUnavailable


@dataclass
class Fault:
    """An error the next calls of one method raise."""

    error: Callable[[], BaseException]
    times: int  # <= 0: every call


@dataclass
class FaultPlan:
    """What the next calls and start jobs do instead of succeeding."""

    hang_starts: bool = False
    start_results: list[str] = field(default_factory=list)  # results of the next start jobs
    _faults: dict[str, Fault] = field(default_factory=dict)
    _jobs: set[asyncio.Future[str]] = field(default_factory=set)

    def fail_next(self, method: str, error: Callable[[], BaseException], times: int = 1) -> None:
        """The next `times` calls of `method` (a SystemdPort method name; 0 = all) raise error()."""
        self._faults[method] = Fault(error, times)

    def fail_with_systemd_error(
        self, method: str, name: str, message: str = "injected", times: int = 1
    ) -> None:
        """The next calls of `method` answer the D-Bus error `name` (as SystemdError)."""
        self.fail_next(method, lambda: SystemdError(name, message), times)

    def hang_start_jobs(self, hang: bool = True) -> None:
        """Start jobs never finish while set (the unit stays activating)."""
        self.hang_starts = hang

    def set_start_result(self, result: str, times: int = 1) -> None:
        """The next `times` start jobs finish with `result` (failed, timeout, ...)."""
        self.start_results.extend([result] * times)

    def next_start_result(self) -> str:
        """The result the next start job finishes with: an injected one, else 'done'."""
        return self.start_results.pop(0) if self.start_results else "done"

    def raise_injected(self, method: str) -> None:
        """Raise the fault injected for method (using one of its times up), if any."""
        fault = self._faults.get(method)
        if fault is not None:
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[method]
            raise fault.error()

    def waiting_jobs(self) -> int:
        """How many job waits hang (a hanging start)."""
        return len(self._jobs)

    def fail_jobs(self, reason: str) -> None:
        """Every hanging job wait fails now with SystemdUnavailable(reason)."""
        for job in list(self._jobs):
            if not job.done():
                job.set_exception(SystemdUnavailable(reason))
        self._jobs.clear()

    async def job(self, unit: str, timeout: float) -> str:
        """Wait for a job that only a fault can end (hanging start); SystemdTimeout after timeout."""
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs.add(job)
        try:
            return await asyncio.wait_for(job, timeout)
        except asyncio.TimeoutError:
            raise SystemdTimeout(f"the job for {unit} did not finish within {timeout:g} s") from None
        finally:
            self._jobs.discard(job)
