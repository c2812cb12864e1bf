"""The check scheduler, in virtual time: spread, limits, isolation, no drift, reload."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import statistics
from collections.abc import AsyncIterator

import pytest

from agent.scheduler import Scheduler
from agent.testing_clock import FakeClock
from inventory.config import AgentConfig
from inventory.model import Check, Device, Site
from inventory.secrets import SecretRef
from inventory.target import Target
from probes.result import ProbeResult, Status
from tests.agent._fakes import Recorder, StartLog, check, register_fake_kind, site


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    with FakeClock() as c:
        yield c


@pytest.fixture(autouse=True)
def _fake_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    register_fake_kind(monkeypatch)


@contextlib.asynccontextmanager
async def running(*schedulers: Scheduler) -> AsyncIterator[None]:
    """Run the schedulers for the body of the block, then cancel them."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(s.run()) for s in schedulers]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()


def on_grid(starts: list[float], interval: float) -> list[tuple[int, float]]:
    """(slot number, offset from the grid) of each start, the first start being slot 0."""
    out = []
    for s in starts:
        k = round((s - starts[0]) / interval)
        out.append((k, s - starts[0] - k * interval))
    return out


async def test_first_runs_of_133_sites_spread_over_the_interval(clock: FakeClock) -> None:
    interval = 5.0
    log = StartLog(clock)
    schedulers = [
        Scheduler(
            site(f"s{i}", {"ont": (check("icmp", interval),)}),
            Recorder(),
            clock=clock,
            run=log,
            rng=random.Random(i),
        )
        for i in range(133)
    ]
    t0 = clock.monotonic()
    async with running(*schedulers):
        await clock.advance(interval)
    first = sorted(starts[0] - t0 for starts in log.starts.values())

    assert len(first) == 133
    assert first[0] >= 0 and first[-1] < interval
    # Uniform over the interval: 13.3 expected in each tenth of it.
    tenths = [
        sum(1 for f in first if i * interval / 10 <= f < (i + 1) * interval / 10) for i in range(10)
    ]
    assert min(tenths) >= 5, tenths
    assert max(tenths) <= 24, tenths
    # Never a burst: at most a handful start within any 50 ms (2.7 expected, not 133).
    most_in_50ms = max(sum(1 for g in first if f <= g < f + 0.05) for f in first)
    assert most_in_50ms <= 8
    assert log.max_in_flight <= 10


@pytest.mark.parametrize(
    ("max_concurrency", "per_device", "expect_global", "expect_device"),
    [
        pytest.param(4, 1, 4, 1, id="global limit 4 binds before one per device"),
        pytest.param(16, 2, 12, 2, id="two per device bind before a global limit of 16"),
        pytest.param(1, 2, 1, 1, id="a global limit of 1 runs one probe at a time"),
    ],
)
async def test_concurrency_limits_hold(
    clock: FakeClock, max_concurrency: int, per_device: int, expect_global: int, expect_device: int
) -> None:
    # 6 devices x 3 checks, each probe busy 3.5 s of every 5 s: far more work than slots.
    checks = tuple(check(n, delay_seconds=3.5) for n in ("a", "b", "c"))
    log = StartLog(clock)
    sched = Scheduler(
        site("s", {f"d{i}": checks for i in range(6)}),
        Recorder(),
        max_concurrency=max_concurrency,
        per_device_concurrency=per_device,
        clock=clock,
        run=log,
        rng=random.Random(7),
    )
    async with running(sched):
        for _ in range(200):
            await clock.advance(0.25)
            stats = sched.stats()
            assert stats.running <= max_concurrency
            assert stats.running + stats.waiting <= 18

    assert log.max_in_flight == expect_global
    assert max(log.max_per_device.values()) == expect_device
    stats = sched.stats()
    assert stats.runs_total > 0
    assert stats.results_total == {Status.UP: stats.runs_total}
    if max_concurrency < 12:
        assert stats.skipped_total > 0  # overloaded: slots came while runs still waited


async def ok_device_starts(clock: FakeClock, with_hung_neighbour: bool) -> dict[str, list[float]]:
    ok = (check("icmp", delay_seconds=0.5), check("http", delay_seconds=1.5))
    hung = (
        check("icmp", timeout_seconds=6.0, hang=True),
        check("http", timeout_seconds=6.0, hang=True),
        check("snmp", timeout_seconds=6.0, hang=True),
    )
    devices = {"ok": ok, "hung": hung} if with_hung_neighbour else {"ok": ok}
    log = StartLog(clock)
    sink = Recorder()
    sched = Scheduler(
        site("s", devices),
        sink,
        max_concurrency=4,
        per_device_concurrency=2,
        clock=clock,
        run=log,
        rng=random.Random(42),
    )
    t0 = clock.monotonic()
    async with running(sched):
        await clock.advance(100.0)
    if with_hung_neighbour:
        hung_results = [d for d in sink.delivered if d.device == "s-hung"]
        assert hung_results
        assert all(d.result.status is Status.DOWN for d in hung_results)
        assert "fake probe of 127.0.0.1 gave no result within 6 s" in hung_results[0].result.reason
        by_check = {c.check: c for c in sched.check_stats()}
        assert by_check["icmp"].skipped_total  # 6 s runs on a 5 s interval skip slots
        assert sched.stats().results_total[Status.DOWN] == len(hung_results)
    ok_results = [d for d in sink.delivered if d.device == "s-ok"]
    assert ok_results
    assert all(d.result.status is Status.UP for d in ok_results)
    return {name: [s - t0 for s in log.starts[("s-ok", name)]] for name in ("icmp", "http")}


