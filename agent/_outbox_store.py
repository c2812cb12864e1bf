"""The outbox's SQLite side. Everything here runs on the outbox's one writer thread.

Layout: ``results`` and ``events`` hold the records as their wire JSON, keyed by
sequence number; ``dropped`` holds the sequence ranges dropped to keep the caps and not
yet passed by central's ack; ``state`` is one row of counters kept in step with the
tables in the same transactions, so that opening a file of 800 000 records reads a
handful of pages instead of counting them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inventory import wire
from inventory.config import OutboxConfig

APPLICATION_ID = 0x64634F42  # "dcOB": a diemcau outbox, told apart from any other SQLite file
SCHEMA_VERSION = 1
MAX_RANGES_PER_BATCH = 1000
_SCAN_CHUNK = 5000

_SCHEMA = """
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL,
    dropped_total INTEGER NOT NULL,
    result_rows INTEGER NOT NULL,
    event_rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO state VALUES (1, 0, 0, 0, 0, 0);
CREATE TABLE results (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, nbytes INTEGER NOT NULL,
                      body TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, nbytes INTEGER NOT NULL,
                     body TEXT NOT NULL);
CREATE TABLE dropped (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL);
"""


class OutboxError(Exception):
    """The outbox file cannot be used (corrupt, foreign, locked, newer, disk full)."""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A snapshot of the outbox, cheap to read from the event loop at any time."""

    backlog_records: int  # results + events not yet acked by central
    backlog_events: int
    backlog_bytes: int  # bytes of record JSON held
    oldest_unsent_ts: float | None  # ts of the oldest record held
    last_seq: int  # highest sequence number ever assigned
    dropped_records_total: int  # records dropped to keep the caps, ever


@dataclass(frozen=True, slots=True)
class Drop:
    """What one cap enforcement dropped (the caller logs it)."""

    results: int
    events: int
    reason: str  # "age", "rows", "bytes"


_Row = tuple[int, float, int, str]


