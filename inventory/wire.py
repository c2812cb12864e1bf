"""The wire schema: what an agent sends to central and what central answers.

Both sides import this module and nothing else crosses between ``agent/`` and
``central/``. JSON, gzip-compressed, ``POST /api/v1/ingest`` with a bearer token.

A *record* is one check result (with all its samples) or one event, numbered by the
agent with a sequence number that never repeats (it survives restarts in the outbox).
Central stores each (agent, seq) once and answers with the highest *contiguous*
sequence number it now holds (``acked_seq``): everything at or below it may be deleted
by the agent. Records the agent had to drop (its outbox was full) are declared in
``dropped`` ranges, so the contiguous mark can pass over them; central counts them.

Validation here is hand-written rather than the generic schema builder because it sits
on the hot path of a 7-day backlog drain; it stops after a few problems and locates
each (``records[12].samples[3].value: must be a number, got 'x'``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, NotRequired, TypedDict

SCHEMA_VERSION = 1
MAX_ISSUES = 10
MAX_DROPPED_RANGES = 10_000
STATUSES = ("up", "degraded", "down", "unknown")
UPLINKS = ("fiber", "cellular", "unknown")


# --- JSON shapes (TypedDicts: only on the wire) ----------------------------------------


class SampleJSON(TypedDict):
    name: str
    labels: NotRequired[dict[str, str]]
    value: float


class ResultRecordJSON(TypedDict):
    seq: int
    ts: float  # unix seconds when the probe finished
    type: Literal["result"]
    site: str
    device: str
    check: str
    kind: str  # probe kind
    status: str  # up, degraded, down
    reason: str
    duration_seconds: float
    samples: list[SampleJSON]


class EventRecordJSON(TypedDict):
    seq: int
    ts: float  # unix seconds of the state change (when it was confirmed)
    type: Literal["event"]
    site: str
    device: str
    check: str
    previous: str  # a state: up, degraded, down, unknown
    state: str
    since: float  # unix seconds the condition started (first failing result)
    reason: str
    flapping: NotRequired[bool]
    source: NotRequired[str]  # "health" (a confirmed state change) or "trap"


class HeartbeatJSON(TypedDict):
    uplink: str  # fiber, cellular, unknown
    backlog_records: int
    oldest_unsent_ts: float | None
    dropped_records_total: int
    last_seq: int
    version: str


class BatchJSON(TypedDict):
    schema: int
    agent: str
    sent_at: float
    heartbeat: HeartbeatJSON
    dropped: NotRequired[list[list[int]]]  # [[first_seq, last_seq], ...]
    records: list[ResultRecordJSON | EventRecordJSON]


class AckJSON(TypedDict):
    acked_seq: int
    stored: int  # new records stored from this batch
    duplicates: int  # records already held (replays)
    gaps: int  # sequence numbers the agent declared dropped, newly counted


class ErrorJSON(TypedDict):
    error: str
    problems: NotRequired[list[str]]


# --- validated values ------------------------------------------------------------------
# Samples, results and events are NamedTuples rather than frozen dataclasses: equally
# immutable, and about three times cheaper to build, which matters on the drain path.


class Sample(NamedTuple):
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


class Result(NamedTuple):
    seq: int
    ts: float
    site: str
    device: str
    check: str
    kind: str
    status: str
    reason: str
    duration_seconds: float
    samples: tuple[Sample, ...]


class Event(NamedTuple):
    seq: int
    ts: float
    site: str
    device: str
    check: str
    previous: str
    state: str
    since: float
    reason: str
    flapping: bool
    source: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    uplink: str
    backlog_records: int
    oldest_unsent_ts: float | None
    dropped_records_total: int
    last_seq: int
    version: str


@dataclass(frozen=True, slots=True)
class Batch:
    agent: str
    sent_at: float
    heartbeat: Heartbeat
    dropped: tuple[tuple[int, int], ...]
    records: tuple[Result | Event, ...]


class WireError(ValueError):
    """A body that does not follow the schema; ``problems`` are located, at most MAX_ISSUES."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# --- parsing ---------------------------------------------------------------------------