async def test_a_hung_device_does_not_delay_another_devices_checks(clock: FakeClock) -> None:
    alone = await ok_device_starts(clock, with_hung_neighbour=False)
    beside_hung = await ok_device_starts(clock, with_hung_neighbour=True)

    for name in ("icmp", "http"):
        assert len(alone[name]) >= 19
        assert beside_hung[name] == pytest.approx(alone[name], abs=1e-6)


@pytest.mark.parametrize(
    ("delay_seconds", "slot_step"),
    [
        pytest.param(1.0, 1, id="a probe quicker than its interval runs at every slot"),
        pytest.param(7.0, 2, id="a probe slower than its interval skips every other slot"),
    ],
)
async def test_no_drift_over_1000_intervals(
    clock: FakeClock, delay_seconds: float, slot_step: int
) -> None:
    interval, jitter = 5.0, 0.1
    log = StartLog(clock)
    sched = Scheduler(
        site("s", {"ont": (check("icmp", interval, 10.0, delay_seconds=delay_seconds),)}),
        Recorder(),
        jitter_ratio=jitter,
        clock=clock,
        run=log,
        rng=random.Random(3),
    )
    async with running(sched):
        await clock.advance(1000 * interval + interval)
    starts = log.starts[("s-ont", "icmp")]
    slots = on_grid(starts, interval)

    assert len(starts) >= 1000 // slot_step
    # Every run stays within half the jitter of its grid point, the thousandth included.
    assert max(abs(off) for _, off in slots) <= jitter * interval / 2 + 1e-9
    assert [k for k, _ in slots] == list(range(0, slot_step * len(starts), slot_step))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= slot_step * interval - jitter * interval - 1e-9
    assert max(gaps) <= slot_step * interval + jitter * interval + 1e-9
    assert statistics.pstdev(gaps) > 0.1  # the jitter is there
    assert sched.stats().skipped_total == (len(starts) - 1) * (slot_step - 1)


async def reload_scenario(clock: FakeClock, reload: bool) -> tuple[StartLog, Recorder, float]:
    before = site(
        "s",
        {
            "ont": (check("icmp", delay_seconds=0.1), check("http", delay_seconds=3.0)),
            "codec": (check("sip", 10.0, delay_seconds=0.2),),
        },
    )
    after = site(
        "s",
        {
            "ont": (
                check("icmp", delay_seconds=0.3),  # same interval, new params: kept
                check("snmp", 60.0, delay_seconds=1.0),  # added
            ),  # http removed
            "codec": (check("sip", 10.0, delay_seconds=0.2),),  # unchanged
            "cell": (check("icmp", delay_seconds=0.1),),  # a new device
        },
    )
    log = StartLog(clock)
    sink = Recorder()
    sched = Scheduler(before, sink, clock=clock, run=log, rng=random.Random(11))
    t0 = clock.monotonic()
    reloaded_at = float("nan")
    async with running(sched):
        await clock.advance(30.0)
        # Reload while the http check (3 s of every 5) is running.
        for _ in range(100):
            if any(c.check == "http" and c.in_progress for c in sched.check_stats()):
                break
            await clock.advance(0.1)
        reloaded_at = clock.monotonic() - t0
        if reload:
            sched.reload(after)
            assert sched.site is after
            assert {(c.device, c.check) for c in sched.check_stats()} == {
                ("s-ont", "icmp"),
                ("s-ont", "snmp"),
                ("s-codec", "sip"),
                ("s-cell", "icmp"),
            }
        await clock.advance(60.0)
    log.starts = {k: [s - t0 for s in v] for k, v in log.starts.items()}
    return log, sink, reloaded_at