class Store:
    """The SQLite file. Not thread-safe: one thread (the outbox's executor) owns it."""

    def __init__(self, path: Path, config: OutboxConfig, clock: Callable[[], float]) -> None:
        self.path = path
        self.config = config
        self.clock = clock
        self.drops: list[Drop] = []  # filled by enforce(), emptied by the caller
        self.conn = _connect(path)
        try:
            self._load()
            self.enforce()
        except BaseException:
            self.conn.close()
            raise

    # --- opening -------------------------------------------------------------------------

    def _load(self) -> None:
        c = self.conn
        try:
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            version = c.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise OutboxError(_unusable(self.path, exc)) from exc
        if not tables and app_id == 0:
            self._create()
        elif app_id != APPLICATION_ID:
            raise OutboxError(
                f"outbox {self.path} is an SQLite database of another program, not a diemcau "
                "outbox: point agent.data_dir elsewhere or move the file aside"
            )
        elif version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox {self.path} was written by a newer diemcau (schema {version}, this "
                f"one knows {SCHEMA_VERSION}): upgrade diemcau or move the file aside"
            )
        try:
            row = c.execute(
                "SELECT last_seq, dropped_total, result_rows, event_rows, bytes FROM state"
            ).fetchone()
            if row is None:
                raise sqlite3.DatabaseError("the state row is missing")
            self.last_seq, self.dropped_total, self.result_rows, self.event_rows, self.bytes = (
                int(x) for x in row
            )
            # A cheap consistency check (two index lookups), never a scan.
            top = max(self._max_seq("results"), self._max_seq("events"))
        except sqlite3.DatabaseError as exc:
            raise OutboxError(_unusable(self.path, exc)) from exc
        if top > self.last_seq:
            self.last_seq = top
        self._refresh_heads()

    def _create(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                c.execute(statement)
        c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        c.execute("COMMIT")
        _fsync_dir(self.path.parent)

    def close(self) -> None:
        self.conn.close()

    # --- stats ---------------------------------------------------------------------------

    def _max_seq(self, table: str) -> int:
        row = self.conn.execute(f"SELECT max(seq) FROM {table}").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _head(self, table: str) -> tuple[int, float] | None:
        row = self.conn.execute(f"SELECT seq, ts FROM {table} ORDER BY seq LIMIT 1").fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def _refresh_heads(self) -> None:
        self.head_result = self._head("results")
        self.head_event = self._head("events")

    def stats(self) -> OutboxStats:
        heads = [h[1] for h in (self.head_result, self.head_event) if h is not None]
        return OutboxStats(
            backlog_records=self.result_rows + self.event_rows,
            backlog_events=self.event_rows,
            backlog_bytes=self.bytes,
            oldest_unsent_ts=min(heads) if heads else None,
            last_seq=self.last_seq,
            dropped_records_total=self.dropped_total,
        )

    def _save_state(self) -> None:
        self.conn.execute(
            "UPDATE state SET last_seq=?, dropped_total=?, result_rows=?, event_rows=?, bytes=?",
            (self.last_seq, self.dropped_total, self.result_rows, self.event_rows, self.bytes),
        )

    # --- append --------------------------------------------------------------------------

    def append(self, results: Sequence[wire.Result], events: Sequence[wire.Event]) -> int:
        """Store the records under the next sequence numbers; the highest one is returned.

        Every record is checked against the wire schema first: one that central would
        refuse would block the queue behind it forever, so it is refused here, with
        nothing stored (``wire.WireError`` locating the problem).
        """
        if not results and not events:
            return self.last_seq
        seq = self.last_seq
        result_dicts: list[wire.ResultRecordJSON] = []
        for r in results:
            seq += 1
            result_dicts.append(wire.result_json(seq, r))
        event_dicts: list[wire.EventRecordJSON] = []
        for e in events:
            seq += 1
            event_dicts.append(wire.event_json(seq, e))
        _check(result_dicts, event_dicts)
        result_rows = [_row(d) for d in result_dicts]
        event_rows = [_row(d) for d in event_dicts]
        self._write(lambda: self._insert(result_rows, event_rows, seq))
        return seq

    def _insert(self, result_rows: list[_Row], event_rows: list[_Row], last_seq: int) -> None:
        c = self.conn
        if result_rows:
            c.executemany("INSERT INTO results VALUES (?, ?, ?, ?)", result_rows)
            self.result_rows += len(result_rows)
        if event_rows:
            c.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", event_rows)
            self.event_rows += len(event_rows)
        self.bytes += sum(r[2] for r in result_rows) + sum(r[2] for r in event_rows)
        self.last_seq = last_seq
        if self.head_result is None and result_rows:
            self.head_result = (result_rows[0][0], result_rows[0][1])
        if self.head_event is None and event_rows:
            self.head_event = (event_rows[0][0], event_rows[0][1])
        self._enforce()

    def _write(self, work: Callable[[], None]) -> None:
        """Run ``work`` in one transaction; on failure roll back and reload the counters."""
        c = self.conn
        snapshot = (
            self.last_seq,
            self.dropped_total,
            self.result_rows,
            self.event_rows,
            self.bytes,
            self.head_result,
            self.head_event,
        )
        drops_before = len(self.drops)
        try:
            c.execute("BEGIN IMMEDIATE")
            work()
            self._save_state()
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            (
                self.last_seq,
                self.dropped_total,
                self.result_rows,
                self.event_rows,
                self.bytes,
                self.head_result,
                self.head_event,
            ) = snapshot
            del self.drops[drops_before:]
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(_failed(self.path, exc)) from exc
            raise

    # --- reading and acking --------------------------------------------------------------

    def next_batch(
        self, max_records: int, max_bytes: int, events_after: int, results_after: int
    ) -> tuple[list[str], list[tuple[int, int]], int, int, bool]:
        """Events first (seq > events_after), then the oldest results (seq > results_after)."""
        c = self.conn
        out: list[str] = []
        total = 0
        last_event = last_result = 0
        more = False
        rows = c.execute(
            "SELECT seq, nbytes, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (events_after, max_records + 1),
        )
        for seq, nbytes, body in rows:
            if len(out) >= max_records or (out and total + nbytes > max_bytes):
                more = True
                break
            out.append(body)
            total += nbytes
            last_event = seq
        if not more:
            room = max_records - len(out)
            rows = c.execute(
                "SELECT seq, nbytes, body FROM results WHERE seq > ? ORDER BY seq LIMIT ?",
                (results_after, max(room, 0) + 1),
            )
            for taken, (seq, nbytes, body) in enumerate(rows):
                if taken >= room or (out and total + nbytes > max_bytes):
                    more = True
                    break
                out.append(body)
                total += nbytes
                last_result = seq
        ranges = [
            (int(a), int(b))
            for a, b in c.execute(
                "SELECT first_seq, last_seq FROM dropped ORDER BY first_seq LIMIT ?",
                (MAX_RANGES_PER_BATCH,),
            )
        ]
        return out, ranges, last_event, last_result, more

    def ack(self, seq: int) -> int:
        """Forget everything at or below ``seq``; the number of records deleted."""
        c = self.conn
        counts = []
        for table in ("results", "events"):
            n, nbytes = c.execute(
                f"SELECT count(*), total(nbytes) FROM {table} WHERE seq <= ?", (seq,)
            ).fetchone()
            counts.append((int(n), int(nbytes)))
        ranges_hit = c.execute(
            "SELECT count(*) FROM dropped WHERE first_seq <= ?", (seq,)
        ).fetchone()[0]
        if not counts[0][0] and not counts[1][0] and not ranges_hit and seq <= self.last_seq:
            return 0

        def work() -> None:
            c.execute("DELETE FROM results WHERE seq <= ?", (seq,))
            c.execute("DELETE FROM events WHERE seq <= ?", (seq,))
            c.execute("DELETE FROM dropped WHERE last_seq <= ?", (seq,))
            c.execute("UPDATE dropped SET first_seq = ? WHERE first_seq <= ?", (seq + 1, seq))
            self.result_rows -= counts[0][0]
            self.event_rows -= counts[1][0]
            self.bytes -= counts[0][1] + counts[1][1]
            # Central holds more than this agent ever numbered: the outbox was replaced
            # (or another agent uses this id). Continue above central's mark, so new
            # records are not taken for replays of old ones.
            self.last_seq = max(self.last_seq, seq)
            self._refresh_heads()

        self._write(work)
        return counts[0][0] + counts[1][0]

    # --- caps ----------------------------------------------------------------------------

    def enforce(self) -> None:
        """Apply the caps now (at open; append applies them in its own transaction)."""
        if self._over_caps():
            self._write(self._enforce)

    def _over_caps(self) -> bool:
        cfg = self.config
        cutoff = self.clock() - cfg.max_age_seconds
        return (
            self.result_rows + self.event_rows > cfg.max_rows
            or self.bytes > cfg.max_bytes
            or (self.head_result is not None and self.head_result[1] < cutoff)
        )

    def _enforce(self) -> None:
        """Drop the oldest results (never events while a result is left) to fit the caps.

        Age applies to results only: an event is the record of an outage, small and
        rare, and central needs it however late. Events are dropped, oldest first, only
        when events alone exceed ``max_rows`` or ``max_bytes``.
        """
        cfg = self.config
        cutoff = self.clock() - cfg.max_age_seconds
        if self.head_result is not None and self.head_result[1] < cutoff:
            self._drop_head("results", "age", lambda seq, ts, nbytes: ts < cutoff)
        over_rows = self.result_rows + self.event_rows - cfg.max_rows
        if over_rows > 0:
            self._drop_count("results", over_rows, "rows")
            over_rows = self.result_rows + self.event_rows - cfg.max_rows
            if over_rows > 0:
                self._drop_count("events", over_rows, "rows")
        if self.bytes > cfg.max_bytes:
            self._drop_bytes("results", self.bytes - cfg.max_bytes)
            if self.bytes > cfg.max_bytes:
                self._drop_bytes("events", self.bytes - cfg.max_bytes)

    def _drop_count(self, table: str, n: int, reason: str) -> None:
        left = [n]

        def take(seq: int, ts: float, nbytes: int) -> bool:
            left[0] -= 1
            return left[0] >= 0

        self._drop_head(table, reason, take)

    def _drop_bytes(self, table: str, excess: int) -> None:
        freed = [0]

        def take(seq: int, ts: float, nbytes: int) -> bool:
            if freed[0] >= excess:
                return False
            freed[0] += nbytes
            return True

        self._drop_head(table, "bytes", take)

    def _drop_head(self, table: str, reason: str, take: Callable[[int, float, int], bool]) -> None:
        """Drop the longest prefix (in seq order) of ``table`` whose rows ``take`` accepts."""
        c = self.conn
        seqs: list[int] = []
        nbytes_total = 0
        after = 0
        done = False
        while not done:
            rows = c.execute(
                f"SELECT seq, ts, nbytes FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, _SCAN_CHUNK),
            ).fetchall()
            if not rows:
                break
            for seq, ts, nbytes in rows:
                if not take(seq, ts, nbytes):
                    done = True
                    break
                seqs.append(seq)
                nbytes_total += nbytes
            after = rows[-1][0]
            done = done or len(rows) < _SCAN_CHUNK
        if not seqs:
            return
        c.execute(f"DELETE FROM {table} WHERE seq <= ?", (seqs[-1],))
        other = "events" if table == "results" else "results"
        held = [
            int(r[0])
            for r in c.execute(
                f"SELECT seq FROM {other} WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (seqs[0], seqs[-1]),
            )
        ]
        for first, last in _runs(seqs, held):
            self._add_range(first, last)
        if table == "results":
            self.result_rows -= len(seqs)
        else:
            self.event_rows -= len(seqs)
        self.bytes -= nbytes_total
        self.dropped_total += len(seqs)
        self._refresh_heads()
        self.drops.append(
            Drop(
                len(seqs) if table == "results" else 0,
                len(seqs) if table == "events" else 0,
                reason,
            )
        )

    def _add_range(self, first: int, last: int) -> None:
        """Record [first, last] as dropped, merged with a neighbour when nothing held is between."""
        c = self.conn
        before = c.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE first_seq < ? "
            "ORDER BY first_seq DESC LIMIT 1",
            (first,),
        ).fetchone()
        if before is not None and not self._held_between(int(before[1]), first):
            c.execute("DELETE FROM dropped WHERE first_seq = ?", (before[0],))
            first = int(before[0])
        after = c.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE first_seq > ? "
            "ORDER BY first_seq LIMIT 1",
            (last,),
        ).fetchone()
        if after is not None and not self._held_between(last, int(after[0])):
            c.execute("DELETE FROM dropped WHERE first_seq = ?", (after[0],))
            last = int(after[1])
        c.execute("INSERT INTO dropped VALUES (?, ?)", (first, last))

    def _held_between(self, low: int, high: int) -> bool:
        """Whether a record still held lies strictly between ``low`` and ``high``."""
        return any(
            self.conn.execute(
                f"SELECT 1 FROM {t} WHERE seq > ? AND seq < ? LIMIT 1", (low, high)
            ).fetchone()
            for t in ("results", "events")
        )

    # --- for tests -----------------------------------------------------------------------

    def pragma(self, name: str) -> object:
        return self.conn.execute(f"PRAGMA {name}").fetchone()[0]


