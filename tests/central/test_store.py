"""The database: migrations, pragmas, the writer thread, what survives a restart."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from central.ingest import ingest
from central.store import MIGRATIONS, Store, apply_migrations, open_store, schema_version
from inventory.wire import parse_batch
from tests.central.conftest import batch, event, result, snapshot


def schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_migrations_applied_twice_are_a_no_op(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert apply_migrations(conn) == len(MIGRATIONS)
    first = schema(conn)
    assert apply_migrations(conn) == 0
    assert schema(conn) == first
    assert schema_version(conn) == len(MIGRATIONS)
    assert {"agents", "tokens", "records", "dropped", "latest", "latest_checks"} <= {
        n for n, _ in first
    }
    conn.close()


def test_a_failing_migration_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    apply_migrations(conn)
    broken = (*MIGRATIONS, "CREATE TABLE extra (x INTEGER); CREATE TABLE broken (")
    monkeypatch.setattr("central.store.MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn)
    assert schema_version(conn) == len(MIGRATIONS)
    assert "extra" not in {n for n, _ in schema(conn)}
    conn.close()


async def test_writer_is_one_durable_wal_thread(store: Store) -> None:
    def look(w: object) -> tuple[str, str, int]:
        conn = store._writer.conn  # type: ignore[union-attr]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        return threading.current_thread().name, mode, sync

    name, mode, sync = await store.write(look)
    assert name.startswith("central-db-writer")
    assert name != threading.current_thread().name
    assert (mode, sync) == ("wal", 2)  # 2 = FULL


async def test_reads_are_read_only(store: Store) -> None:
    def write_from_reader(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM agents")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store.read(write_from_reader)
    assert await store.read(lambda c: c.execute("SELECT count(*) FROM agents").fetchone()) == (0,)


async def test_reopened_database_keeps_the_mark_and_what_is_held(tmp_path: Path) -> None:
    path = tmp_path / "central.db"
    store = await open_store(path)
    body = batch([result(1), result(2), result(3), event(10), event(11)], dropped=[[20, 25]])
    ack = await ingest(store, "site-a", parse_batch(body), now=5.0)
    assert ack == {"acked_seq": 3, "stored": 5, "duplicates": 0, "gaps": 6}
    before = await store.read(snapshot)
    await store.close()

    store = await open_store(path)
    try:
        mark = await store.write(lambda w: w.mark("site-a"))
        assert (mark.acked, mark.held()) == (3, ((10, 11), (20, 25)))
        assert await store.read(snapshot) == before
        ack = await ingest(store, "site-a", parse_batch(batch([result(s) for s in range(4, 10)])))
        assert ack == {"acked_seq": 11, "stored": 6, "duplicates": 0, "gaps": 0}
        ack = await ingest(store, "site-a", parse_batch(batch([result(s) for s in range(12, 20)])))
        assert ack == {"acked_seq": 25, "stored": 8, "duplicates": 0, "gaps": 0}
    finally:
        await store.close()


def test_store_opens_and_closes_without_a_loop(tmp_path: Path) -> None:
    s = Store(tmp_path / "sync.db")
    assert s.read_sync(lambda c: c.execute("SELECT count(*) FROM agents").fetchone()[0]) == 0
    s.close_sync()
    s.close_sync()  # twice is fine
