"""Every record arrives exactly once, in order, across crashes, restarts and WAN cuts.

Real processes end to end: ``diemcau central run`` on its SQLite database,
``diemcau agent run`` with TCP checks every second against a listener of this process, a
token made with ``diemcau central token create``, and (for the cuts) a proxy of this
process between them that forwards, refuses, blackholes or drops central's replies. The
verdict reads central's ``records`` table and the agent's outbox afterwards
(:func:`tests._chaos.delivery`): every seq in 1..last_seq stored once (or declared
dropped), none beyond, central's mark at last_seq, each check's results in time order.
Two tests run the agent in this process with a fake probe, for a high record rate and for
an exact interleaving. ``bench/chaos_delivery.py`` runs the same scenarios longer.

Seed and kill count: ``DIEMCAU_CHAOS_SEED``, ``DIEMCAU_CHAOS_AGENT_KILLS`` (default 50).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent._outbox_store import Store
from agent.daemon import Agent
from inventory.target import Target
from probes.result import ProbeResult
from tests._chaos import (
    Figures,
    Mode,
    Rig,
    RigOptions,
    agent_config,
    agent_kill_storm,
    always_up,
    central_kill_storm,
    delivery,
    environment_note,
    fast_site,
    finish,
    flapping_path,
    poll,
    reachable,
    rig,
    stop,
    tail,
    until,
    wan_cuts,
)

SEED = int(os.environ.get("DIEMCAU_CHAOS_SEED", "20261123"))
AGENT_KILLS = int(os.environ.get("DIEMCAU_CHAOS_AGENT_KILLS", "50"))
SITE = "chaos-a"


def report(figures: Figures) -> None:
    print(f"\n{figures.line()} [{environment_note()}, seed {SEED}]")
    assert figures.problems() == [], "\n".join(figures.problems())
    assert figures.duplicates == 0 and figures.losses == 0


# --- real processes ----------------------------------------------------------------------


# 50 restarts of a cold interpreter (~1 s of CPU each) take 60-80 s on a loaded 2-CPU box.
@pytest.mark.timeout(240)
def test_agents_killed_50_times_mid_push_lose_and_repeat_nothing(tmp_path: Path) -> None:
    with rig(tmp_path, RigOptions(sites=2, checks_per_site=40, via_proxy=True)) as r:
        figures = agent_kill_storm(r, AGENT_KILLS, SEED)
    report(figures)
    assert figures.kills == AGENT_KILLS
    assert figures.records > AGENT_KILLS * 5  # the short lives did measure
    # Kills aimed at a push in flight (most hit one); some fell after central's commit and
    # before the agent's ack: the next life sent those again and central kept one copy.
    assert figures.in_flight_kills >= AGENT_KILLS // 2 and figures.replays_absorbed > 0


def test_central_killed_mid_batch_keeps_all_it_acknowledged(tmp_path: Path) -> None:
    # Small batches at a capped rate: a backlog drains over several requests, so kills
    # land in the middle of a drain (and, when the proxy sees one, of a request).
    opts = RigOptions(
        sites=2,
        checks_per_site=40,
        via_proxy=True,
        batch_max_records=20,
        max_records_per_second=300,
    )
    with rig(tmp_path, opts) as r:
        # Each restart checks that central still holds all it had acknowledged.
        figures = central_kill_storm(r, kills=6, seed=SEED)
    report(figures)
    assert figures.kills == 6 and figures.in_flight_kills > 0


def test_wan_cuts_grow_a_backlog_that_drains_exactly_once(tmp_path: Path) -> None:
    during_blackhole: list[dict[str, Any]] = []

    def on_cut(r: Rig, mode: Mode) -> None:
        if mode == "blackhole" and not during_blackhole:
            during_blackhole.append(r.status_cli(SITE))

    with rig(tmp_path, RigOptions(sites=1, checks_per_site=40, via_proxy=True)) as r:
        figures = wan_cuts(r, cuts=3, seed=SEED, on_cut=on_cut)
    report(figures)
    [status] = during_blackhole  # `diemcau agent status --json` during the blackhole
    assert status["central"]["reachable"] is False
    assert "no answer within 1 s" in status["central"]["last_error"]
    assert status["outbox"]["backlog_records"] > 0
    # The drop-replies cut: central stored batches whose ack never reached the agent; the
    # agent sent them again and central kept one copy.
    assert figures.replays_absorbed > 0


def test_sigterm_flushes_within_shutdown_seconds_and_exits_0(tmp_path: Path) -> None:
    # A push deadline longer than the shutdown deadline: only shutdown_seconds bounds a stop.
    opts = RigOptions(via_proxy=True, shutdown_seconds=1.5, push_timeout_seconds=5.0)
    slack_seconds = 1.5  # closing the outbox and the interpreter's own exit
    with rig(tmp_path, opts) as r:
        f = r.files[SITE]
        r.start_central()
        started = time.monotonic()

        # 1. A backlog built while central refused; the path returns and at once SIGTERM:
        #    the flush delivers it.
        r.set_path("refuse")
        agent = r.start_agent(SITE)
        poll(lambda: backlog(r) >= 60, "a backlog of 60 records")
        r.set_path("forward")
        took = stop(agent)
        assert agent.returncode == 0, tail(f.log)
        assert took <= opts.shutdown_seconds + slack_seconds, f"stopped in {took:.2f} s"
        flushed = delivery(r.db, f.outbox, SITE)
        assert flushed.problems(drained=False) == []
        assert flushed.last_seq >= 60 and flushed.outbox_left == 0

        # 2. Central blackholed: the flush cannot finish; the agent still stops in time and
        #    keeps the rest for its next start.
        agent = r.start_agent(SITE)
        poll(reachable(r, SITE), "central reachable")
        r.set_path("blackhole")
        poll(lambda: backlog(r) >= 20, "a backlog behind the blackhole")
        took = stop(agent)
        assert agent.returncode == 0, tail(f.log)
        assert took <= opts.shutdown_seconds + slack_seconds, f"stopped in {took:.2f} s"
        kept = delivery(r.db, f.outbox, SITE)
        assert kept.outbox_left >= 20 and kept.problems(drained=False) == []
        assert "records kept in the outbox for the next start" in f.log.read_text()

        # 3. Back on a good path, the next start delivers what was kept.
        r.set_path("forward")
        figures = finish(r, Figures("SIGTERM"), started)
    report(figures)


def backlog(r: Rig) -> int:
    v = r.status(SITE)
    return v.backlog_records if v is not None else 0


def test_sighup_refuses_a_bad_config_and_adds_a_check_from_a_good_one(tmp_path: Path) -> None:
    with rig(tmp_path, RigOptions(checks_per_site=10)) as r:
        f = r.files[SITE]
        r.start_central()
        started = time.monotonic()
        agent = r.start_agent(SITE)
        poll(lambda: (v := r.status(SITE)) is not None and v.acked_seq > 0, "a first ack")
        before = r.status(SITE)
        assert before is not None and len(before.checks) == 10

        r.write_inventory(extra_checks=1, broken=True)  # interval_seconds: 0
        agent.send_signal(signal.SIGHUP)
        poll(lambda: "reload refused" in f.log.read_text(), "the reload refused", 10)
        assert agent.poll() is None
        refusal = f.log.read_text().split("reload refused", 1)[1]
        assert "extra-0" not in str(r.status(SITE)) and "interval_seconds" in refusal
        after_bad = r.status(SITE)
        assert after_bad is not None and after_bad.checks == before.checks
        acked = after_bad.acked_seq
        poll(lambda: (v := r.status(SITE)) is not None and v.acked_seq > acked, "still pushing")

        r.write_inventory(extra_checks=1)
        agent.send_signal(signal.SIGHUP)
        poll(lambda: "configuration reloaded: 11 checks" in f.log.read_text(), "the reload", 10)
        after = r.status(SITE)
        assert after is not None and f"{SITE}-router/extra-0" in after.checks
        poll(lambda: stored_results(r, "extra-0") > 0, "a result of the new check at central")
        figures = finish(r, Figures("SIGHUP"), started)
    report(figures)
    assert agent.returncode == 0


def stored_results(r: Rig, check: str) -> int:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(r.db, timeout=30)) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM records WHERE agent = ? AND check_name = ?", (SITE, check)
        ).fetchone()
    return int(n)


# --- the agent in this process -----------------------------------------------------------


async def test_a_flapping_path_at_a_high_record_rate_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    r = await asyncio.to_thread(Rig, tmp_path, RigOptions(via_proxy=True, checks_per_site=1))
    try:
        figures = await flapping_path(r, flips=30, seed=SEED)
    finally:
        await asyncio.to_thread(r.close)
    report(figures)
    assert figures.records > 1000 and figures.replays_absorbed > 0


@pytest.fixture
def held_append(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event, threading.Event]]:
    """Arm with ``armed.set()``: the next outbox append blocks in the outbox's thread, with
    its records numbered, until ``release`` is set. (``entered`` is set when it blocks.)"""
    armed, entered, release = threading.Event(), threading.Event(), threading.Event()
    original = Store.append

    def append(self: Store, results: Any, events: Any) -> int:
        if armed.is_set() and not entered.is_set():
            entered.set()
            release.wait(30)
        return original(self, results, events)

    monkeypatch.setattr(Store, "append", append)
    yield armed, entered, release
    release.set()


async def test_sigterm_flush_delivers_a_result_appended_as_the_agent_stops(
    tmp_path: Path, held_append: tuple[threading.Event, threading.Event, threading.Event]
) -> None:
    armed, entered, release = held_append
    r = await asyncio.to_thread(Rig, tmp_path, RigOptions(checks_per_site=1))
    try:
        await asyncio.to_thread(r.start_central)
        # No heartbeat in the way: the pusher sleeps once all is acked.
        config, site = agent_config(r, SITE, heartbeat_seconds=60.0)
        gate, calls = asyncio.Event(), 0

        async def run(kind: str, target: Target, params: object, timeout_s: float) -> ProbeResult:
            nonlocal calls
            calls += 1
            if calls == 5:
                await gate.wait()
            return await always_up(kind, target, params, timeout_s)

        agent = Agent(config, fast_site(site, 1, 0.05), run=run, serve_status=False)
        stop_event = asyncio.Event()
        task = asyncio.create_task(agent.run(stop_event))
        await asyncio.wait_for(agent.started.wait(), 30)
        assert agent.outbox is not None and agent.pusher is not None
        outbox, pusher = agent.outbox, agent.pusher
        # Four results (and the UP event) delivered and acked; the fifth run is waiting.
        await until(
            lambda: (
                calls == 5
                and outbox.stats().backlog_records == 0
                and pusher.state().acked_seq == outbox.stats().last_seq > 0
            ),
            "the first results acked",
        )
        [run_task] = [t for t in asyncio.all_tasks() if t.get_name().startswith("run chaos-a")]
        acked_before = pusher.state().acked_seq
        armed.set()
        gate.set()  # the fifth result: its append is numbered and committing...
        await asyncio.to_thread(entered.wait, 10)
        stop_event.set()  # ...when SIGTERM comes
        await until(run_task.done, "the run cancelled by the stop")
        release.set()
        await asyncio.wait_for(task, 30)
        d = await asyncio.to_thread(delivery, r.db, outbox.path, SITE)
    finally:
        release.set()
        await asyncio.to_thread(r.close)
    assert d.last_seq > acked_before  # the fifth result was numbered and stored
    assert d.problems() == [], d.problems()  # fails: it stays in the outbox
