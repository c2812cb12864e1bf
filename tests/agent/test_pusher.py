"""agent/pusher.py against the fake central on loopback (port 0)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from agent.outbox import Outbox
from agent.pusher import Pusher, _retry_after_seconds
from agent.testing import FakeCentral, FakeTime, make_event, make_result
from inventory import wire
from inventory.config import AgentConfig, OutboxConfig, PushConfig
from inventory.secrets import SecretRef
from tests.tls import Pki

TOKEN = "tok-3f9a1c77e2-not-for-logs"
T0 = 1_800_000_000.0
AGENT = "site-a"


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> SecretRef:
    monkeypatch.setenv("DIEMCAU_TEST_PUSH_TOKEN", TOKEN)
    return SecretRef("${DIEMCAU_TEST_PUSH_TOKEN}")


@pytest.fixture
async def central() -> AsyncIterator[FakeCentral]:
    async with FakeCentral(TOKEN) as c:
        yield c


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    cfg = OutboxConfig(max_rows=10**6, max_bytes=10**9, max_age_seconds=10**9)
    async with await Outbox.open(tmp_path / "outbox.db", cfg, clock=lambda: T0) as o:
        yield o


def config(token: SecretRef, *urls: str, **push: float) -> AgentConfig:
    defaults: dict[str, float] = {"timeout_seconds": 5.0, "backoff_initial_seconds": 1.0}
    return AgentConfig(
        site=AGENT,
        central_urls=urls,
        token=token,
        push=PushConfig(**{**defaults, **push}),  # type: ignore[arg-type]
    )


def refused_url() -> str:
    """A loopback URL nothing listens on (the port was just handed out and closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def eventually(pred: Callable[[], bool], what: str, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_seconds} s")
        await asyncio.sleep(0.01)  # a poll interval under a deadline


async def running(pusher: Pusher, until: Callable[[], bool], what: str) -> None:
    """Run the pusher's loop until ``until()`` holds, then stop it."""
    task = asyncio.create_task(pusher.run())
    try:
        await eventually(lambda: until() or task.done(), what)
        if task.done():
            task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def fill(outbox: Outbox, results: int, every_event: int = 0) -> int:
    last = 0
    for n in range(1, results + 1):
        events = [make_event(T0 + n)] if every_event and n % every_event == 0 else []
        last = await outbox.append([make_result(n, ts=T0 + n)], events)
    return last


async def test_everything_is_delivered_exactly_once_and_in_order(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    last = await fill(outbox, 40, every_event=9)  # 40 results, 4 events among them
    fake = FakeTime(T0)
    cfg = config(token_env, central.url, batch_max_records=7)
    async with Pusher(cfg, outbox, version="1.2.3", clock=fake.clock, sleep=fake.sleep) as p:
        await running(p, lambda: outbox.stats().backlog_records == 0, "the outbox emptied")
        state = p.state()

    a = central.agent(AGENT)
    assert sorted(a.records) == list(range(1, last + 1))
    assert a.duplicates == 0
    events = [s for s in a.arrival if isinstance(a.records[s], wire.Event)]
    results = [s for s in a.arrival if isinstance(a.records[s], wire.Result)]
    assert len(events) == 4
    assert a.arrival[:4] == events, "the events went first, in the first batch"
    assert results == sorted(results), "results arrived oldest first"
    # The content is what was appended.
    sample = a.records[1]
    assert isinstance(sample, wire.Result)
    assert (sample.device, sample.samples[0].value) == ("site-a-router", 1.0)
    assert outbox.stats().backlog_records == 0
    assert state.acked_seq == last
    assert state.central_reachable
    assert state.url == central.url
    assert max(r.records for r in central.requests) <= 7


async def test_a_lost_answer_is_replayed_and_central_still_stores_each_record_once(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    last = await fill(outbox, 10)
    central.set_mode("lose_answer", times=1)
    fake = FakeTime(T0)
    cfg = config(token_env, central.url, timeout_seconds=0.3)
    async with Pusher(cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep) as p:
        await running(p, lambda: outbox.stats().backlog_records == 0, "the outbox emptied")
    assert central.agent(AGENT).mark == last
    a = central.agent(AGENT)
    assert a.duplicates == 10, "the whole batch came again"
    assert len(a.records) == 10


async def test_dropped_ranges_let_centrals_mark_pass_the_gap(
    token_env: SecretRef, central: FakeCentral, tmp_path: Path
) -> None:
    cfg_outbox = OutboxConfig(max_rows=5, max_bytes=10**9, max_age_seconds=10**9)
    async with await Outbox.open(tmp_path / "o.db", cfg_outbox, clock=lambda: T0) as outbox:
        last = await fill(outbox, 12)  # 1..7 are dropped
        fake = FakeTime(T0)
        cfg = config(token_env, central.url)
        async with Pusher(cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep) as p:
            await running(p, lambda: outbox.stats().backlog_records == 0, "the outbox emptied")
        assert (await outbox.next_batch(10)).dropped_ranges == ()
    a = central.agent(AGENT)
    assert a.mark == last
    assert a.gaps == 7
    assert sorted(a.records) == [8, 9, 10, 11, 12]
    assert central.requests[0].heartbeat is not None
    assert central.requests[0].heartbeat.dropped_records_total == 7


async def test_failover_to_the_second_url_when_the_first_refuses_connections(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    last = await fill(outbox, 3)
    dead = refused_url()
    fake = FakeTime(T0)
    cfg = config(token_env, dead, central.url)
    async with Pusher(cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep) as p:
        assert await p.push_once()
        assert p.state().url == central.url
        assert central.agent(AGENT).mark == last
        assert fake.sleeps == [], "the second URL is tried at once, not after a backoff"


async def test_the_agent_returns_to_the_primary_after_a_while(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    # Two URLs to the same central (fiber and 4G paths, say); the first one fails.
    primary, secondary = central.url, await central.add_listener()
    central.fail_url(primary)
    fake = FakeTime(T0)
    cfg = config(token_env, primary, secondary)
    async with Pusher(
        cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep, primary_retry_seconds=300
    ) as p:
        await outbox.append([make_result(1)], [])
        assert await p.push_once()
        assert p.state().url == secondary
        central.fail_url(primary, failing=False)
        fake.now += 100
        await outbox.append([make_result(2)], [])
        assert await p.push_once()
        assert p.state().url == secondary, "not before primary_retry_seconds"
        fake.now += 201
        await outbox.append([make_result(3)], [])
        assert await p.push_once()
        assert p.state().url == primary
    assert [r.status for r in central.requests] == [500, 200, 200, 200]
    assert central.agent(AGENT).mark == 3


async def test_backoff_delays_grow_exponentially_with_full_jitter(
    token_env: SecretRef, outbox: Outbox
) -> None:
    fake = FakeTime(T0)
    cfg = config(token_env, refused_url(), backoff_initial_seconds=1.0, backoff_max_seconds=30.0)
    async with Pusher(
        cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep, rng=random.Random(7)
    ) as p:
        await running(p, lambda: len(fake.sleeps) >= 10, "ten retries")
        assert p.state().consecutive_failures >= 10
        assert not p.state().central_reachable
        assert "cannot connect" in p.state().last_error
    caps = [min(30.0, 2.0**i) for i in range(10)]
    expected_rng = random.Random(7)
    assert fake.sleeps[:10] == [expected_rng.uniform(0, cap) for cap in caps]
    assert all(0 <= d <= cap for d, cap in zip(fake.sleeps, caps, strict=False))
    # Full jitter: not the cap itself, and spread below it.
    assert len({round(d, 6) for d in fake.sleeps[:10]}) == 10
    assert max(fake.sleeps[5:10]) > max(fake.sleeps[:3])


async def test_agents_coming_back_together_spread_their_retries() -> None:
    # 133 agents at the backoff cap when central returns: their next tries spread over
    # the whole window instead of landing in the same second.
    rng = random.Random(1)
    delays = sorted(rng.uniform(0, 60.0) for _ in range(133))
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(60)]
    assert max(per_second) <= 8


async def test_429_retry_after_is_honoured(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    last = await fill(outbox, 2)
    central.set_mode("throttle", times=2, retry_after="7")
    fake = FakeTime(T0)
    cfg = config(token_env, central.url)
    async with Pusher(
        cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep, rng=random.Random(1)
    ) as p:
        await running(p, lambda: central.agent(AGENT).mark == last, "delivery after 429s")
    assert fake.sleeps[:2] == [7.0, 7.0]
    assert [r.status for r in central.requests[:3]] == [429, 429, 200]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("7", 7.0, id="delay in seconds"),
        pytest.param("Fri, 15 Jan 2027 08:00:30 GMT", 30.0, id="an HTTP date 30 s ahead"),
        pytest.param("soon", None, id="unreadable: ordinary backoff"),
        pytest.param(None, None, id="absent: ordinary backoff"),
    ],
)
def test_retry_after_forms(header: str | None, seconds: float | None) -> None:
    now = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT
    assert _retry_after_seconds(header, now) == seconds


async def test_an_event_is_pushed_at_once_without_waiting_for_the_interval(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    fake = FakeTime(T0, auto=False)  # time only moves when the test says so: it never does
    cfg = config(token_env, central.url, interval_seconds=60.0, heartbeat_seconds=60.0)
    async with Pusher(cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep) as p:
        task = asyncio.create_task(p.run())
        try:
            await eventually(lambda: len(central.requests) == 1, "the first heartbeat")
            await eventually(lambda: fake.sleeps == [60.0], "the pusher waiting its interval")
            await outbox.append([], [make_event(T0)])
            p.wake()
            await eventually(lambda: 1 in central.agent(AGENT).records, "the event at central")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert fake.now == T0, "no time passed: the event did not wait for the interval"


async def test_a_heartbeat_goes_when_there_is_nothing_to_send(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    await outbox.append([make_result(1)], [])
    await outbox.ack(1)
    fake = FakeTime(T0)
    cfg = config(token_env, central.url, interval_seconds=5.0, heartbeat_seconds=20.0)
    async with Pusher(
        cfg, outbox, version="9.9", uplink=lambda: "cellular", clock=fake.clock, sleep=fake.sleep
    ) as p:
        await running(p, lambda: len(central.requests) >= 3, "three heartbeats")
    beats = central.requests[:3]
    assert all(r.records == 0 and r.status == 200 for r in beats)
    sent = [r.sent_at for r in beats]
    assert sent == [T0, T0 + 20.0, T0 + 40.0]
    hb = beats[0].heartbeat
    assert hb == wire.Heartbeat("cellular", 0, None, 0, 1, "9.9")


async def test_the_backlog_drains_back_to_back_at_the_rate_cap(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    last = await fill(outbox, 50)
    fake = FakeTime(T0)
    cfg = config(
        token_env,
        central.url,
        batch_max_records=10,
        max_records_per_second=20.0,
        interval_seconds=5.0,
    )
    async with Pusher(cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep) as p:
        await running(p, lambda: central.agent(AGENT).mark == last, "the backlog drained")
    # Batches of 10 at 20 records/s: half a second between them, not the 5 s interval.
    assert fake.sleeps[:4] == [0.5, 0.5, 0.5, 0.5]
    assert [r.records for r in central.requests[:5]] == [10] * 5


async def test_a_hung_central_is_cut_by_the_timeout(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    await fill(outbox, 1)
    central.set_mode("hang")
    cfg = config(token_env, central.url, timeout_seconds=0.3)
    async with Pusher(cfg, outbox, version="1") as p:
        started = time.monotonic()
        assert not await p.push_once()
        elapsed = time.monotonic() - started
        assert "no answer within 0.3 s" in p.state().last_error
    assert elapsed < 3.0


async def test_a_hung_primary_fails_over_after_the_timeout(
    token_env: SecretRef, outbox: Outbox
) -> None:
    async with FakeCentral(TOKEN) as hung, FakeCentral(TOKEN) as good:
        hung.set_mode("hang")
        last = await fill(outbox, 2)
        cfg = config(token_env, hung.url, good.url, timeout_seconds=0.3)
        async with Pusher(cfg, outbox, version="1") as p:
            assert await p.push_once()
        assert good.agent(AGENT).mark == last


async def test_tls_with_the_configured_ca_file(
    token_env: SecretRef, outbox: Outbox, tmp_path: Path
) -> None:
    pki = Pki.create(tmp_path / "pki")
    cert = pki.issue("127.0.0.1")
    last = await fill(outbox, 2)
    async with FakeCentral(TOKEN, ssl_context=cert.server_context()) as tls_central:
        cfg = replace(config(token_env, tls_central.url), ca_file=str(pki.ca_file))
        async with Pusher(cfg, outbox, version="1") as p:
            assert await p.push_once()
        assert tls_central.agent(AGENT).mark == last
        # Without the CA, the system store does not trust it, and the error says so.
        async with Pusher(config(token_env, tls_central.url), outbox, version="1") as p:
            assert not await p.push_once()
            assert "not trusted" in p.state().last_error
            assert "agent.ca_file" in p.state().last_error


async def test_an_unreadable_ca_file_fails_at_start(token_env: SecretRef, outbox: Outbox) -> None:
    from agent.pusher import PushConfigError

    cfg = replace(config(token_env, "https://127.0.0.1:1"), ca_file="/nonexistent/ca.pem")
    with pytest.raises(PushConfigError, match=r"agent\.ca_file"):
        async with Pusher(cfg, outbox, version="1"):
            pass


async def test_a_refused_token_is_logged_once_and_backed_off(
    token_env: SecretRef, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeCentral("a-different-token") as other:
        fake = FakeTime(T0)
        cfg = config(token_env, other.url)
        async with Pusher(
            cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep, rng=random.Random(3)
        ) as p:
            await running(p, lambda: len(other.requests) >= 4, "four refused attempts")
            state = p.state()
    assert state.central_reachable, "central answered; it refused the token"
    assert "HTTP 401" in state.last_error
    assert "agent.token" in state.last_error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert all(d > 0 for d in fake.sleeps[:3])


async def test_a_schema_rejection_logs_each_problem_once(
    token_env: SecretRef, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    async def reject(request: web.Request) -> web.Response:
        await request.read()
        problems = ["records[0].kind: must be text", "records[1].kind: must be text"]
        return web.json_response({"error": "schema", "problems": problems}, status=400)

    app = web.Application()
    app.router.add_post("/api/v1/ingest", reject)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        await fill(outbox, 2)
        fake = FakeTime(T0)
        async with Pusher(
            config(token_env, url), outbox, version="1", clock=fake.clock, sleep=fake.sleep
        ) as p:
            await running(p, lambda: p.state().consecutive_failures >= 3, "three rejections")
    finally:
        await runner.cleanup()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 2
    assert "records[0].kind: must be text" in logged[0]
    assert outbox.stats().backlog_records == 2, "nothing is deleted on a rejection"


async def test_no_token_in_any_log_record_or_error_text(
    token_env: SecretRef, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await fill(outbox, 3)
    seen_errors: list[str] = []

    async def attempt(p: Pusher) -> None:
        await p.push_once()
        seen_errors.append(p.state().last_error)

    scenarios: list[tuple[str, Callable[[FakeCentral], Awaitable[None] | None]]] = [
        ("ok", lambda c: None),
        ("error", lambda c: c.set_mode("error")),
        ("throttle", lambda c: c.set_mode("throttle", retry_after="1")),
        ("hang", lambda c: c.set_mode("hang")),
    ]
    for _name, prepare in scenarios:
        async with FakeCentral(TOKEN) as c:
            maybe = prepare(c)
            if maybe is not None:
                await maybe
            async with Pusher(
                config(token_env, c.url, timeout_seconds=0.3), outbox, version="1"
            ) as p:
                await attempt(p)
    async with (
        FakeCentral("wrong") as c,
        Pusher(config(token_env, c.url), outbox, version="1") as p,
    ):
        await attempt(p)
    async with Pusher(config(token_env, refused_url()), outbox, version="1") as p:
        await attempt(p)
    # A central answering with the Authorization header in its error text.
    from aiohttp import web

    async def echo_handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": dict(request.headers)}, status=500)

    app = web.Application()
    app.router.add_post("/api/v1/ingest", echo_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with Pusher(config(token_env, url), outbox, version="1") as p:
            await attempt(p)
    finally:
        await runner.cleanup()

    assert any("Authorization" in e for e in seen_errors), "the echo scenario ran"
    assert all(TOKEN not in e for e in seen_errors)
    assert caplog.records, "something was logged"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert TOKEN not in text, record


async def test_the_body_is_gzip_json_following_the_wire_schema(
    token_env: SecretRef, outbox: Outbox
) -> None:
    from aiohttp import web

    bodies: list[bytes] = []
    headers: list[dict[str, str]] = []

    async def capture(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        headers.append(dict(request.headers))
        return web.json_response({"acked_seq": 0, "stored": 0, "duplicates": 0, "gaps": 0})

    app = web.Application()
    app.router.add_post("/api/v1/ingest", capture)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await outbox.append([make_result(1)], [make_event(T0)])
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with Pusher(config(token_env, url), outbox, version="1") as p:
            assert await p.push_once()
    finally:
        await runner.cleanup()
    assert headers[0]["Content-Encoding"] == "gzip"
    assert headers[0]["Authorization"] == f"Bearer {TOKEN}"
    batch = wire.parse_batch(json.loads(gzip.decompress(bodies[0])))
    assert batch.agent == AGENT
    assert [type(r).__name__ for r in batch.records] == ["Event", "Result"]


async def test_a_central_whose_mark_never_moves_is_backed_off_not_hammered(
    token_env: SecretRef, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    async def stuck(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"acked_seq": 0, "stored": 0, "duplicates": 5, "gaps": 0})

    app = web.Application()
    app.router.add_post("/api/v1/ingest", stuck)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await fill(outbox, 5)
        fake = FakeTime(T0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with Pusher(
            config(token_env, url, backoff_initial_seconds=1.0, backoff_max_seconds=60.0),
            outbox,
            version="1",
            clock=fake.clock,
            sleep=fake.sleep,
            rng=random.Random(5),
        ) as p:
            await running(p, lambda: len(fake.sleeps) >= 6, "six stalled pushes")
            state = p.state()
    finally:
        await runner.cleanup()
    caps = [min(60.0, 2.0**i) for i in range(6)]
    assert all(0 <= d <= c for d, c in zip(fake.sleeps, caps, strict=False))
    assert "mark stays at 0" in state.last_error
    assert state.consecutive_failures >= 6
    stalls = [r for r in caplog.records if "mark stays at 0" in r.getMessage()]
    assert len(stalls) == 1, "logged once, not at every retry"


async def test_a_big_push_that_times_out_is_retried_smaller(
    token_env: SecretRef, central: FakeCentral, outbox: Outbox
) -> None:
    # A slow uplink cannot carry a big body within the timeout: the batch must shrink,
    # or every push would time out forever.
    for n in range(400):
        await outbox.append([make_result(n, samples=30)], [])
    central.set_mode("hang", times=1)
    fake = FakeTime(T0)
    cfg = config(token_env, central.url, timeout_seconds=0.3)
    async with Pusher(
        cfg, outbox, version="1", clock=fake.clock, sleep=fake.sleep, batch_max_bytes=1 << 20
    ) as p:
        await running(p, lambda: outbox.stats().backlog_records == 0, "the outbox emptied")
    answered = [r for r in central.requests if r.status == 200]
    assert central.requests[0].status == 0, "the first, big push hung"
    assert max(r.records for r in answered) < 400
    assert central.agent(AGENT).mark == 400
