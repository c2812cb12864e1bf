"""The health state machine: confirmation, hysteresis, flap damping, the log, detection time."""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
from collections.abc import AsyncIterator

import pytest

from agent.health import CheckKey, Health, State, StateChange, StateMachine, format_duration
from agent.scheduler import Scheduler
from agent.testing_clock import FakeClock
from inventory.config import HealthConfig
from inventory.model import Check, Device, Site
from inventory.target import Target
from inventory.wire import Event, event_json
from probes.result import ProbeResult, Status
from tests.agent._fakes import check, site

KEY = CheckKey("bt-phan-thiet-phu-thuy", "bt-phan-thiet-phu-thuy-ont", "icmp")
REASONS = {
    "U": "10/10 echo replies, rtt 2.1 ms",
    "G": "loss 30 % >= 3 % critical",
    "D": "no ICMP echo reply from 10.2.3.4 (10 sent)",
}
STATUS = {"U": Status.UP, "G": Status.DEGRADED, "D": Status.DOWN}
T0 = 1_750_000_000.0
STEP = 5.0


def feed(
    pattern: str, config: HealthConfig | None = None, logger: logging.Logger | None = None
) -> tuple[StateMachine, list[tuple[int, StateChange]]]:
    """Feed results ('U' up, 'G' degraded, 'D' down; spaces ignored) 5 s apart."""
    machine = StateMachine(KEY, config or HealthConfig(), logger)
    changes = []
    for i, c in enumerate(pattern.replace(" ", "")):
        change = machine.observe(STATUS[c], REASONS[c], T0 + STEP * i)
        if change is not None:
            changes.append((i, change))
    return machine, changes


def at(i: int) -> float:
    return T0 + STEP * i


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param(
            "UU DUU DUU", [(1, "unknown", "up", 0)], id="one lost burst in three does not page"
        ),
        pytest.param(
            "UU DUD",
            [(1, "unknown", "up", 0), (4, "up", "down", 2)],
            id="two of three lost is DOWN since the first failure",
        ),
        pytest.param(
            "UU DD",
            [(1, "unknown", "up", 0), (3, "up", "down", 2)],
            id="two lost in a row is DOWN since the first of them",
        ),
        pytest.param(
            "DD", [(1, "unknown", "down", 0)], id="a check that starts dead leaves UNKNOWN for DOWN"
        ),
        pytest.param("U", [], id="one good result is not yet a confirmation"),
        pytest.param("D", [], id="one lost burst at start is not yet a confirmation"),
        pytest.param(
            "UU DD U",
            [(1, "unknown", "up", 0), (3, "up", "down", 2)],
            id="one good result after DOWN does not recover",
        ),
        pytest.param(
            "UU DD UU",
            [(1, "unknown", "up", 0), (3, "up", "down", 2), (5, "down", "up", 4)],
            id="two good results in a row recover, since the first of them",
        ),
        pytest.param(
            "UU DD UDUDU",
            [(1, "unknown", "up", 0), (3, "up", "down", 2)],
            id="alternating good and lost never recovers",
        ),
        pytest.param(
            "UU GG",
            [(1, "unknown", "up", 0), (3, "up", "degraded", 2)],
            id="two degraded results of three are DEGRADED",
        ),
        pytest.param(
            "UU GD",
            [(1, "unknown", "up", 0), (3, "up", "degraded", 2)],
            id="a degraded and a lost result are DEGRADED, not DOWN",
        ),
        pytest.param(
            "UU GG DD GG UU",
            [
                (1, "unknown", "up", 0),
                (3, "up", "degraded", 2),
                (5, "degraded", "down", 4),
                (7, "down", "degraded", 6),
                (9, "degraded", "up", 8),
            ],
            id="degraded worsens to DOWN, improves to DEGRADED, recovers to UP",
        ),
    ],
)
def test_confirmation(pattern: str, expected: list[tuple[int, str, str, int]]) -> None:
    _, changes = feed(pattern)
    got = [(i, c.previous.value, c.state.value, round((c.since - T0) / STEP)) for i, c in changes]
    assert got == expected
    for i, c in changes:
        assert c.ts == at(i)  # confirmed by the result at i
        assert c.key == KEY
        assert not c.flapping and not c.flapping_changed


@pytest.mark.parametrize(
    ("config", "pattern", "recovered_at"),
    [
        pytest.param(
            HealthConfig(up_after=3), "DD UU", None, id="up_after 3 is not met by two good results"
        ),
        pytest.param(
            HealthConfig(up_after=3), "DD UUU", 4, id="up_after 3 recovers at the third good result"
        ),
        pytest.param(HealthConfig(up_after=1), "DD U", 2, id="up_after 1 recovers at once"),
        pytest.param(
            HealthConfig(down_after=3, window=5, up_after=2),
            "DUDUD UU",
            6,
            id="3 of 5 is met by failures spread over five results",
        ),
    ],
)
def test_recovery_needs_up_after_good_results(
    config: HealthConfig, pattern: str, recovered_at: int | None
) -> None:
    _, changes = feed(pattern, config)
    assert changes[0][1].state is State.DOWN
    ups = [i for i, c in changes if c.state is State.UP]
    assert ups == ([] if recovered_at is None else [recovered_at])


