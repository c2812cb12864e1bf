"""POST /api/v1/ingest and GET /healthz over HTTP on loopback."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from central._ratelimit import IngestGate
from central.app import create_app
from central.errors import RequestError
from central.store import Store
from central.tokens import create_token, revoke_tokens
from inventory.model import Inventory
from tests.central.conftest import (
    Central,
    FakeClock,
    batch,
    central_config,
    event,
    result,
    start_central,
)


async def test_a_gzipped_batch_is_stored_and_acknowledged(central: Central) -> None:
    status, ack, _ = await central.post(batch([result(1), result(2), event(3)]))
    assert (status, ack) == (200, {"acked_seq": 3, "stored": 3, "duplicates": 0, "gaps": 0})
    assert await central.rows("SELECT seq FROM records ORDER BY seq") == [(1,), (2,), (3,)]
    assert await central.rows("SELECT last_seen, hb_uplink FROM agents WHERE id = 'site-a'") == [
        (central.clock.now, "fiber")
    ]


async def test_a_plain_json_batch_is_accepted_too(central: Central) -> None:
    status, ack, _ = await central.post(batch([result(1)]), gzipped=False)
    assert (status, ack["acked_seq"]) == (200, 1)


async def test_ack_golden_text(central: Central) -> None:
    await central.post(batch([result(1)]))
    body = json.dumps(batch([result(1), result(2), event(5)], dropped=[[3, 4]])).encode()
    resp = await central.client.post(
        "/api/v1/ingest",
        data=gzip.compress(body),
        headers={"Authorization": f"Bearer {central.token}", "Content-Encoding": "gzip"},
    )
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.text() == '{"acked_seq": 5, "stored": 2, "duplicates": 1, "gaps": 2}'


async def test_error_golden_text(central: Central) -> None:
    body = batch([result(1)])
    body["records"][0]["samples"][1]["value"] = "fast"
    body["records"][0]["colour"] = "red"
    resp = await central.client.post(
        "/api/v1/ingest",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {central.token}"},
    )
    assert resp.status == 400
    assert await resp.text() == (
        '{"error": "invalid batch", "problems": ['
        "\"records[0].colour: unknown field, got 'red'\", "
        "\"records[0].samples[1].value: must be a finite number, got 'fast'\"]}"
    )


async def test_replays_are_harmless(central: Central) -> None:
    body = batch([result(1), result(2)])
    assert (await central.post(body))[1]["stored"] == 2
    before = await central.snapshot()
    status, ack, _ = await central.post(body)
    assert (status, ack) == (200, {"acked_seq": 2, "stored": 0, "duplicates": 2, "gaps": 0})
    after = await central.snapshot()
    assert after["records"] == before["records"]
    assert after["latest"] == before["latest"]


async def test_events_first_then_the_hole_filled(central: Central) -> None:
    _, ack, _ = await central.post(batch([event(4)]))
    assert (ack["acked_seq"], ack["stored"]) == (0, 1)
    _, ack, _ = await central.post(batch([result(1), result(2), result(3)]))
    assert (ack["acked_seq"], ack["stored"]) == (4, 3)


async def test_dropped_ranges_are_counted_once(central: Central) -> None:
    _, ack, _ = await central.post(batch([result(1)], dropped=[[2, 10]]))
    assert ack == {"acked_seq": 10, "stored": 1, "duplicates": 0, "gaps": 9}
    _, ack, _ = await central.post(batch([result(1)], dropped=[[2, 10]]))
    assert ack == {"acked_seq": 10, "stored": 0, "duplicates": 1, "gaps": 0}
    assert await central.rows("SELECT gaps_total FROM agents WHERE id = 'site-a'") == [(9,)]


def gzip_bomb(expanded_bytes: int) -> bytes:
    """A gzip stream of ``expanded_bytes`` zeros, built without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [c.compress(block) for _ in range(expanded_bytes >> 20)]
    return b"".join([*parts, c.flush()])


BAD_JSON_TYPES = batch([result(1)])
BAD_JSON_TYPES["records"][0]["seq"] = "one"
BAD_JSON_TYPES["heartbeat"]["uplink"] = "wifi"
UNKNOWN_FIELD = batch([result(1)])
UNKNOWN_FIELD["compression"] = "zstd"


