"""A virtual clock for tests: time moves only when the test says so, and never waits.

``FakeClock`` takes over the running event loop's notion of time (``loop.time``), so
everything that waits on the loop waits on virtual time: ``clock.sleep``,
``asyncio.sleep``, and the ``asyncio.timeout`` that ``agent.runner.run_probe`` puts
around a hung probe. ``await clock.advance(seconds)`` then walks time forward from one
due timer to the next, letting the loop run everything that became ready at each
step, so a sleeper wakes at exactly its deadline and whatever it schedules in turn
(within the step) is honoured in order.

It knows CPython's event loop internals (``_ready``, ``_scheduled``) to tell when the
loop has nothing left to do at the current instant; it is for tests only.

    async def test_something() -> None:
        with FakeClock() as clock:
            task = asyncio.create_task(worker(clock))
            await clock.advance(60)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sized
from types import TracebackType
from typing import Protocol

__all__ = ["FakeClock"]

_MAX_SETTLE_STEPS = 1_000_000


class _TimerHandle(Protocol):
    def when(self) -> float: ...
    def cancelled(self) -> bool: ...


class FakeClock:
    """Virtual monotonic and wall time for the running event loop (see the module doc)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        unix_start: float = 1_750_000_000.0,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        if not isinstance(getattr(self._loop, "_ready", None), Sized) or not isinstance(
            getattr(self._loop, "_scheduled", None), list
        ):
            raise RuntimeError("FakeClock needs CPython's asyncio event loop")
        # Start where the loop's own clock is (rounded up to a whole second, so that
        # whole and half seconds add up exactly), so timers it already holds keep
        # their places.
        self._start = float(math.ceil(self._loop.time()))
        self._now = self._start
        self._unix_offset = unix_start - self._start
        self._installed = True
        # The loop calls self.time() everywhere (call_later, timeouts, its run step):
        # an instance attribute shadows the method.
        setattr(self._loop, "time", self.monotonic)  # noqa: B010

    def close(self) -> None:
        """Give the loop its real clock back (timers already set keep virtual deadlines)."""
        if self._installed:
            delattr(self._loop, "time")
            self._installed = False

    def __enter__(self) -> FakeClock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the Clock protocol --------------------------------------------------------------

    def time(self) -> float:
        return self._now + self._unix_offset

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # --- driving time --------------------------------------------------------------------

    @property
    def elapsed_seconds(self) -> float:
        """Virtual seconds since the clock was created."""
        return self._now - self._start

    def unix(self, monotonic: float) -> float:
        """The wall time that corresponds to a monotonic reading of this clock."""
        return monotonic + self._unix_offset

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper on the way, in order."""
        if seconds < 0:
            raise ValueError("time does not go back")
        await self.advance_to(self._now + seconds)

    async def advance_to(self, monotonic: float) -> None:
        """Move time forward to the monotonic reading ``monotonic``."""
        await self.settle()
        while (due := self._next_timer()) is not None and due <= monotonic:
            self._now = max(self._now, due)
            await self.settle()
        self._now = max(self._now, monotonic)
        await self.settle()

    async def settle(self) -> None:
        """Let the loop run until nothing is ready at the current instant."""
        for _ in range(_MAX_SETTLE_STEPS):
            await asyncio.sleep(0)
            ready: Sized = getattr(self._loop, "_ready")  # noqa: B009
            if not len(ready) and not self._timer_due():
                return
        raise RuntimeError(f"the event loop never went idle in {_MAX_SETTLE_STEPS} steps")

    def _timer_due(self) -> bool:
        due = self._next_timer()
        return due is not None and due <= self._now

    def _next_timer(self) -> float | None:
        # Read the heap afresh each time: the loop replaces the list when it purges
        # cancelled timers. Its head is the earliest unless cancelled (purged lazily).
        heap: list[_TimerHandle] = getattr(self._loop, "_scheduled")  # noqa: B009
        if not heap:
            return None
        if not heap[0].cancelled():
            return heap[0].when()
        return min((h.when() for h in heap if not h.cancelled()), default=None)
