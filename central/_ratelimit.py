"""Admission control: a token bucket per agent, and a gate on batches in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from central.errors import RequestError


class RateLimiter:
    """A token bucket per key: ``rate_per_second`` refill, ``burst`` capacity."""

    __slots__ = ("_buckets", "_clock", "burst", "rate_per_second")

    def __init__(self, rate_per_second: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if allowed, else seconds until one is."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        # max(): a clock stepped back must not drain the bucket.
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate_per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate_per_second


class IngestGate:
    """At most ``limit`` batches read, decoded or stored at once; when ``queue`` more wait
    already, refuse at once (503 + Retry-After) rather than hold the connection.

    After a province-wide outage every agent drains its backlog together; the single
    writer stores one batch at a time, so more in flight only holds more parsed batches
    in memory (tens of MB each) and runs agents into their push deadline.
    """

    __slots__ = ("_sem", "_waiting", "queue", "retry_after_seconds")

    def __init__(self, limit: int, queue: int, retry_after_seconds: int = 2) -> None:
        self._sem = asyncio.Semaphore(limit)
        self._waiting = 0
        self.queue = queue
        self.retry_after_seconds = retry_after_seconds

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem.locked() and self._waiting >= self.queue:
            raise RequestError(
                503,
                "central is busy storing other agents' batches; retry shortly",
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
        self._waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._sem.release()