@pytest.mark.parametrize(
    ("send", "status", "error"),
    [
        pytest.param({"raw": b'{"schema": 1, "agent": '}, 400, "not JSON", id="malformed JSON"),
        pytest.param({"raw": b"\xff\xfe{}"}, 400, "not JSON", id="not UTF-8"),
        pytest.param({"raw": b"[" * 100_000}, 400, "not JSON", id="nested too deeply"),
        pytest.param({"raw": b"[]"}, 400, "invalid batch", id="a list, not an object"),
        pytest.param({"raw": b"", "gzipped": False}, 400, "not JSON", id="empty body"),
        pytest.param(
            {"raw": b"", "gzipped": False, "headers": {"Content-Encoding": "gzip"}},
            400,
            "truncated",
            id="empty gzip body",
        ),
        pytest.param({"body": BAD_JSON_TYPES}, 400, "invalid batch", id="wrong types"),
        pytest.param({"body": UNKNOWN_FIELD}, 400, "invalid batch", id="unknown field"),
        pytest.param(
            {"raw": b'{"schema": 1, "sent_at": 1' + b"0" * 400 + b"}"},
            400,
            "invalid batch",
            id="a number too large for a float",
        ),
        pytest.param(
            {"raw": json.dumps(batch([result(1, device="\ud800")])).encode()},
            400,
            "invalid batch",
            id="a lone surrogate",
        ),
        pytest.param(
            {"raw": b"not gzip", "gzipped": False, "headers": {"Content-Encoding": "gzip"}},
            400,
            "not valid gzip",
            id="gzip header, not gzip",
        ),
        pytest.param(
            {
                "raw": gzip.compress(b"{}" * 1000)[:30],
                "gzipped": False,
                "headers": {"Content-Encoding": "gzip"},
            },
            400,
            "truncated",
            id="truncated gzip",
        ),
        pytest.param(
            {"body": batch([result(1)]), "headers": {"Content-Encoding": "br"}},
            415,
            "Content-Encoding",
            id="brotli",
        ),
        pytest.param(
            {"raw": b" " * (70 * 1024), "gzipped": False}, 413, "larger than", id="huge body"
        ),
        pytest.param(
            {"raw": gzip_bomb(64 << 20), "gzipped": False, "headers": {"Content-Encoding": "gzip"}},
            413,
            "decompressed",
            id="gzip bomb",
        ),
        pytest.param(
            {"body": batch([result(1), result(2, site="site-b")])},
            403,
            "does not own",
            id="another site's data",
        ),
        pytest.param(
            {"body": batch([result(1)], agent="site-b")},
            403,
            "belongs to agent",
            id="another agent",
        ),
        pytest.param({"body": batch([result(1)]), "token": None}, 401, "Bearer", id="no token"),
        pytest.param(
            {"body": batch([result(1)]), "token": "x" * 43}, 401, "unknown", id="wrong token"
        ),
        pytest.param(
            {"body": batch([result(1)]), "token": "reader"}, 403, "reader", id="reader token"
        ),
    ],
)
async def test_bad_requests_store_nothing(
    central: Central, send: dict[str, Any], status: int, error: str
) -> None:
    await central.post(batch([result(1)]))  # something already stored
    before = await central.snapshot()
    token = send.get("token", "<the harness's agent token>")
    if token == "reader":
        token = central.reader_token
    got, body, headers = await central.post(
        send.get("body"),
        raw=send.get("raw"),
        gzipped=send.get("gzipped", True),
        headers=send.get("headers"),
        token=token,
    )
    assert got == status, body
    assert error in body["error"]
    assert await central.snapshot() == before
    if status == 401:
        assert headers["WWW-Authenticate"].startswith('Bearer realm="diemcau"')
    assert await central.healthy()
    ok, ack, _ = await central.post(batch([result(2)]))
    assert (ok, ack["acked_seq"]) == (200, 2)


async def test_problems_are_located(central: Central) -> None:
    status, body, _ = await central.post(BAD_JSON_TYPES)
    assert status == 400
    assert body["problems"] == [
        "body.heartbeat.uplink: must be one of fiber, cellular, unknown, got 'wifi'",
        "records[0].seq: must be an integer >= 1, got 'one'",
    ]


async def test_a_lone_surrogate_is_located(central: Central) -> None:
    status, body, _ = await central.post(batch([result(1, device="\ud800")]))
    assert status == 400
    assert body["problems"] == [
        "records[0].device: text holds an unpaired surrogate, got '\\ud800'"
    ]


async def test_a_revoked_token_is_refused(central: Central) -> None:
    assert await revoke_tokens(central.store, subject="site-a") == 1
    status, body, headers = await central.post(batch([result(1)]))
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert central.token not in json.dumps(body)


