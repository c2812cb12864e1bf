"""Fakes for the agent's delivery path: a small central and a clock that tests move.

:class:`FakeCentral` is an aiohttp app with the ack semantics of ``inventory/wire.py``:
each (agent, seq) is stored once, and the answer's ``acked_seq`` is the highest
contiguous sequence number held, counting the ranges the agent declared dropped. It can
be told to fail (500), throttle (429 with Retry-After), hang (never answer), or store a
batch and then never answer (the ack is lost, so the agent replays). It keeps what it
got, in arrival order, for tests to check.

Run it alone with ``python -m agent.testing --token T`` (prints its URL): the backlog
benchmark uses it in a separate process; ``GET /_fake/agents/{agent}`` reports.

:class:`FakeTime` gives ``clock`` and ``sleep`` that do not wait: ``sleep`` records the
delay and either advances the clock at once (``auto=True``) or blocks until a test calls
:meth:`FakeTime.advance`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gzip
import hmac
import itertools
import json
import re
import ssl
import sys
import zlib
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from agent.pusher import INGEST_PATH
from inventory import wire

__all__ = [
    "AgentRecord",
    "FakeCentral",
    "FakeTime",
    "Mode",
    "RequestLog",
    "make_event",
    "make_result",
]

Mode = Literal["ok", "error", "throttle", "hang", "lose_answer"]
# How the fake reads a body: "wire" validates it as central does; "json" only decodes it;
# "none" finds the sequence numbers without decoding the records (agent load tests).
Parse = Literal["wire", "json", "none"]


@dataclass(frozen=True, slots=True)
class RequestLog:
    """One ingest request as the fake saw it (status 0: it never answered)."""

    status: int
    agent: str
    records: int
    seqs: tuple[int, ...]
    heartbeat: wire.Heartbeat | None
    dropped: tuple[tuple[int, int], ...]
    authorization_ok: bool
    sent_at: float | None


@dataclass(slots=True)
class AgentRecord:
    """What the fake holds for one agent."""

    records: dict[int, wire.Result | wire.Event] = field(default_factory=dict)
    arrival: list[int] = field(default_factory=list)  # seqs, in the order first stored
    dropped: list[tuple[int, int]] = field(default_factory=list)  # sorted, merged
    mark: int = 0
    duplicates: int = 0
    gaps: int = 0
    heartbeats: list[wire.Heartbeat] = field(default_factory=list)

    def covered(self, seq: int) -> int:
        """Last seq of the declared range holding ``seq``, or 0."""
        i = bisect.bisect_right(self.dropped, (seq, sys.maxsize)) - 1
        if i >= 0 and self.dropped[i][0] <= seq <= self.dropped[i][1]:
            return self.dropped[i][1]
        return 0

    def declare(self, first: int, last: int) -> int:
        """Add a dropped range; the number of its seqs newly counted as gaps."""
        new = 0
        seq = first
        while seq <= last:
            end = self.covered(seq)
            if end:
                seq = end + 1
                continue
            if seq not in self.records:
                new += 1
            seq += 1
        bisect.insort(self.dropped, (first, last))
        merged: list[tuple[int, int]] = []
        for a, b in self.dropped:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        self.dropped = merged
        return new

    def in_order(self, kind: type[wire.Result] | type[wire.Event]) -> bool:
        """Whether the records of this kind were first stored in seq order."""
        seqs = [s for s in self.arrival if isinstance(self.records[s], kind)]
        return all(x < y for x, y in itertools.pairwise(seqs))

    def advance(self) -> None:
        m = self.mark
        while True:
            if m + 1 in self.records:
                m += 1
                continue
            end = self.covered(m + 1)
            if end:
                m = end
                continue
            break
        self.mark = m


class FakeCentral:
    """``async with FakeCentral(token) as central:`` then push to ``central.url``."""

    def __init__(
        self,
        token: str = "fake-central-token",
        *,
        parse: Parse = "wire",
        keep_records: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.token = token
        self.parse: Parse = parse
        self.keep_records = keep_records
        self.max_body_bytes = max_body_bytes
        self.mode: Mode = "ok"
        self.mode_times: int | None = None  # requests left in self.mode; None: until changed
        self.retry_after: str = "1"
        self.agents: dict[str, AgentRecord] = {}
        self.requests: list[RequestLog] = []
        self.url = ""
        self._ssl_context = ssl_context
        self._release = asyncio.Event()
        self._failing_ports: set[int] = set()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_post(INGEST_PATH, self._ingest)
        self.app.router.add_get("/_fake/agents/{agent}", self._report)

    def set_mode(self, mode: Mode, times: int | None = None, retry_after: str = "1") -> None:
        """Behave as ``mode`` for the next ``times`` requests (None: until told otherwise)."""
        self.mode = mode
        self.mode_times = times
        self.retry_after = retry_after

    def agent(self, agent_id: str) -> AgentRecord:
        return self.agents.setdefault(agent_id, AgentRecord())

    async def __aenter__(self) -> FakeCentral:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # auto_decompress off: the fake checks the body really is gzip, as central must.
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=1.0, auto_decompress=False
        )
        await self._runner.setup()
        self.url = await self.add_listener(host, port)
        return self.url

    async def add_listener(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on one more port, in front of the same store (a second URL to one central)."""
        assert self._runner is not None, "start() first"
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl_context)
        await site.start()
        bound = self._runner.addresses[-1]
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{host}:{bound[1]}"

    def fail_url(self, url: str, failing: bool = True) -> None:
        """Answer 500 to requests arriving at ``url`` (one of this central's listeners)."""
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        if failing:
            self._failing_ports.add(port)
        else:
            self._failing_ports.discard(port)

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers ------------------------------------------------------------------------

    def _take_mode(self) -> Mode:
        mode = self.mode
        if self.mode_times is not None:
            self.mode_times -= 1
            if self.mode_times <= 0:
                self.mode, self.mode_times = "ok", None
        return mode

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        auth_ok = hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode())
        mode = self._take_mode()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if sockname and sockname[1] in self._failing_ports:
            mode = "error"
        raw = await request.read()
        if not auth_ok:
            return self._answer(401, {"error": "unknown token"}, "", None, auth_ok)
        if mode == "hang":
            self._log(0, "", None, auth_ok)
            await self._release.wait()
            return web.json_response({"error": "shutting down"}, status=503)
        if mode == "error":
            return self._answer(500, {"error": "fake failure"}, "", None, auth_ok)
        if mode == "throttle":
            return self._answer(
                429,
                {"error": "slow down"},
                "",
                None,
                auth_ok,
                headers={"Retry-After": self.retry_after},
            )
        try:
            if request.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            if len(raw) > self.max_body_bytes:
                return self._answer(413, {"error": "body too large"}, "", None, auth_ok)
            batch = _parse(raw, self.parse)
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, wire.WireError):
                return self._answer(
                    400, {"error": "schema", "problems": exc.problems}, "", None, auth_ok
                )
            return self._answer(400, {"error": f"unreadable body: {exc}"}, "", None, auth_ok)
        ack = self._store(batch)
        if mode == "lose_answer":
            # Stored, but the answer never reaches the agent: it must replay.
            self._log(0, batch.agent, batch, auth_ok)
            await self._release.wait()
            return web.json_response({"error": "shutting down"}, status=503)
        return self._answer(200, ack, batch.agent, batch, auth_ok)

    def _store(self, batch: wire.Batch) -> wire.AckJSON:
        a = self.agent(batch.agent)
        a.heartbeats.append(batch.heartbeat)
        gaps = 0
        for first, last in batch.dropped:
            gaps += a.declare(first, last)
        stored = duplicates = 0
        for rec in batch.records:
            if rec.seq in a.records:
                duplicates += 1
                continue
            seq = rec.seq
            if not self.keep_records:  # a shared stand-in of the same type, to spare memory
                rec = _KEPT_EVENT if isinstance(rec, wire.Event) else _KEPT_RESULT
            a.records[seq] = rec
            a.arrival.append(seq)
            stored += 1
        a.duplicates += duplicates
        a.gaps += gaps
        a.advance()
        return {"acked_seq": a.mark, "stored": stored, "duplicates": duplicates, "gaps": gaps}

    def _answer(
        self,
        status: int,
        payload: wire.AckJSON | wire.ErrorJSON,
        agent: str,
        batch: wire.Batch | None,
        auth_ok: bool,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self._log(status, agent, batch, auth_ok)
        return web.json_response(payload, status=status, headers=headers)

    def _log(self, status: int, agent: str, batch: wire.Batch | None, auth_ok: bool) -> None:
        self.requests.append(
            RequestLog(
                status=status,
                agent=agent,
                records=len(batch.records) if batch else 0,
                seqs=tuple(r.seq for r in batch.records) if batch else (),
                heartbeat=batch.heartbeat if batch else None,
                dropped=batch.dropped if batch else (),
                authorization_ok=auth_ok,
                sent_at=batch.sent_at if batch else None,
            )
        )

    async def _report(self, request: web.Request) -> web.Response:
        a = self.agent(request.match_info["agent"])
        return web.json_response(
            {
                "mark": a.mark,
                "stored": len(a.records),
                "duplicates": a.duplicates,
                "gaps": a.gaps,
                "heartbeats": len(a.heartbeats),
                "results_in_seq_order": a.in_order(wire.Result),
                "events_in_seq_order": a.in_order(wire.Event),
                "requests": len(self.requests),
            }
        )


_KEPT_EVENT = wire.Event(0, 0.0, "-", "-", "-", "unknown", "unknown", 0.0, "", False, "health")
_KEPT_RESULT = wire.Result(0, 0.0, "-", "-", "-", "-", "up", "", 0.0, ())


_RECORDS_KEY = b'"records":['
_SEQ_TYPE = re.compile(rb'\{"seq":(\d+),"ts":[^,]*,"type":"(result|event)"')


def _parse(raw: bytes, parse: Parse) -> wire.Batch:
    """The wire parser; or, for load tests of the agent, a quicker read (see ``Parse``)."""
    if parse == "wire":
        return wire.parse_batch(json.loads(raw))
    if parse == "json":
        body = json.loads(raw)
        pairs = [(r["seq"], r["type"]) for r in body["records"]]
    else:
        # The agent writes the records key once, unescaped, and each record starting
        # {"seq":N,"ts":T,"type":...: read those, and only the head as JSON.
        at = raw.rindex(_RECORDS_KEY)
        body = json.loads(raw[:at] + b'"records":[]}')
        pairs = [(int(m[1]), m[2].decode()) for m in _SEQ_TYPE.finditer(raw, at)]
    hb = body["heartbeat"]
    records: list[wire.Result | wire.Event] = [
        (_KEPT_EVENT if kind == "event" else _KEPT_RESULT)._replace(seq=seq) for seq, kind in pairs
    ]
    return wire.Batch(
        body["agent"],
        body["sent_at"],
        wire.Heartbeat(
            hb["uplink"],
            hb["backlog_records"],
            hb["oldest_unsent_ts"],
            hb["dropped_records_total"],
            hb["last_seq"],
            hb["version"],
        ),
        tuple((a, b) for a, b in body.get("dropped", [])),
        tuple(records),
    )


def make_result(
    n: int,
    ts: float = 1_800_000_000.0,
    *,
    site: str = "site-a",
    device: str = "router",
    check: str = "icmp",
    samples: int = 1,
    status: str = "up",
) -> wire.Result:
    """A valid result whose first sample's value is ``n`` (to tell records apart)."""
    return wire.Result(
        0,
        ts,
        site,
        f"{site}-{device}",
        check,
        check,
        status,
        "" if status == "up" else f"{check} failed",
        0.01,
        tuple(
            wire.Sample(f"diemcau_test_value_{i}", (("n", str(i)),) if i else (), float(n))
            for i in range(samples)
        ),
    )


def make_event(
    ts: float = 1_800_000_000.0,
    *,
    site: str = "site-a",
    device: str = "router",
    check: str = "icmp",
    previous: str = "up",
    state: str = "down",
) -> wire.Event:
    """A valid event (a confirmed state change of one check)."""
    return wire.Event(
        0,
        ts,
        site,
        f"{site}-{device}",
        check,
        previous,
        state,
        ts - 10.0,
        "no answer",
        False,
        "health",
    )


class FakeTime:
    """An injected ``clock`` and ``sleep``: ``sleeps`` records every delay asked for.

    With ``auto=True`` a sleep advances the clock at once and returns (after yielding to
    the loop); otherwise it blocks until :meth:`advance` moves the clock past its end.
    """

    def __init__(self, start: float = 1_800_000_000.0, *, auto: bool = True) -> None:
        self.now = start
        self.auto = auto
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += seconds
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        still = []
        for end, fut in self._waiters:
            if fut.done():
                continue
            if end <= self.now:
                fut.set_result(None)
            else:
                still.append((end, fut))
        self._waiters = still


async def _serve(args: argparse.Namespace) -> None:
    central = FakeCentral(args.token, parse=args.parse, keep_records=False)
    url = await central.start(args.host, args.port)
    print(url, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await central.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a fake diemcau central, for tests and bench")
    parser.add_argument("--token", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--parse",
        choices=("wire", "json", "none"),
        default="wire",
        help="wire: the wire parser, as central; json: json.loads only; none: find the seqs",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
