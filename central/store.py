"""Central's SQLite database: numbered migrations, one writer thread, one reader thread.

Every write runs in the single writer thread (``await store.write(fn)``), so nothing
blocks the event loop and writes never contend with each other; reads run in their own
thread on their own connection (WAL lets them proceed while a write is under way). The
writer connection uses ``synchronous=FULL``: when a transaction returns, it is on disk,
so an acknowledgement sent after it survives a power cut.

Tables (migration 1):

- ``agents``: one row per agent: its acknowledgement mark (``acked_seq``), counters, when
  it was last seen, and the last heartbeat (``hb_*``).
- ``tokens``: bearer tokens, as SHA-256 hashes only; ``role`` agent or reader; ``sites``
  the agent may send for (JSON list; empty: the site whose id is the agent id).
- ``records``: every result and event, ``PRIMARY KEY (agent, seq)``; ``status`` is a
  result's status or an event's new state; ``body`` (JSON) the rest: for a result
  ``{"kind", "reason", "duration_seconds", "samples": [[name, [[label, value], ...],
  value], ...]}``, for an event ``{"previous", "since", "reason", "flapping", "source"}``.
- ``dropped``: sequence ranges agents declared dropped, disjoint, each counted once.
- ``latest``: the newest value of every series (site, device, check, name, labels).
- ``latest_checks``: the newest result of every check (site, device, check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from central._marks import SeqMark, runs

T = TypeVar("T")
log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

MIGRATIONS: tuple[str, ...] = (
    # 1: the ingest path.
    """
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        last_seen REAL,
        acked_seq INTEGER NOT NULL DEFAULT 0,
        stored_total INTEGER NOT NULL DEFAULT 0,
        duplicates_total INTEGER NOT NULL DEFAULT 0,
        gaps_total INTEGER NOT NULL DEFAULT 0,
        hb_sent_at REAL,
        hb_uplink TEXT,
        hb_backlog_records INTEGER,
        hb_oldest_unsent_ts REAL,
        hb_dropped_records_total INTEGER,
        hb_last_seq INTEGER,
        hb_version TEXT
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('agent', 'reader')),
        subject TEXT NOT NULL,
        sites TEXT NOT NULL DEFAULT '[]',
        created REAL NOT NULL,
        revoked REAL
    );
    CREATE INDEX tokens_subject ON tokens (subject);
    CREATE TABLE records (
        agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('result', 'event')),
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        check_name TEXT NOT NULL,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        received REAL NOT NULL,
        PRIMARY KEY (agent, seq)
    );
    CREATE TABLE dropped (
        agent TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        received REAL NOT NULL,
        PRIMARY KEY (agent, first_seq)
    ) WITHOUT ROWID;
    CREATE TABLE latest (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        check_name TEXT NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        value REAL NOT NULL,
        ts REAL NOT NULL,
        agent TEXT NOT NULL,
        PRIMARY KEY (site, device, check_name, name, labels)
    ) WITHOUT ROWID;
    CREATE TABLE latest_checks (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        check_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL,
        duration_seconds REAL NOT NULL,
        ts REAL NOT NULL,
        agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (site, device, check_name)
    ) WITHOUT ROWID;
    """,
)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; each migration in its own transaction. Returns how many
    ran (0 when the database was already current). ``conn`` must be in autocommit mode."""
    applied = 0
    for version, script in enumerate(MIGRATIONS, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read inside the transaction: another process may have migrated meanwhile.
            (current,) = conn.execute("PRAGMA user_version").fetchone()
            if current >= version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied += 1
        log.info("database migrated to version %d", version)
    return applied


def _statements(script: str) -> Iterator[str]:
    # executescript() would commit first; split instead (the scripts hold no ';' in text).
    for part in script.split(";"):
        if part.strip():
            yield part


def schema_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


class Writer:
    """What the writer thread owns: the write connection and each agent's mark."""

    __slots__ = ("conn", "logged", "marks")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.marks: dict[str, SeqMark] = {}
        self.logged: set[str] = set()  # conditions already logged: log transitions once

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` (durable on return), rolled back on any error."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def mark(self, agent: str) -> SeqMark:
        return self.marks.get(agent) or SeqMark(0)


def load_marks(conn: sqlite3.Connection) -> dict[str, SeqMark]:
    """Every agent's mark and what it holds above it, as the database says."""
    marks: dict[str, SeqMark] = {}
    for agent, acked in conn.execute("SELECT id, acked_seq FROM agents").fetchall():
        mark = SeqMark(acked)
        seqs = [
            s
            for (s,) in conn.execute(
                "SELECT seq FROM records WHERE agent = ? AND seq > ? ORDER BY seq", (agent, acked)
            )
        ]
        for first, last in runs(seqs):
            mark.add(first, last)
        for first, last in conn.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE agent = ? AND last_seq > ?",
            (agent, acked),
        ):
            mark.add(first, last)
        if mark.acked != acked:
            # Only if a crash came between the rows and the mark, which one transaction
            # prevents; say so rather than hide it.
            log.warning(
                "agent %s: mark in the database %d, its records say %d", agent, acked, mark.acked
            )
        marks[agent] = mark
    return marks


class Store:
    """The database. Open it with ``await open_store(path)`` (or ``Store(path)`` outside an
    event loop); close with ``await store.close()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="central-db-writer")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="central-db-reader")
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        try:
            self._writer_pool.submit(self._open_writer).result()
            self._reader_pool.submit(self._open_reader).result()
        except BaseException:
            self.close_sync()
            raise

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            apply_migrations(conn)
            writer = Writer(conn)
            writer.marks = load_marks(conn)
        except BaseException:
            conn.close()
            raise
        self._writer = writer

    def _open_reader(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA query_only = ON")
        self._reader = conn

    # --- writes: in the writer thread ----------------------------------------------------

    def _call_writer(self, fn: Callable[[Writer], T]) -> T:
        if self._writer is None:
            raise RuntimeError("the store is closed")
        return fn(self._writer)

    async def write(self, fn: Callable[[Writer], T]) -> T:
        """Run ``fn(writer)`` in the writer thread (it opens its own transaction)."""
        return await asyncio.wrap_future(self._writer_pool.submit(self._call_writer, fn))

    def write_sync(self, fn: Callable[[Writer], T]) -> T:
        """The same, for callers without an event loop (CLI, benchmarks)."""
        return self._writer_pool.submit(self._call_writer, fn).result()

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one durable write transaction in the writer thread."""

        def run(w: Writer) -> T:
            with w.transaction() as conn:
                return fn(conn)

        return await self.write(run)

    # --- reads: in the reader thread -----------------------------------------------------

    def _call_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise RuntimeError("the store is closed")
        return fn(self._reader)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the reader thread on the read-only connection."""
        return await asyncio.wrap_future(self._reader_pool.submit(self._call_reader, fn))

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._reader_pool.submit(self._call_reader, fn).result()

    # --- closing -------------------------------------------------------------------------

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.conn.close()
            self._writer = None

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close_sync(self) -> None:
        """Finish queued work, close both connections and threads. Idempotent."""
        for pool, close in (
            (self._reader_pool, self._close_reader),
            (self._writer_pool, self._close_writer),
        ):
            with contextlib.suppress(RuntimeError):  # already shut down
                pool.submit(close).result()
            pool.shutdown(wait=True)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)


async def open_store(path: str | os.PathLike[str]) -> Store:
    """Open (creating and migrating as needed) the database at ``path``, off the loop."""
    return await asyncio.to_thread(Store, path)