async def test_reload_keeps_unchanged_schedules_starts_new_checks_and_stops_removed_ones(
    clock: FakeClock,
) -> None:
    control, _, at = await reload_scenario(clock, reload=False)
    log, sink, reloaded_at = await reload_scenario(clock, reload=True)
    assert reloaded_at == pytest.approx(at)

    # Kept checks: the very same start times as without the reload.
    for key in [("s-ont", "icmp"), ("s-codec", "sip")]:
        assert log.starts[key] == pytest.approx(control.starts[key], abs=1e-6)
    # The kept check's new params apply from its next run.
    icmp = sink.of("s-ont", "icmp")
    assert "0.1 s" in icmp[0].result.reason
    assert "0.3 s" in icmp[-1].result.reason
    # Removed: its run in progress is cancelled (no result) and it never starts again.
    http_starts = log.starts[("s-ont", "http")]
    assert http_starts[-1] < reloaded_at
    assert len(sink.of("s-ont", "http")) == len(http_starts) - 1
    # Added: first run within one interval of the reload.
    for key, interval in [(("s-ont", "snmp"), 60.0), (("s-cell", "icmp"), 5.0)]:
        assert reloaded_at <= log.starts[key][0] < reloaded_at + interval


async def test_a_changed_interval_restarts_the_check_with_its_new_interval(
    clock: FakeClock,
) -> None:
    log = StartLog(clock)
    sched = Scheduler(
        site("s", {"ont": (check("icmp", 5.0),)}),
        Recorder(),
        clock=clock,
        run=log,
        rng=random.Random(1),
    )
    async with running(sched):
        await clock.advance(20.0)
        n_before = len(log.starts[("s-ont", "icmp")])
        sched.reload(site("s", {"ont": (check("icmp", 20.0),)}))
        await clock.advance(100.0)
    starts = log.starts[("s-ont", "icmp")][n_before:]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert 4 <= len(starts) <= 6
    assert all(18.0 <= g <= 22.0 for g in gaps)


async def test_a_buggy_runner_and_a_failing_sink_do_not_stop_the_other_checks(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def runner(
        kind: str, target: Target, params: object, timeout_seconds: float
    ) -> ProbeResult:
        if target.device_id == "s-buggy":
            raise ZeroDivisionError("oops")
        return ProbeResult(Status.UP, "fine")

    good: list[str] = []

    async def sink(s: Site, device: Device, c: Check, result: ProbeResult, ts: float) -> None:
        if device.id == "s-sinkfail":
            raise OSError("disk full")
        good.append(f"{device.id} {result.status}")

    sched = Scheduler(
        site(
            "s", {"buggy": (check("icmp"),), "sinkfail": (check("icmp"),), "ok": (check("icmp"),)}
        ),
        sink,
        clock=clock,
        run=runner,
        rng=random.Random(5),
    )
    with caplog.at_level(logging.INFO, logger="agent.scheduler"):
        async with running(sched):
            await clock.advance(50.0)

    assert good.count("s-ok up") >= 9
    assert good.count("s-buggy down") >= 9
    stats = sched.stats()
    assert stats.sink_errors_total >= 9
    assert stats.results_total[Status.DOWN] >= 9
    bug_lines = [r for r in caplog.records if r.getMessage().startswith("bug running s-buggy")]
    assert len(bug_lines) >= 9 and bug_lines[0].exc_info is not None
    # The sink's failure is logged once with its traceback, not at every result.
    sink_lines = [r for r in caplog.records if "result sink failed" in r.getMessage()]
    assert len(sink_lines) == 1
    assert sink_lines[0].exc_info is not None


async def test_cancelling_run_leaves_no_task_behind(clock: FakeClock) -> None:
    sched = Scheduler(
        site(
            "s", {"hung": (check("icmp", timeout_seconds=60.0, hang=True),), "ok": (check("icmp"),)}
        ),
        Recorder(),
        clock=clock,
        rng=random.Random(2),
    )
    task = asyncio.create_task(sched.run())
    await clock.advance(12.0)
    assert sched.stats().running >= 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert sched.stats().running == 0
    with pytest.raises(RuntimeError, match="called once"):
        await sched.run()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"jitter_ratio": 0.6}, "jitter_ratio", id="jitter above one half is refused"),
        pytest.param({"max_concurrency": 0}, "at least 1", id="a zero global limit is refused"),
        pytest.param(
            {"per_device_concurrency": 0}, "at least 1", id="a zero device limit is refused"
        ),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(site("s", {}), Recorder(), **kwargs)  # type: ignore[arg-type]


def test_from_config_takes_the_agents_limits_and_jitter() -> None:
    config = AgentConfig(
        site="s",
        central_urls=("https://central.example/",),
        token=SecretRef("${DIEMCAU_TOKEN}"),
        max_concurrency=3,
        per_device_concurrency=1,
        jitter_ratio=0.2,
    )
    sched = Scheduler.from_config(site("s", {"ont": (check("icmp"),)}), config, Recorder())
    assert (sched.max_concurrency, sched.per_device_concurrency, sched.jitter_ratio) == (3, 1, 0.2)
    assert sched.stats().checks == 1
