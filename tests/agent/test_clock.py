"""The clocks: the system one, and the virtual FakeClock the agent's tests run on."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.clock import Clock, SystemClock
from agent.testing_clock import FakeClock


async def test_the_system_clock_reads_and_sleeps_on_real_time() -> None:
    clock: Clock = SystemClock()
    assert abs(clock.time() - time.time()) < 1.0
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before


async def test_sleepers_wake_at_their_deadlines_in_order() -> None:
    woke: list[tuple[str, float]] = []
    with FakeClock(unix_start=1_000_000.0) as clock:
        t0 = clock.monotonic()

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic() - t0))
            if name == "b":  # scheduled from inside a step: still honoured in order
                await clock.sleep(0.5)
                woke.append(("b+", clock.monotonic() - t0))

        async with asyncio.TaskGroup() as tg:
            for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("late", 100.0)]:
                tg.create_task(sleeper(name, seconds))
            await clock.advance(10.0)
            assert woke == [("a", 1.0), ("b", 2.0), ("b+", 2.5), ("c", 3.0)]
            assert clock.elapsed_seconds == 10.0
            assert clock.time() == 1_000_010.0
            assert clock.unix(t0) == 1_000_000.0
            await clock.advance(90.0)
        assert woke[-1] == ("late", 100.0)


async def test_asyncio_timeouts_fire_in_virtual_time_without_waiting() -> None:
    real_start = time.monotonic()
    with FakeClock() as clock:
        t0 = clock.monotonic()

        async def hang() -> float:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3600):
                    await asyncio.Event().wait()
            return clock.monotonic() - t0

        task = asyncio.create_task(hang())
        await clock.advance(3599.0)
        assert not task.done()
        await clock.advance(1.0)
        assert task.done()
        assert task.result() == pytest.approx(3600.0)
    assert time.monotonic() - real_start < 5.0


async def test_sleepers_still_wake_after_the_loop_purges_cancelled_timers() -> None:
    # The loop replaces its timer heap when over half of it is cancelled: the clock
    # must not keep looking at the old one.
    with FakeClock() as clock:
        doomed = [asyncio.create_task(clock.sleep(50.0)) for _ in range(300)]
        await clock.settle()
        for t in doomed:
            t.cancel()
        await clock.settle()
        t0 = clock.monotonic()
        woke: list[float] = []

        async def sleeper() -> None:
            for _ in range(3):
                await clock.sleep(5.0)
                woke.append(clock.monotonic() - t0)

        task = asyncio.create_task(sleeper())
        await clock.advance(20.0)
        assert woke == [5.0, 10.0, 15.0]
        await task


async def test_closing_gives_the_loop_its_real_clock_back() -> None:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    await clock.advance(1000.0)
    assert loop.time() == clock.monotonic()
    clock.close()
    assert abs(loop.time() - time.monotonic()) < 1.0
    with pytest.raises(ValueError, match="does not go back"):
        await clock.advance(-1.0)
