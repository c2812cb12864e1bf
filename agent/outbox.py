"""The agent's on-disk queue of records not yet held by central.

Results and events are numbered with a per-agent sequence number that never repeats
(it survives restarts, even once every record was delivered and deleted) and stored as
their wire JSON in an SQLite file in WAL mode with ``synchronous=FULL``: once
:meth:`Outbox.append` has returned, the records survive a kill -9 and a power cut.

All SQLite work happens on one writer thread; the async methods never block the event
loop. The queue is bounded by rows, bytes and age: when over, the oldest *results* are
dropped first, events only when events alone exceed a cap (and never for age); what is
dropped is counted and its sequence ranges are declared to central, so central's
contiguous mark can pass over them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, ParamSpec, TypeVar

from agent._outbox_store import Drop, OutboxError, OutboxStats, Store
from inventory import wire
from inventory.config import OutboxConfig

__all__ = ["Outbox", "OutboxBatch", "OutboxError", "OutboxStats"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_BATCH_MAX_BYTES = 8 * 1024 * 1024
_DROP_LOG_SECONDS = 600.0
_CAPS = {"age": "outbox.max_age_seconds", "rows": "outbox.max_rows", "bytes": "outbox.max_bytes"}


class OutboxBatch(NamedTuple):
    """The next records to send, oldest events first, then the oldest results."""

    records_json: tuple[str, ...]  # each one record's wire JSON, ready to splice into a body
    dropped_ranges: tuple[tuple[int, int], ...]  # [first_seq, last_seq] not yet passed
    last_event_seq: int  # highest event seq in records_json (0: none)
    last_result_seq: int  # highest result seq in records_json (0: none)
    more: bool  # records were left out by the count or byte limit


class Outbox:
    """Open with ``await Outbox.open(path, config)``; close with ``await outbox.close()``."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self._store = store
        self._executor = executor
        self._closed = False
        self._stats = store.stats()
        self._last_drop_log: float | None = None
        self._unlogged_results = 0
        self._unlogged_events = 0
        self._unlogged_caps: set[str] = set()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        config: OutboxConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """Open (or create) the outbox file; raises :class:`OutboxError` with the fix.

        Quick on a big file: it reads a row of counters and two index heads, no scan
        (dropping what exceeds the caps at start is proportional to what is dropped).
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diemcau-outbox")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                executor, Store, Path(path), config or OutboxConfig(), clock
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        outbox = cls(store, executor)
        drops, store.drops = store.drops, []
        outbox._log_drops(drops)
        return outbox

    async def __aenter__(self) -> Outbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._store.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise OutboxError(f"outbox {self._store.path} is closed")
        loop = asyncio.get_running_loop()

        store = self._store

        def call() -> tuple[T, OutboxStats, list[Drop]]:
            try:
                value = fn(*args, **kwargs)
            finally:
                drops, store.drops = store.drops, []
            return value, store.stats(), drops

        value, self._stats, drops = await loop.run_in_executor(self._executor, call)
        if drops:
            self._log_drops(drops)
        return value

    async def append(self, results: Sequence[wire.Result], events: Sequence[wire.Event]) -> int:
        """Number and store the records in one transaction; the highest seq assigned.

        Results take the lower numbers, then events, each in the order given (the
        ``seq`` field of the inputs is ignored). When this returns, the records are on
        disk. A record that does not follow the wire schema (a NaN value, an empty
        device id...) raises ``wire.WireError`` and nothing is stored: central would
        refuse it and block the queue behind it. Nothing to store returns the last seq.
        """
        return await self._run(self._store.append, results, events)

    async def next_batch(
        self,
        max_records: int,
        max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        *,
        events_after: int = 0,
        results_after: int = 0,
    ) -> OutboxBatch:
        """Up to ``max_records`` records and about ``max_bytes`` of JSON (at least one record).

        All undelivered events first (those with seq > ``events_after``: the pusher
        passes the highest event seq central already stored, so events it holds but
        cannot yet ack are not resent), oldest first; then the oldest results (those with
        seq > ``results_after``: the pusher prepares the next batch of a drain while the
        previous one is in flight); each in seq order. Also the dropped ranges central
        has not passed yet (at most 1000).
        """
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        records, ranges, last_event, last_result, more = await self._run(
            self._store.next_batch, max_records, max_bytes, events_after, results_after
        )
        return OutboxBatch(tuple(records), tuple(ranges), last_event, last_result, more)

    async def ack(self, seq: int) -> int:
        """Central holds everything up to ``seq``: delete those records and dropped ranges.

        Returns how many records were deleted. An ack above the last seq ever assigned
        (the outbox was replaced while central kept its mark) moves the sequence on past
        it, so new records are not taken by central for replays.
        """
        return await self._run(self._store.ack, seq)

    def stats(self) -> OutboxStats:
        """The counters as of the last completed operation (no I/O, safe on the loop)."""
        return self._stats

    @property
    def path(self) -> Path:
        return self._store.path

    def _log_drops(self, drops: list[Drop]) -> None:
        """One warning when dropping starts, then a summary at most every 10 minutes."""
        if not drops:
            return
        for d in drops:
            self._unlogged_results += d.results
            self._unlogged_events += d.events
            self._unlogged_caps.add(_CAPS[d.reason])
        now = time.monotonic()
        if self._last_drop_log is not None and now - self._last_drop_log < _DROP_LOG_SECONDS:
            return
        what = f"{self._unlogged_results} oldest results"
        if self._unlogged_events:
            what += f" and {self._unlogged_events} oldest events (events alone exceeded the cap)"
        log.warning(
            "outbox full: dropped %s to stay within %s (%d dropped in all); central is told "
            "which sequence numbers are missing",
            what,
            " and ".join(sorted(self._unlogged_caps)),
            self._stats.dropped_records_total,
        )
        self._last_drop_log = now
        self._unlogged_results = self._unlogged_events = 0
        self._unlogged_caps = set()