def test_the_reason_is_the_confirming_results() -> None:
    _, changes = feed("UU DD")
    down = changes[-1][1]
    assert down.reason == REASONS["D"]
    assert changes[0][1].reason == REASONS["U"]


def test_the_log_gets_one_line_per_change_not_per_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = StateMachine(KEY, HealthConfig())
    with caplog.at_level(logging.DEBUG, logger="agent.health"):
        # Down from t=100 (first failure) for 252 s, then good again.
        times = [90.0, 95.0, *[100.0 + 5 * i for i in range(51)], 352.0, 357.0, 362.0]
        statuses = [Status.UP] * 2 + [Status.DOWN] * 51 + [Status.UP] * 3
        for ts, st in zip(times, statuses, strict=True):
            machine.observe(st, REASONS["U" if st is Status.UP else "D"], T0 + ts)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("INFO", f"bt-phan-thiet-phu-thuy-ont icmp: UP ({REASONS['U']})"),
        ("WARNING", f"bt-phan-thiet-phu-thuy-ont icmp: DOWN ({REASONS['D']})"),
        ("INFO", "bt-phan-thiet-phu-thuy-ont icmp: recovered after 4m12s"),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.4, "0s", id="under a second rounds to 0s"),
        pytest.param(42, "42s", id="seconds alone under a minute"),
        pytest.param(252, "4m12s", id="minutes and seconds under an hour"),
        pytest.param(7500, "2h05m", id="hours and minutes under a day"),
        pytest.param(3 * 86400 + 4 * 3600 + 59, "3d04h", id="days and hours beyond"),
    ],
)
def test_durations_read_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- flapping ------------------------------------------------------------------------------


def flap_percent_after(changes_at: list[int], results: int) -> float:
    """The flap rate after ``results`` results with a status change at the given indexes."""
    machine = StateMachine(KEY, HealthConfig())
    status = Status.UP
    for i in range(results):
        if i in changes_at:
            status = Status.DOWN if status is Status.UP else Status.UP
        machine.observe(status, "", T0 + i)
    return machine.flap_percent


@pytest.mark.parametrize(
    ("changes_at", "results", "percent"),
    [
        pytest.param([19], 20, 100 * 1.2 / 20, id="a change at the newest result weighs 1.2"),
        pytest.param(
            [0, 1], 21, 100 * 0.8 / 20, id="a change at the oldest result kept weighs 0.8"
        ),
        pytest.param([0, 1], 22, 0.0, id="a change older than the window is forgotten"),
        pytest.param([], 20, 0.0, id="no change is 0 percent"),
        pytest.param(
            list(range(1, 20)),
            20,
            100 * (20 - 0.8) / 20,
            id="a change at every result but the first is 96 percent",
        ),
    ],
)
def test_flap_rate_is_a_weighted_window(
    changes_at: list[int], results: int, percent: float
) -> None:
    # (the first result is never a change: there is no previous result to differ from)
    assert flap_percent_after(changes_at, results) == pytest.approx(percent)


def test_recent_changes_weigh_more_than_old_ones() -> None:
    recent = flap_percent_after(list(range(11, 20)), 20)
    old = flap_percent_after(list(range(1, 10)), 20)
    assert recent > 50.0 > old  # the same 9 changes: flapping if recent, not if old


def test_flapping_is_detected_and_damped(caplog: pytest.LogCaptureFixture) -> None:
    machine = StateMachine(KEY, HealthConfig())
    changes: list[StateChange] = []
    # Pairs of lost and good bursts: each pair flips the confirmed state (2 of 3 / up_after 2).
    pattern = "UU" + "DDUU" * 10 + "U" * 30
    with caplog.at_level(logging.INFO, logger="agent.health"):
        for i, c in enumerate(pattern):
            change = machine.observe(STATUS[c], REASONS[c], at(i))
            if change is not None:
                changes.append(change)
    flips = [c for c in changes if c.previous is not c.state]
    toggles = [c for c in changes if c.flapping_changed]

    assert len(flips) == 21  # every flip is still recorded...
    assert sum(c.flapping for c in flips) >= 10  # ...most of them marked flapping
    assert [c.flapping for c in toggles] == [True, False]
    stopped = toggles[-1]
    assert stopped.previous is stopped.state is State.UP
    assert stopped.reason.startswith("stopped flapping")
    assert not machine.flapping and machine.state is State.UP
    messages = [r.getMessage() for r in caplog.records]
    started = [i for i, m in enumerate(messages) if "started flapping" in m]
    stopped_lines = [i for i, m in enumerate(messages) if "stopped flapping" in m]
    assert len(started) == len(stopped_lines) == 1
    # One line per change until flapping starts (the first UP and 9 flips), none while
    # it lasts (11 more flips), then the single "stopped flapping" line.
    assert started[0] == 10
    assert stopped_lines[0] == started[0] + 1 == len(messages) - 1
    assert messages[-1] == "bt-phan-thiet-phu-thuy-ont icmp: stopped flapping (23%), UP"


