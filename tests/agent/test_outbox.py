"""agent/outbox.py: numbering, events-first batches, acks, caps, durability, bad files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.outbox import Outbox, OutboxError
from agent.testing import make_event, make_result
from inventory import wire
from inventory.config import OutboxConfig

T0 = 1_800_000_000.0
BIG = OutboxConfig(max_rows=10**9, max_bytes=10**12, max_age_seconds=10**9)


def seqs(records_json: tuple[str, ...]) -> list[int]:
    return [json.loads(r)["seq"] for r in records_json]


def types(records_json: tuple[str, ...]) -> list[str]:
    return [json.loads(r)["type"] for r in records_json]


async def all_records(outbox: Outbox) -> list[dict[str, object]]:
    batch = await outbox.next_batch(10**6, 10**12)
    return [json.loads(r) for r in batch.records_json]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_sequence_numbers_continue_after_reopen_even_when_all_were_acked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    async with await Outbox.open(path, BIG, clock=Clock()) as outbox:
        assert await outbox.append([make_result(1), make_result(2)], [make_event()]) == 3
        assert await outbox.append([], []) == 3, "nothing to store keeps the last seq"
        assert await outbox.ack(3) == 3
        assert outbox.stats().backlog_records == 0
    async with await Outbox.open(path, BIG, clock=Clock()) as outbox:
        assert outbox.stats().last_seq == 3
        assert await outbox.append([make_result(4)], []) == 4
        assert seqs((await outbox.next_batch(10)).records_json) == [4]


async def test_records_are_stored_as_their_wire_json(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        await outbox.append([make_result(7, samples=2)], [make_event(T0 + 1)])
        result, event = sorted(await all_records(outbox), key=lambda r: int(str(r["seq"])))
    assert result == wire.result_json(1, make_result(7, samples=2))
    assert event == wire.event_json(2, make_event(T0 + 1))


async def test_batches_take_events_first_then_the_oldest_results(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        await outbox.append([make_result(1), make_result(2), make_result(3)], [make_event()])
        await outbox.append([make_result(5)], [make_event()])  # event 4, result 5, event 6
        full = await outbox.next_batch(10)
        assert seqs(full.records_json) == [4, 6, 1, 2, 3, 5]
        assert types(full.records_json) == ["event"] * 2 + ["result"] * 4
        assert (full.last_event_seq, full.more) == (6, False)

        part = await outbox.next_batch(3)
        assert seqs(part.records_json) == [4, 6, 1]
        assert part.more

        # Events central already stored are not resent while it cannot ack them yet.
        after = await outbox.next_batch(10, events_after=6)
        assert seqs(after.records_json) == [1, 2, 3, 5]
        assert after.last_event_seq == 0


async def test_a_batch_stops_at_the_byte_limit_but_holds_at_least_one_record(
    tmp_path: Path,
) -> None:
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        await outbox.append([make_result(i, samples=20) for i in range(10)], [])
        one = len((await outbox.next_batch(1)).records_json[0])
        batch = await outbox.next_batch(100, max_bytes=3 * one)
        assert seqs(batch.records_json) == [1, 2, 3]
        assert batch.more
        tiny = await outbox.next_batch(100, max_bytes=1)
        assert seqs(tiny.records_json) == [1]


async def test_ack_deletes_everything_up_to_the_mark_and_the_counters_follow(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    async with await Outbox.open(path, BIG, clock=Clock()) as outbox:
        await outbox.append([make_result(i, ts=T0 + i) for i in range(1, 6)], [])
        await outbox.append([], [make_event(T0 + 6)])
        before = outbox.stats()
        assert await outbox.ack(3) == 3
        after = outbox.stats()
        assert seqs((await outbox.next_batch(10)).records_json) == [6, 4, 5]
        assert (after.backlog_records, after.backlog_events) == (3, 1)
        assert 0 < after.backlog_bytes < before.backlog_bytes
        assert after.oldest_unsent_ts == T0 + 4
        assert await outbox.ack(3) == 0, "an ack repeated deletes nothing"
    async with await Outbox.open(path, BIG, clock=Clock()) as outbox:
        assert outbox.stats() == after, "the counters are persisted, not recounted"
        await outbox.ack(6)
        assert outbox.stats().backlog_bytes == 0
        assert outbox.stats().oldest_unsent_ts is None


async def test_the_row_cap_drops_the_oldest_results_keeps_events_and_declares_the_gaps(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    cfg = OutboxConfig(max_rows=6, max_bytes=10**9, max_age_seconds=10**9)
    async with await Outbox.open(path, cfg, clock=Clock()) as outbox:
        await outbox.append([make_result(1), make_result(2)], [make_event()])  # 1 2 e3
        await outbox.append([make_result(4), make_result(5), make_result(6)], [])  # full
        await outbox.append([make_result(7), make_result(8), make_result(9)], [])  # 3 over
        batch = await outbox.next_batch(100)
        assert seqs(batch.records_json) == [3, 5, 6, 7, 8, 9]
        # 1, 2 and 4 went; the kept event 3 splits the gap in two ranges.
        assert batch.dropped_ranges == ((1, 2), (4, 4))
        assert outbox.stats().dropped_records_total == 3
        await outbox.append([make_result(10)], [])  # drops 5: merges with (4, 4)
        assert (await outbox.next_batch(100)).dropped_ranges == ((1, 2), (4, 5))
    async with await Outbox.open(path, cfg, clock=Clock()) as outbox:
        assert outbox.stats().dropped_records_total == 4, "the count is persisted"
        await outbox.ack(4)
        assert (await outbox.next_batch(100)).dropped_ranges == ((5, 5),), "trimmed by the ack"
        await outbox.ack(10)
        assert (await outbox.next_batch(100)).dropped_ranges == ()


async def test_events_are_dropped_only_when_events_alone_exceed_the_cap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = OutboxConfig(max_rows=3, max_bytes=10**9, max_age_seconds=10**9)
    async with await Outbox.open(tmp_path / "o.db", cfg, clock=Clock()) as outbox:
        await outbox.append([make_result(1)], [make_event(), make_event()])  # 1 e2 e3
        await outbox.append([], [make_event(), make_event()])  # e4 e5: over by 2
        batch = await outbox.next_batch(100)
        assert seqs(batch.records_json) == [3, 4, 5]
        assert batch.dropped_ranges == ((1, 2),)
        assert outbox.stats().dropped_records_total == 2
    assert "events alone exceeded the cap" in caplog.text
    assert "outbox.max_rows" in caplog.text


async def test_the_byte_cap_drops_the_oldest_results(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "probe.db", BIG, clock=Clock()) as probe:
        await probe.append([make_result(1)], [])
        size = probe.stats().backlog_bytes
    cfg = OutboxConfig(max_rows=10**6, max_bytes=3 * size, max_age_seconds=10**9)
    async with await Outbox.open(tmp_path / "o.db", cfg, clock=Clock()) as outbox:
        await outbox.append([make_result(i) for i in range(1, 6)], [])
        assert seqs((await outbox.next_batch(100)).records_json) == [3, 4, 5]
        assert outbox.stats().backlog_bytes == 3 * size
        assert outbox.stats().dropped_records_total == 2


async def test_results_older_than_max_age_are_dropped_events_are_kept_at_any_age(
    tmp_path: Path,
) -> None:
    clock = Clock(T0)
    path = tmp_path / "o.db"
    cfg = OutboxConfig(max_rows=10**6, max_bytes=10**9, max_age_seconds=3600)
    async with await Outbox.open(path, cfg, clock=clock) as outbox:
        await outbox.append([make_result(1, ts=T0), make_result(2, ts=T0 + 60)], [make_event(T0)])
        clock.now = T0 + 3630
        await outbox.append([make_result(4, ts=clock.now)], [])
        assert seqs((await outbox.next_batch(100)).records_json) == [3, 2, 4]
    clock.now = T0 + 7200  # the agent was off; the caps apply again at start
    async with await Outbox.open(path, cfg, clock=clock) as outbox:
        batch = await outbox.next_batch(100)
        assert seqs(batch.records_json) == [3, 4]
        assert batch.dropped_ranges == ((1, 2),)
        assert outbox.stats().oldest_unsent_ts == T0, "the event is kept however old"


async def test_a_record_central_would_refuse_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    bad = make_result(1)._replace(samples=(wire.Sample("diemcau_x", (), float("nan")),))
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        with pytest.raises(wire.WireError, match=r"records\[1\]\.samples\[0\]\.value"):
            await outbox.append([make_result(0), bad], [])
        assert outbox.stats().backlog_records == 0
        assert await outbox.append([make_result(2)], []) == 1, "no seq was used up"


async def test_the_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        store = outbox._store
        assert await outbox._run(store.pragma, "journal_mode") == "wal"
        assert await outbox._run(store.pragma, "synchronous") == 2  # FULL


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from agent.outbox import Outbox
    from agent.testing import make_event, make_result

    async def main():
        outbox = await Outbox.open(sys.argv[1])
        n = 0
        while True:
            n += 1
            events = [make_event(float(n))] if n % 4 == 0 else []
            seq = await outbox.append([make_result(n, ts=2e9)], events)
            print(seq, flush=True)

    asyncio.run(main())
    """
)


