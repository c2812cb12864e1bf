"""Time as the agent sees it, injected so tests can jump it instead of waiting.

``monotonic()`` schedules things (it never jumps when NTP steps the wall clock);
``time()`` stamps what is recorded and sent (unix seconds); ``sleep()`` waits on the
monotonic clock. The fake for tests is ``agent.testing_clock.FakeClock``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock unix seconds, for timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for scheduling."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the monotonic clock (cancellable)."""
        ...


class SystemClock:
    """The real clocks; ``sleep`` is the event loop's, which runs on ``time.monotonic``."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