def _runs(seqs: Sequence[int], held: Sequence[int]) -> Iterable[tuple[int, int]]:
    """Split sorted ``seqs`` into ranges that contain none of the sorted ``held`` numbers."""
    start = seqs[0]
    prev = seqs[0]
    for s in seqs[1:]:
        if s != prev + 1:
            i = bisect_left(held, prev + 1)
            if i < len(held) and held[i] < s:
                yield start, prev
                start = s
        prev = s
    yield start, prev


def _row(d: wire.ResultRecordJSON | wire.EventRecordJSON) -> _Row:
    body = json.dumps(d, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    nbytes = len(body) if body.isascii() else len(body.encode())
    return (d["seq"], d["ts"], nbytes, body)


def _check(results: list[wire.ResultRecordJSON], events: list[wire.EventRecordJSON]) -> None:
    envelope: wire.BatchJSON = {
        "schema": wire.SCHEMA_VERSION,
        "agent": "outbox-check",
        "sent_at": 0.0,
        "heartbeat": {
            "uplink": "unknown",
            "backlog_records": 0,
            "oldest_unsent_ts": None,
            "dropped_records_total": 0,
            "last_seq": 0,
            "version": "0",
        },
        "records": [*results, *events],
    }
    wire.parse_batch(envelope, max_records=len(envelope["records"]))


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise OutboxError(f"outbox {path} cannot be opened: {exc}") from exc
    try:
        # One process owns the file: a second agent on the same data_dir fails at once
        # instead of interleaving sequence numbers. Set before WAL is entered so the
        # WAL index lives in this process's memory.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA busy_timeout = 0")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {path}: SQLite refused WAL mode (got {mode!r})")
        # FULL: in WAL mode each commit syncs the log, so an append that returned
        # survives a power cut, not only a crash of the process.
        conn.execute("PRAGMA synchronous = FULL")
        # Take the lock now (a write transaction) so a second owner fails here.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc):
            raise OutboxError(
                f"outbox {path} is in use by another process (another diemcau agent on "
                "the same data_dir?)"
            ) from exc
        raise OutboxError(_unusable(path, exc)) from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise OutboxError(_unusable(path, exc)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _unusable(path: Path, exc: sqlite3.Error) -> str:
    return (
        f"outbox {path} is not a usable diemcau outbox ({exc}): the file is damaged or is "
        "not an SQLite database. Stop the agent and move the file aside; a new outbox "
        "starts empty, and the undelivered records in the old one are lost"
    )


def _failed(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "full" in text:
        return f"outbox {path}: the disk is full ({text}); records were not stored"
    return f"outbox {path}: SQLite error ({text})"


def _fsync_dir(directory: Path) -> None:
    """Make the new file's directory entry durable too (a power cut right after creation)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