async def test_a_chunked_body_without_length_is_cut_at_the_limit(central: Central) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    before = await central.snapshot()
    resp = await central.client.post(
        "/api/v1/ingest", data=chunks(), headers={"Authorization": f"Bearer {central.token}"}
    )
    assert resp.status == 413
    assert await central.snapshot() == before
    assert await central.healthy()


async def test_a_gzip_bomb_is_cut_in_bounded_memory(central: Central) -> None:
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros, about 256 KiB sent
    assert len(bomb) < 300 * 1024
    tracemalloc.start()
    try:
        status, body, _ = await central.post(
            None, raw=bomb, gzipped=False, headers={"Content-Encoding": "gzip"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413, body
    # The limit is 256 KiB decompressed: a few MiB of peak allows for aiohttp's buffers;
    # expanding the bomb would take 256 MiB.
    assert peak < 4 * 1024 * 1024, peak


async def test_sites_listed_on_the_token_are_owned(
    tmp_path: Path, store: Store, inventory: Inventory
) -> None:
    c = await start_central(store, inventory, central_config(tmp_path), FakeClock())
    try:
        token = await create_token(store, "district-agent", ["site-b", "site-c"])
        body = batch([result(1, site="site-b"), result(2, site="site-c")], agent="district-agent")
        status, ack, _ = await c.post(body, token=token)
        assert (status, ack["stored"]) == (200, 2)
        status, err, _ = await c.post(
            batch([result(3, site="site-a")], agent="district-agent"), token=token
        )
        assert status == 403
        assert err["problems"] == [
            "records[0].site: agent 'district-agent' may not send for 'site-a'"
        ]
    finally:
        await c.client.close()


async def test_an_agent_named_like_no_site_owns_nothing_by_default(central: Central) -> None:
    token = await create_token(central.store, "lonely")
    status, body, _ = await central.post(batch([result(1)], agent="lonely"), token=token)
    assert status == 403
    assert "owns no site" in body["error"]


async def test_rate_limit_answers_429_with_retry_after(
    tmp_path: Path, store: Store, inventory: Inventory
) -> None:
    clock = FakeClock()
    config = central_config(tmp_path, rate_per_agent=0.1, rate_burst=2)
    c = await start_central(store, inventory, config, clock)
    try:
        assert (await c.post(batch([result(1)])))[0] == 200
        assert (await c.post(batch([result(2)])))[0] == 200
        before = await c.snapshot()
        status, body, headers = await c.post(batch([result(3)]))
        assert status == 429
        assert headers["Retry-After"] == "10"
        assert "requests/s" in body["error"]
        assert await c.snapshot() == before
        clock.now += 10
        assert (await c.post(batch([result(3)])))[0] == 200
    finally:
        await c.client.close()


async def test_healthz_and_json_404(central: Central) -> None:
    async with central.client.get("/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok", "db": "ok"})
    async with central.client.get("/nowhere") as resp:
        assert (resp.status, await resp.json()) == (404, {"error": "Not Found"})
    async with central.client.get("/api/v1/ingest") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert (await resp.json())["error"] == "Method Not Allowed"


async def test_limits_hold_when_aiohttp_decompresses_itself(
    tmp_path: Path, store: Store, inventory: Inventory
) -> None:
    """Run without RUNNER_OPTIONS (aiohttp's auto_decompress on): same answers."""
    token = await create_token(store, "site-a")
    app = create_app(central_config(tmp_path), inventory, store=store, clock=FakeClock())
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        body = gzip.compress(json.dumps(batch([result(1)])).encode())
        async with client.post("/api/v1/ingest", data=body, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["acked_seq"] == 1
        async with client.post("/api/v1/ingest", data=gzip_bomb(8 << 20), headers=headers) as resp:
            assert resp.status == 413
            assert "larger than 262144" in (await resp.json())["error"]


async def test_a_database_failure_answers_503_with_retry_after(
    central: Central, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("central.app.ingest", broken)
    status, body, headers = await central.post(batch([result(1)]))
    assert (status, headers["Retry-After"]) == (503, "5")
    assert body == {"error": "central cannot store batches right now"}
    assert await central.healthy()


async def test_the_gate_queues_then_refuses() -> None:
    gate = IngestGate(limit=1, queue=1, retry_after_seconds=3)
    order: list[str] = []
    inside, release = asyncio.Event(), asyncio.Event()

    async def hold(name: str) -> None:
        async with gate.slot():
            order.append(name)
            inside.set()
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await inside.wait()
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)  # one turn of the loop: the second task now waits at the gate
    with pytest.raises(RequestError) as refused:
        async with gate.slot():
            pass
    assert (refused.value.status, refused.value.headers) == (503, {"Retry-After": "3"})
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