class _Checker:
    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, message: str, got: object = None) -> None:
        if len(self.problems) < MAX_ISSUES:
            shown = repr(got)
            if len(shown) > 40:
                shown = shown[:37] + "..."
            self.problems.append(f"{path}: {message}, got {shown}")
        if len(self.problems) >= MAX_ISSUES:
            raise WireError(self.problems)

    def str_(
        self, d: dict[str, object], key: str, path: str, max_len: int = 256, empty: bool = False
    ) -> str:
        v = d.get(key)
        if not isinstance(v, str) or (not v and not empty) or len(v) > max_len:
            self.bad(f"{path}.{key}", f"must be text of 1..{max_len} characters", v)
            return ""
        return v

    def num(self, d: dict[str, object], key: str, path: str) -> float:
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not _isfinite(v):
            self.bad(f"{path}.{key}", "must be a finite number", v)
            return 0.0
        return float(v)

    def int_(self, d: dict[str, object], key: str, path: str, lo: int = 0) -> int:
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or v >= 2**63:
            self.bad(f"{path}.{key}", f"must be an integer >= {lo}", v)
            return lo
        return v

    def choice(self, d: dict[str, object], key: str, path: str, allowed: tuple[str, ...]) -> str:
        v = d.get(key)
        if v not in allowed:
            self.bad(f"{path}.{key}", f"must be one of {', '.join(allowed)}", v)
            return allowed[-1]
        assert isinstance(v, str)
        return v

    def mapping(self, v: object, path: str) -> dict[str, object]:
        if not isinstance(v, dict):
            self.bad(path, "must be an object", type(v).__name__)
            return {}
        return v

    def keys(self, d: dict[str, object], allowed: frozenset[str], path: str) -> None:
        if len(d) <= len(allowed) and allowed.issuperset(d):
            return
        extra = d.keys() - allowed
        for k in sorted(extra, key=str):
            self.bad(f"{path}.{k}", "unknown field", d[k])


_BATCH_KEYS = frozenset(BatchJSON.__annotations__)
_HB_KEYS = frozenset(HeartbeatJSON.__annotations__)
_RESULT_KEYS = frozenset(ResultRecordJSON.__annotations__)
_EVENT_KEYS = frozenset(EventRecordJSON.__annotations__)
_SAMPLE_KEYS = frozenset(SampleJSON.__annotations__)


def parse_batch(body: object, max_records: int = 100_000) -> Batch:
    """Check a decoded JSON body; return the Batch or raise WireError (located problems)."""
    c = _Checker()
    try:
        d = c.mapping(body, "body")
        if c.problems:
            raise WireError(c.problems)
        c.keys(d, _BATCH_KEYS, "body")
        if d.get("schema") != SCHEMA_VERSION:
            c.bad("body.schema", f"must be {SCHEMA_VERSION}", d.get("schema"))
        agent = c.str_(d, "agent", "body", 128)
        sent_at = c.num(d, "sent_at", "body")
        hb = _heartbeat(c, d.get("heartbeat"))
        dropped = _dropped(c, d.get("dropped", []))
        raw = d.get("records")
        if not isinstance(raw, list):
            c.bad("body.records", "must be a list", type(raw).__name__)
            raw = []
        if len(raw) > max_records:
            c.bad("body.records", f"must hold at most {max_records} records", len(raw))
        records: list[Result | Event] = []
        seen: set[int] = set()
        for i, r in enumerate(raw):
            rec = _record(c, r, f"records[{i}]")
            if rec is not None:
                if rec.seq in seen:
                    c.bad(f"records[{i}].seq", "repeats a sequence number of this batch", rec.seq)
                seen.add(rec.seq)
                records.append(rec)
    except WireError:
        raise
    if c.problems:
        raise WireError(c.problems)
    return Batch(agent, sent_at, hb, dropped, tuple(records))


def _heartbeat(c: _Checker, v: object) -> Heartbeat:
    d = c.mapping(v, "body.heartbeat")
    p = "body.heartbeat"
    c.keys(d, _HB_KEYS, p)
    oldest = d.get("oldest_unsent_ts")
    if oldest is not None:
        oldest = c.num(d, "oldest_unsent_ts", p)
    return Heartbeat(
        c.choice(d, "uplink", p, UPLINKS),
        c.int_(d, "backlog_records", p),
        oldest,
        c.int_(d, "dropped_records_total", p),
        c.int_(d, "last_seq", p),
        c.str_(d, "version", p, 64),
    )


def _dropped(c: _Checker, v: object) -> tuple[tuple[int, int], ...]:
    if not isinstance(v, list):
        c.bad("body.dropped", "must be a list of [first_seq, last_seq]", v)
        return ()
    if len(v) > MAX_DROPPED_RANGES:
        c.bad("body.dropped", f"must hold at most {MAX_DROPPED_RANGES} ranges", len(v))
        return ()
    out = []
    for i, pair in enumerate(v):
        ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in pair)
            and pair[0] <= pair[1]
        )
        if not ok:
            c.bad(
                f"body.dropped[{i}]", "must be [first_seq, last_seq] with 1 <= first <= last", pair
            )
            continue
        out.append((pair[0], pair[1]))
    return tuple(out)