def test_flapping_thresholds_come_from_the_config() -> None:
    pattern = "UU" + "DDUU" * 10
    strict, _ = feed(pattern, HealthConfig(flap_high_percent=60.0, flap_low_percent=10.0))
    loose, _ = feed(pattern, HealthConfig(flap_high_percent=30.0, flap_low_percent=10.0))
    assert not strict.flapping
    assert loose.flapping


# --- Health (all checks) and the wire -------------------------------------------------------


def test_health_keeps_one_machine_per_check_and_forgets_removed_ones() -> None:
    health = Health(HealthConfig())
    other = CheckKey(KEY.site, KEY.device, "snmp")
    down = ProbeResult(Status.DOWN, REASONS["D"])
    up = ProbeResult(Status.UP, REASONS["U"])
    assert health.observe(KEY, down, at(0)) is None
    assert health.observe(other, up, at(0)) is None
    change = health.observe(KEY, down, at(1))
    assert change is not None and change.state is State.DOWN
    assert health.observe(other, up, at(1)) is not None
    snap = health.get(KEY)
    assert snap is not None
    assert (snap.state, snap.since, snap.last_status) == (State.DOWN, at(0), Status.DOWN)
    health.retain([other])
    assert health.get(KEY) is None
    assert set(health.snapshot()) == {other}


def test_a_state_change_becomes_a_wire_event() -> None:
    _, changes = feed("UU DD")
    event = changes[-1][1].to_event(seq=17)
    assert event == Event(
        17,
        at(3),
        KEY.site,
        KEY.device,
        KEY.check,
        "up",
        "down",
        at(2),
        REASONS["D"],
        False,
        "health",
    )
    assert event_json(17, event)["state"] == "down"


# --- detection time (the arithmetic in agent/health.py's docstring) -------------------------


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    with FakeClock() as c:
        yield c


async def detection_times(clock: FakeClock, interval: float, links: int = 200) -> list[float]:
    """Kill ``links`` ICMP-checked links at random times; seconds until each DOWN event.

    A probe that starts before its link died answers UP after 0.9 s (the worst case for
    detection); one that starts after waits d = 1.9 s (10 echoes 0.1 s apart and 1 s for
    the last reply) and answers DOWN.
    """
    rnd = random.Random(99)
    died_at: dict[str, float] = {}

    async def icmp(
        kind: str, target: Target, params: object, timeout_seconds: float
    ) -> ProbeResult:
        start = clock.monotonic()
        if start < died_at[target.device_id]:
            await clock.sleep(0.9)
            return ProbeResult(Status.UP, "10/10 replies")
        await clock.sleep(1.9)
        return ProbeResult(Status.DOWN, "no ICMP echo reply")

    health = Health(HealthConfig())
    detected: dict[str, float] = {}

    async def sink(s: Site, device: Device, c: Check, result: ProbeResult, ts: float) -> None:
        change = health.observe(CheckKey(s.id, device.id, c.name), result, ts)
        if change is not None and change.state is State.DOWN:
            detected[device.id] = change.ts

    the_site = site("s", {f"l{i}": (check("icmp", interval, 4.0),) for i in range(links)})
    start = clock.monotonic()
    for d in the_site.devices:
        # Dead after a first confirmed UP (3 intervals), at any phase of the schedule.
        died_at[d.id] = start + 3 * interval + rnd.uniform(0.0, interval)
    sched = Scheduler(
        the_site, sink, max_concurrency=1024, jitter_ratio=0.1, clock=clock, run=icmp, rng=rnd
    )
    task = asyncio.create_task(sched.run())
    await clock.advance(8 * interval)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(detected) == links
    return [detected[d] - clock.unix(died_at[d]) for d in died_at]


async def test_an_icmp_check_every_5s_can_take_more_than_10s_to_confirm_down(
    clock: FakeClock,
) -> None:
    latencies = await detection_times(clock, 5.0)
    assert max(latencies) <= 2 * 5 + 0.1 * 5 + 1.9  # the worst case: 12.4 s
    assert max(latencies) > 10.0  # so 5 s does not meet 10 s
    assert statistics.mean(latencies) == pytest.approx(9.4, abs=0.5)


async def test_an_icmp_check_every_3s_confirms_down_within_10s(clock: FakeClock) -> None:
    latencies = await detection_times(clock, 3.0)
    assert max(latencies) <= 2 * 3 + 0.1 * 3 + 1.9  # the worst case: 8.2 s
    assert max(latencies) < 10.0
    assert statistics.mean(latencies) == pytest.approx(6.4, abs=0.5)
