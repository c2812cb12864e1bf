"""Store one agent's batch and answer with the acknowledgement (``AckJSON``).

One transaction per batch: new records (``INSERT OR IGNORE`` on (agent, seq), so a replay
stores nothing twice and is counted as duplicates), the newly declared dropped ranges
(counted once), the agent's highest contiguous sequence number, latest values and the
heartbeat. The in-memory mark changes only once that transaction is on disk.
"""

from __future__ import annotations

import json
import logging
import time
from operator import attrgetter
from typing import Final

from central.store import Store, Writer
from inventory.wire import AckJSON, Batch, Event, Result, Sample, WireError

log = logging.getLogger(__name__)

MAX_DROPPED_RANGES: Final = 10_000
_MAX_SEQ: Final = 2**63 - 1

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

_ts = attrgetter("ts")

_INSERT_RECORD = (
    "INSERT OR IGNORE INTO records"
    " (agent, seq, ts, type, site, device, check_name, status, body, received)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DROPPED = "INSERT INTO dropped (agent, first_seq, last_seq, received) VALUES (?, ?, ?, ?)"
_UPSERT_LATEST = (
    "INSERT INTO latest (site, device, check_name, name, labels, value, ts, agent)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (site, device, check_name, name, labels) DO UPDATE"
    " SET value = excluded.value, ts = excluded.ts, agent = excluded.agent"
    " WHERE excluded.ts >= latest.ts"
)
_UPSERT_CHECK = (
    "INSERT INTO latest_checks"
    " (site, device, check_name, kind, status, reason, duration_seconds, ts, agent, seq)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (site, device, check_name) DO UPDATE"
    " SET kind = excluded.kind, status = excluded.status, reason = excluded.reason,"
    " duration_seconds = excluded.duration_seconds, ts = excluded.ts,"
    " agent = excluded.agent, seq = excluded.seq"
    " WHERE excluded.ts >= latest_checks.ts"
)
_UPDATE_AGENT = (
    "UPDATE agents SET last_seen = ?, acked_seq = ?, stored_total = stored_total + ?,"
    " duplicates_total = duplicates_total + ?, gaps_total = gaps_total + ? WHERE id = ?"
)
# Two pushes of one agent may be answered out of order: keep the newer heartbeat.
_UPDATE_HEARTBEAT = (
    "UPDATE agents SET hb_sent_at = ?, hb_uplink = ?, hb_backlog_records = ?,"
    " hb_oldest_unsent_ts = ?, hb_dropped_records_total = ?, hb_last_seq = ?, hb_version = ?"
    " WHERE id = ? AND (hb_sent_at IS NULL OR hb_sent_at <= ?)"
)


async def ingest(store: Store, agent: str, batch: Batch, *, now: float | None = None) -> AckJSON:
    """Store ``batch`` from ``agent`` (already authenticated and authorised) durably.

    Raises ``WireError`` (nothing stored) for what the schema cannot rule out: a dropped
    range beyond SQLite's integers, too many dropped ranges, text SQLite cannot encode.
    """
    check_storable(batch)
    received = time.time() if now is None else now
    return await store.write(lambda w: ingest_in_writer(w, agent, batch, received))


def check_storable(batch: Batch) -> None:
    problems = []
    if len(batch.dropped) > MAX_DROPPED_RANGES:
        problems.append(
            f"body.dropped: must hold at most {MAX_DROPPED_RANGES} ranges, got {len(batch.dropped)}"
        )
    for i, (first, last) in enumerate(batch.dropped):
        if last > _MAX_SEQ and len(problems) < 10:
            problems.append(f"body.dropped[{i}]: must be below 2**63, got {[first, last]}")
    if problems:
        raise WireError(problems)


def ingest_in_writer(w: Writer, agent: str, batch: Batch, received: float) -> AckJSON:
    """The body of ``ingest``, run in the store's writer thread."""
    old = w.mark(agent)
    mark = old.copy()
    fresh = [r for r in batch.records if r.seq > old.acked]
    hb = batch.heartbeat
    try:
        with w.transaction() as conn:
            conn.execute(
                "INSERT INTO agents (id, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (agent, received),
            )
            results = [r for r in fresh if type(r) is Result]
            events = [r for r in fresh if type(r) is Event]
            rows = _result_rows(agent, results, received) + _event_rows(agent, events, received)
            stored = conn.executemany(_INSERT_RECORD, rows).rowcount
            mark.add_seqs(r.seq for r in fresh)
            gaps = 0
            dropped_rows = []
            for first, last in batch.dropped:
                for a, b in mark.add(first, last):
                    gaps += b - a + 1
                    dropped_rows.append((agent, a, b, received))
            conn.executemany(_INSERT_DROPPED, dropped_rows)
            if results:
                conn.executemany(_UPSERT_LATEST, _latest_rows(agent, results))
                conn.executemany(_UPSERT_CHECK, _check_rows(agent, results))
            duplicates = len(batch.records) - stored
            conn.execute(_UPDATE_AGENT, (received, mark.acked, stored, duplicates, gaps, agent))
            conn.execute(
                _UPDATE_HEARTBEAT,
                (
                    batch.sent_at,
                    hb.uplink,
                    hb.backlog_records,
                    hb.oldest_unsent_ts,
                    hb.dropped_records_total,
                    hb.last_seq,
                    hb.version,
                    agent,
                    batch.sent_at,
                ),
            )
    except UnicodeEncodeError:
        raise WireError(["body: text holds an unpaired surrogate (not valid Unicode)"]) from None
    w.marks[agent] = mark
    restarted = hb.last_seq < old.acked
    if restarted and f"restart:{agent}" not in w.logged:
        # The agent numbers from scratch (its outbox was wiped): everything it sends now
        # looks like a replay. Say it loudly, once; the fix is an operator's decision.
        w.logged.add(f"restart:{agent}")
        log.warning(
            "agent %s numbers its records up to %d but central already acknowledged %d:"
            " its new records are taken for replays and discarded",
            agent,
            hb.last_seq,
            old.acked,
        )
    elif not restarted:
        w.logged.discard(f"restart:{agent}")
    return {"acked_seq": mark.acked, "stored": stored, "duplicates": duplicates, "gaps": gaps}


_RecordRow = tuple[str, int, float, str, str, str, str, str, str, float]


def _result_rows(agent: str, results: list[Result], received: float) -> list[_RecordRow]:
    # Unpacking beats attribute access here: this runs for every record of a drain.
    return [
        (agent, seq, ts, "result", site, device, check, status, _encode(
            {"kind": kind, "reason": reason, "duration_seconds": duration, "samples": samples}
        ), received)
        for (seq, ts, site, device, check, kind, status, reason, duration, samples) in results
    ]  # fmt: skip


def _event_rows(agent: str, events: list[Event], received: float) -> list[_RecordRow]:
    return [
        (agent, e.seq, e.ts, "event", e.site, e.device, e.check, e.state, _encode(
            {"previous": e.previous, "since": e.since, "reason": e.reason,
             "flapping": e.flapping, "source": e.source}
        ), received)
        for e in events
    ]  # fmt: skip


def _latest_rows(
    agent: str, results: list[Result]
) -> list[tuple[str, str, str, str, str, float, float, str]]:
    # A backlog holds many results of one series: write each series once, its newest
    # (oldest first, so the newest overwrites; equal times: the later record wins).
    newest = {
        (r.site, r.device, r.check, s.name, s.labels): (s.value, r.ts)
        for r in sorted(results, key=_ts)
        for s in r.samples
    }
    return [
        (site, device, check, name, labels_json(labels), value, ts, agent)
        for (site, device, check, name, labels), (value, ts) in newest.items()
    ]


def _check_rows(
    agent: str, results: list[Result]
) -> list[tuple[str, str, str, str, str, str, float, float, str, int]]:
    newest = {(r.site, r.device, r.check): r for r in sorted(results, key=_ts)}
    return [
        (
            r.site,
            r.device,
            r.check,
            r.kind,
            r.status,
            r.reason,
            r.duration_seconds,
            r.ts,
            agent,
            r.seq,
        )
        for r in newest.values()
    ]


def labels_json(labels: tuple[tuple[str, str], ...]) -> str:
    """The ``latest.labels`` key: a JSON object with sorted keys, ``{}`` when none."""
    return _encode(dict(labels)) if labels else "{}"


def body_samples(body: str) -> tuple[Sample, ...]:
    """The samples of a stored result's ``records.body``."""
    raw = json.loads(body)["samples"]
    return tuple(
        Sample(name, tuple((k, x) for k, x in labels), float(value)) for name, labels, value in raw
    )