def append_until_killed(path: Path, count: int) -> list[int]:
    """Run a child that appends in a loop; SIGKILL it right after append ``count`` returned."""
    returned: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as child:
        try:
            assert child.stdout is not None
            while len(returned) < count:
                line = child.stdout.readline()
                assert line, f"the child stopped early (exit {child.poll()})"
                returned.append(int(line))
            os.kill(child.pid, signal.SIGKILL)  # right after an append returned, mid-next
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    return returned


def test_every_record_appended_before_a_sigkill_is_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    returned = append_until_killed(path, 300)
    conn = sqlite3.connect(path)  # a fresh reader replays the WAL, as the agent would
    held = {r[0] for r in conn.execute("SELECT seq FROM results UNION SELECT seq FROM events")}
    conn.close()
    missing = [s for s in range(1, returned[-1] + 1) if s not in held]
    assert not missing, f"lost after SIGKILL: {missing[:10]}"


async def test_the_outbox_reopens_after_a_sigkill_and_continues_the_numbering(
    tmp_path: Path,
) -> None:
    # The same scenario through the agent's own code path (lock, WAL replay, counters).
    path = tmp_path / "o.db"
    returned = await asyncio.to_thread(append_until_killed, path, 50)
    async with await Outbox.open(path, BIG) as outbox:
        stats = outbox.stats()
        assert stats.last_seq >= returned[-1]
        assert stats.backlog_records == stats.last_seq
        assert await outbox.append([make_result(0, ts=2e9)], []) == stats.last_seq + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b"this is not a database, just some text " * 200,
            "not a usable diemcau outbox",
            id="a text file",
        ),
        pytest.param(
            b"SQLite format 3\x00" + os.urandom(8192),
            "not a usable diemcau outbox",
            id="an SQLite header followed by garbage",
        ),
    ],
)
async def test_a_garbage_file_gives_a_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(content)
    with pytest.raises(OutboxError, match=message) as info:
        await Outbox.open(path, BIG)
    assert str(path) in str(info.value)
    assert "move the file aside" in str(info.value)


async def test_another_programs_database_is_not_taken_for_an_outbox(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="another program"):
        await Outbox.open(path, BIG)


async def test_a_second_agent_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with await Outbox.open(path, BIG):
        with pytest.raises(OutboxError, match="in use by another process"):
            await Outbox.open(path, BIG)


async def test_an_ack_above_every_seq_moves_the_numbering_past_it(tmp_path: Path) -> None:
    # The outbox was replaced while central kept its mark: new records must not be
    # taken for replays of the old ones.
    async with await Outbox.open(tmp_path / "o.db", BIG, clock=Clock()) as outbox:
        await outbox.append([make_result(1)], [])
        await outbox.ack(5000)
        assert outbox.stats().last_seq == 5000
        assert await outbox.append([make_result(2)], []) == 5001
