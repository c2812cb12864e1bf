"""Async polling under a deadline, for tests whose own server runs in the same event loop.

The sync ``wait_until`` in ``_util`` sleeps in the thread: inside an async test it would
freeze the loop, and with it the test's own HTTP server the peer is trying to reach.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    attempt: Callable[[], Awaitable[T | None]], timeout_seconds: float, what: str
) -> T:
    """Call ``attempt`` until it returns something other than ``None``; fail at the deadline.

    ``what`` names the condition in the error, and the last value seen is shown with it.
    """
    deadline = time.monotonic() + timeout_seconds
    delay = 0.02
    while True:
        value = await attempt()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_seconds} s")
        await asyncio.sleep(delay)  # a poll interval under a deadline, not a wait for a guess
        delay = min(delay * 2, 0.25)