def _record(c: _Checker, v: object, p: str) -> Result | Event | None:
    d = c.mapping(v, p)
    t = d.get("type")
    if t == "result":
        c.keys(d, _RESULT_KEYS, p)
        samples_raw = d.get("samples")
        if not isinstance(samples_raw, list):
            c.bad(f"{p}.samples", "must be a list", type(samples_raw).__name__)
            samples_raw = []
        samples = tuple(_sample(c, s, f"{p}.samples[{j}]") for j, s in enumerate(samples_raw))
        return Result(
            c.int_(d, "seq", p, 1),
            c.num(d, "ts", p),
            c.str_(d, "site", p),
            c.str_(d, "device", p),
            c.str_(d, "check", p),
            c.str_(d, "kind", p, 64),
            c.choice(d, "status", p, STATUSES[:3]),
            c.str_(d, "reason", p, 2000, empty=True),
            c.num(d, "duration_seconds", p),
            samples,
        )
    if t == "event":
        c.keys(d, _EVENT_KEYS, p)
        flapping = d.get("flapping", False)
        if not isinstance(flapping, bool):
            c.bad(f"{p}.flapping", "must be true or false", flapping)
            flapping = False
        source = d.get("source", "health")
        if source not in ("health", "trap"):
            c.bad(f"{p}.source", "must be health or trap", source)
            source = "health"
        assert isinstance(source, str)
        return Event(
            c.int_(d, "seq", p, 1),
            c.num(d, "ts", p),
            c.str_(d, "site", p),
            c.str_(d, "device", p),
            c.str_(d, "check", p),
            c.choice(d, "previous", p, STATUSES),
            c.choice(d, "state", p, STATUSES),
            c.num(d, "since", p),
            c.str_(d, "reason", p, 2000, empty=True),
            flapping,
            source,
        )
    c.bad(f"{p}.type", "must be result or event", t)
    return None


def _isfinite(v: float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer of hundreds of digits
        return False


def _sample(c: _Checker, v: object, p: str) -> Sample:
    # Fast path for the common, well-formed sample; anything odd takes the slow,
    # explaining path below.
    if type(v) is dict:
        name, value, labels = v.get("name"), v.get("value"), v.get("labels")
        n = len(v)
        if (
            type(name) is str
            and (type(value) is float or type(value) is int)
            and _isfinite(value)
            and name.startswith("diemcau_")
            and len(name) <= 200
            and (n == 2 or (n == 3 and type(labels) is dict and len(labels) <= 32))
        ):
            if labels is None:
                return Sample(name, (), float(value))
            ok = True
            for k, x in labels.items():
                if type(x) is not str or len(k) > 100 or len(x) > 1000:
                    ok = False
                    break
            if ok:
                return Sample(name, tuple(sorted(labels.items())), float(value))
    return _sample_slow(c, v, p)


def _sample_slow(c: _Checker, v: object, p: str) -> Sample:
    d = c.mapping(v, p)
    c.keys(d, _SAMPLE_KEYS, p)
    name = c.str_(d, "name", p, 200)
    if name and not name.startswith("diemcau_"):
        c.bad(f"{p}.name", "must start with diemcau_", name)
    labels_raw = d.get("labels", {})
    labels: tuple[tuple[str, str], ...] = ()
    if (
        not isinstance(labels_raw, dict)
        or len(labels_raw) > 32
        or not all(
            isinstance(k, str) and isinstance(x, str) and len(k) <= 100 and len(x) <= 1000
            for k, x in labels_raw.items()
        )
    ):
        c.bad(f"{p}.labels", "must be an object of at most 32 text labels", labels_raw)
    else:
        labels = tuple(sorted(labels_raw.items()))
    return Sample(name, labels, c.num(d, "value", p))


# --- building (agent side) ---------------------------------------------------------------


def result_json(seq: int, r: Result) -> ResultRecordJSON:
    out: ResultRecordJSON = {
        "seq": seq,
        "ts": r.ts,
        "type": "result",
        "site": r.site,
        "device": r.device,
        "check": r.check,
        "kind": r.kind,
        "status": r.status,
        "reason": r.reason,
        "duration_seconds": r.duration_seconds,
        "samples": [_sample_json(s) for s in r.samples],
    }
    return out


def _sample_json(s: Sample) -> SampleJSON:
    out: SampleJSON = {"name": s.name, "value": s.value}
    if s.labels:
        out["labels"] = dict(s.labels)
    return out


def event_json(seq: int, e: Event) -> EventRecordJSON:
    out: EventRecordJSON = {
        "seq": seq,
        "ts": e.ts,
        "type": "event",
        "site": e.site,
        "device": e.device,
        "check": e.check,
        "previous": e.previous,
        "state": e.state,
        "since": e.since,
        "reason": e.reason,
    }
    if e.flapping:
        out["flapping"] = True
    if e.source != "health":
        out["source"] = e.source
    return out
