"""A token bucket per key: ``rate_per_second`` refill, ``burst`` capacity."""

from __future__ import annotations

from collections.abc import Callable


class RateLimiter:
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
