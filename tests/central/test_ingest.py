"""ingest(): replays, holes, dropped ranges, latest values, heartbeats (no HTTP)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from central.ingest import body_samples, ingest
from central.store import Store
from inventory.wire import AckJSON, Sample, WireError, parse_batch
from tests.central.conftest import batch, event, result, snapshot


async def push(store: Store, body: dict[str, Any], now: float = 100.0) -> AckJSON:
    return await ingest(store, "site-a", parse_batch(body), now=now)


async def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return await store.read(lambda c: c.execute(sql).fetchall())


async def test_new_records_are_stored_and_acknowledged(store: Store) -> None:
    ack = await push(store, batch([result(1), result(2), event(3)]))
    assert ack == {"acked_seq": 3, "stored": 3, "duplicates": 0, "gaps": 0}
    got = await rows(store, "SELECT seq, type, site, device, check_name, status FROM records")
    assert got == [
        (1, "result", "site-a", "site-a-router", "ping", "up"),
        (2, "result", "site-a", "site-a-router", "ping", "up"),
        (3, "event", "site-a", "site-a-router", "ping", "down"),
    ]
    (body,) = (await rows(store, "SELECT body FROM records WHERE seq = 1"))[0]
    assert body_samples(body) == (
        Sample("diemcau_probe_success", (), 1.0),
        Sample("diemcau_rtt_seconds", (("link", "fiber"),), 1.0),
    )
    (ev,) = (await rows(store, "SELECT body FROM records WHERE seq = 3"))[0]
    assert json.loads(ev)["previous"] == "up"


async def test_a_replay_stores_nothing_and_counts_duplicates(store: Store) -> None:
    body = batch([result(1), result(2)])
    await push(store, body)
    before = await store.read(snapshot)
    ack = await push(store, body)
    assert ack == {"acked_seq": 2, "stored": 0, "duplicates": 2, "gaps": 0}
    after = await store.read(snapshot)
    assert after["records"] == before["records"]
    assert await rows(store, "SELECT duplicates_total, stored_total FROM agents") == [(2, 2)]


async def test_events_ahead_of_results_wait_for_the_hole(store: Store) -> None:
    ack = await push(store, batch([event(7), event(9)]))
    assert ack == {"acked_seq": 0, "stored": 2, "duplicates": 0, "gaps": 0}
    ack = await push(store, batch([result(s) for s in range(1, 7)]))
    assert ack["acked_seq"] == 7
    ack = await push(store, batch([event(7), result(8)]))  # a replayed event, the last result
    assert ack == {"acked_seq": 9, "stored": 1, "duplicates": 1, "gaps": 0}


async def test_dropped_ranges_are_counted_once(store: Store) -> None:
    ack = await push(store, batch([result(1)], dropped=[[2, 4], [8, 9]]))
    assert ack == {"acked_seq": 4, "stored": 1, "duplicates": 0, "gaps": 5}
    ack = await push(store, batch([], dropped=[[2, 4], [7, 10]]))  # overlaps both
    assert ack == {"acked_seq": 4, "stored": 0, "duplicates": 0, "gaps": 2}
    ack = await push(store, batch([result(5), result(6)], dropped=[[1, 10]]))
    assert ack == {"acked_seq": 10, "stored": 2, "duplicates": 0, "gaps": 0}
    assert await rows(store, "SELECT gaps_total FROM agents") == [(7,)]
    assert await rows(store, "SELECT first_seq, last_seq FROM dropped ORDER BY 1") == [
        (2, 4),
        (7, 7),
        (8, 9),
        (10, 10),
    ]


async def test_latest_keeps_the_newest_value_even_when_old_records_arrive_late(
    store: Store,
) -> None:
    await push(store, batch([event(1), result(3, ts=2000.0, value=0.03)]))
    await push(store, batch([result(2, ts=1000.0, value=0.02)]))  # late, older
    got = await rows(store, "SELECT name, labels, value, ts FROM latest ORDER BY name")
    assert got == [
        ("diemcau_probe_success", "{}", 1.0, 2000.0),
        ("diemcau_rtt_seconds", '{"link":"fiber"}', 0.03, 2000.0),
    ]
    assert await rows(store, "SELECT check_name, status, seq FROM latest_checks") == [
        ("ping", "up", 3)
    ]


async def test_heartbeat_keeps_the_newest(store: Store) -> None:
    await push(store, batch([result(1)], sent_at=200.0, uplink="cellular"), now=201.0)
    await push(store, batch([], sent_at=150.0, uplink="fiber"), now=202.0)  # answered late
    got = await rows(store, "SELECT last_seen, hb_sent_at, hb_uplink, hb_last_seq FROM agents")
    assert got == [(202.0, 200.0, "cellular", 1)]


@pytest.mark.parametrize(
    ("dropped", "problem"),
    [
        pytest.param([[5, 2**63]], "body.dropped[0]: must be below 2**63", id="beyond SQLite"),
        pytest.param(
            [[i, i] for i in range(1, 20_002, 2)], "at most 10000 ranges", id="too many ranges"
        ),
    ],
)
async def test_unstorable_dropped_ranges_store_nothing(
    store: Store, dropped: list[list[int]], problem: str
) -> None:
    before = await store.read(snapshot)
    with pytest.raises(WireError, match=re.escape(problem)):
        await push(store, batch([result(1)], dropped=dropped))
    assert await store.read(snapshot) == before
    ack = await push(store, batch([result(1)]))
    assert ack["acked_seq"] == 1


async def test_a_failed_transaction_leaves_the_mark_alone(store: Store) -> None:
    await push(store, batch([result(1)]))
    # A lone surrogate passes the schema but not SQLite's UTF-8: the whole batch fails.
    body = batch([result(2), result(3, device="\ud800")])
    with pytest.raises(WireError, match="surrogate"):
        await push(store, body)
    mark = await store.write(lambda w: w.mark("site-a"))
    assert (mark.acked, mark.held()) == (1, ())
    assert await rows(store, "SELECT seq FROM records") == [(1,)]


async def test_an_agent_that_numbers_from_scratch_is_reported_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await push(store, batch([result(s) for s in range(1, 11)]))
    with caplog.at_level("WARNING", logger="central.ingest"):
        for _ in range(3):
            ack = await push(store, batch([result(1), result(2)]))  # a wiped outbox
    assert ack == {"acked_seq": 10, "stored": 0, "duplicates": 2, "gaps": 0}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "numbers its records up to 2 but central already acknowledged 10" in warnings[0]
