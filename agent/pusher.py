"""Delivery of the outbox to central: batches over HTTPS, failover, backoff, heartbeat.

One loop (:meth:`Pusher.run`): take the next batch from the outbox (events first, then
the oldest results), gzip it, ``POST /api/v1/ingest`` to the first central URL that
answers, and on 200 ack what central says it holds. A backlog is drained back to back,
oldest first, at up to ``max_records_per_second``; otherwise new samples go every
``interval_seconds``, an event at once (:meth:`Pusher.wake`), and an empty batch carries
the heartbeat when there is nothing else to send. Failures back off exponentially with
full jitter, so 133 agents do not all reconnect in the same second when central returns.

Time is injected (``clock``, ``sleep``): tests jump it instead of waiting. The token is
read from its reference at each request and never logged or put in an error text.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from agent.outbox import DEFAULT_BATCH_MAX_BYTES, Outbox, OutboxBatch
from inventory import wire
from inventory.config import AgentConfig
from inventory.errors import SecretError

__all__ = ["INGEST_PATH", "PushConfigError", "PushState", "Pusher"]

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
_MAX_RETRY_AFTER_SECONDS = 3600.0
_MAX_ANSWER_BYTES = 1 << 20
_MIN_BATCH_BYTES = 64 * 1024
_GZIP_LEVEL = 6
_BODY_IN_THREAD_RECORDS = 200  # bigger bodies are joined and compressed off the loop
_MAX_LOGGED_PROBLEMS = 200
MAX_PROBLEM_LINES = 10
_GROW_AFTER_SUCCESSES = 5
_EMPTY_RECORDS = '"records":[]'


class PushConfigError(Exception):
    """The pusher cannot start (its CA file cannot be read)."""


@dataclass(frozen=True, slots=True)
class PushState:
    """What ``diemcau agent status`` shows about delivery. Never holds the token."""

    url: str  # the central URL in use (the one that last answered, or the one tried next)
    central_reachable: bool  # the last attempt got an HTTP answer from some URL
    last_success_ts: float | None  # clock() of the last push central acked
    consecutive_failures: int
    last_error: str  # "" after a success
    acked_seq: int  # central's last contiguous mark
    records_sent_total: int  # records in batches central answered 200 to (replays included)
    bytes_sent_total: int  # gzip body bytes of those batches
    pushes_total: int  # requests answered 200
    push_failures_total: int  # attempts that did not end in 200


Kind = Literal[
    "ok",
    "unreachable",
    "server",
    "throttled",
    "refused",
    "rejected",
    "too_large",
    "no_token",
    "stalled",
]
_ANSWERED: frozenset[Kind] = frozenset(
    {"server", "throttled", "refused", "rejected", "too_large", "stalled"}
)


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: Kind
    url: str
    error: str = ""  # for the state and the log; never contains the token
    acked_seq: int = 0
    retry_after_seconds: float | None = None
    problems: tuple[str, ...] = ()
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class _Prepared:
    batch: OutboxBatch
    body: bytes  # gzip


async def _discard(task: asyncio.Task[_Prepared] | None) -> None:
    """Cancel a batch prepared ahead (its records are read again from central's mark)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _unknown_uplink() -> str:
    return "unknown"


class Pusher:
    """Use as ``async with Pusher(...) as p:`` and run ``await p.run()`` in a task.

    ``uplink`` tells which link is in use ("fiber", "cellular" or "unknown"), for the
    heartbeat; ``version`` is this agent's version. ``batch_max_bytes`` keeps a body
    under central's ``max_body_bytes`` (16 MiB by default; a 413 halves it);
    ``primary_retry_seconds`` is how long the agent stays on a fallback URL before it
    tries the first one again.
    """

    def __init__(
        self,
        config: AgentConfig,
        outbox: Outbox,
        *,
        version: str,
        uplink: Callable[[], str] = _unknown_uplink,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        primary_retry_seconds: float = 300.0,
    ) -> None:
        self._config = config
        self._push = config.push
        self._outbox = outbox
        self._version = version
        self._uplink = uplink
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._batch_max_bytes = batch_max_bytes
        self._batch_max_bytes_configured = batch_max_bytes
        self._successes_since_shrink = 0
        self._primary_retry_seconds = primary_retry_seconds
        self._agent_id = config.agent_id or config.site
        self._urls = tuple(_ingest_url(u) for u in config.central_urls)
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        # delivery state
        self._current = 0
        self._primary_retry_at = 0.0
        self._events_stored_upto = 0  # events central answered 200 to, at self._current
        self._heartbeat_due = 0.0
        self._failing_since: float | None = None
        self._logged_problems: set[str] = set()
        self._logged_kind: str = ""
        self._seq_warned = False
        self._acking: asyncio.Task[None] | None = None
        self._state = PushState(
            url=config.central_urls[0],
            central_reachable=False,
            last_success_ts=None,
            consecutive_failures=0,
            last_error="",
            acked_seq=0,
            records_sent_total=0,
            bytes_sent_total=0,
            pushes_total=0,
            push_failures_total=0,
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Pusher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Build the TLS context and the HTTP session; raises PushConfigError on a bad CA file."""
        if self._session is not None:
            return
        context: ssl.SSLContext | bool = True
        if any(urlsplit(u).scheme == "https" for u in self._urls):
            context = await asyncio.to_thread(_tls_context, self._config.ca_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=4),
            headers={"User-Agent": f"diemcau-agent/{self._version}"},
            auto_decompress=True,
        )

    async def aclose(self) -> None:
        await self._settle()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- public --------------------------------------------------------------------------

    def wake(self) -> None:
        """Push now: an event was appended (interrupts the wait for the next interval)."""
        self._wake.set()

    def state(self) -> PushState:
        return self._state

    async def run(self) -> None:
        """Push until cancelled. Failures are logged on transitions and retried, never raised.

        While a backlog drains, the next batch is read and compressed while the current
        one is in flight, and acks do not hold up the next send; one request is in
        flight at a time, so a failure simply drops the prepared batch and the drain
        resumes from central's mark.
        """
        await self.start()
        ahead: asyncio.Task[_Prepared] | None = None
        try:
            while True:
                now = self._clock()
                if ahead is not None:
                    prepared, ahead = await ahead, None
                else:
                    if self._outbox.stats().backlog_records == 0 and now < self._heartbeat_due:
                        await self._pause(self._idle_seconds(now))
                        continue
                    prepared = await self._prepare()
                batch = prepared.batch
                if (
                    not batch.records_json
                    and not batch.dropped_ranges
                    and now < self._heartbeat_due
                ):
                    await self._pause(self._idle_seconds(now))
                    continue
                if batch.more:
                    ahead = asyncio.create_task(
                        self._prepare(
                            events_after=max(self._events_stored_upto, batch.last_event_seq),
                            results_after=batch.last_result_seq,
                        )
                    )
                started = self._clock()
                shrunk_from = self._batch_max_bytes
                outcome = await self._send(prepared)
                if outcome.kind != "ok":
                    await _discard(ahead)
                    ahead = None
                    if outcome.kind == "too_large" and shrunk_from > self._batch_max_bytes:
                        continue  # at once, with the halved size
                    await self._sleep(self._retry_delay(outcome))
                    continue
                if batch.more:
                    # Back to back, at up to max_records_per_second.
                    spent = self._clock() - started
                    pause = len(batch.records_json) / self._push.max_records_per_second - spent
                    if pause > 0:
                        await self._sleep(pause)
                    continue
                await self._settle()
                await self._pause(self._push.interval_seconds)
        finally:
            await _discard(ahead)
            await self._settle()

    async def push_once(self) -> bool:
        """Send one batch (or a heartbeat) now, without backoff; whether central acked it.

        For a flush at shutdown: ``while outbox.stats().backlog_records and await
        pusher.push_once(): ...`` under the daemon's deadline. The outbox is acked when
        this returns.
        """
        await self.start()
        outcome = await self._send(await self._prepare())
        await self._settle()
        return outcome.kind == "ok"

    # --- one push ------------------------------------------------------------------------

    def _idle_seconds(self, now: float) -> float:
        return min(self._push.interval_seconds, self._heartbeat_due - now)

    async def _prepare(self, *, events_after: int = -1, results_after: int = 0) -> _Prepared:
        """The next batch and its gzip body (events_after -1: the events not yet stored)."""
        batch = await self._outbox.next_batch(
            self._push.batch_max_records,
            self._batch_max_bytes,
            events_after=self._events_stored_upto if events_after < 0 else events_after,
            results_after=results_after,
        )
        return _Prepared(batch, await self._body(batch))

    async def _settle(self) -> None:
        """Wait for the acks under way (the outbox's counters are current afterwards)."""
        if self._acking is not None:
            task, self._acking = self._acking, None
            await task

    async def _send(self, prepared: _Prepared) -> _Outcome:
        try:
            token = await asyncio.to_thread(self._config.token.reveal)
        except SecretError as exc:
            return self._failed(
                _Outcome("no_token", self._urls[self._current], f"agent.token: {exc}")
            )
        outcome = await self._deliver(prepared.body, token)
        if outcome.kind != "ok":
            if outcome.timed_out and len(prepared.body) > _MIN_BATCH_BYTES // 4:
                # A slow uplink (4G at the cell edge) may not carry a big body within
                # timeout_seconds: every push would time out, forever.
                self._shrink(f"a {len(prepared.body)}-byte push timed out")
            return self._failed(outcome)
        outcome = await self._acked(prepared.batch, outcome, len(prepared.body))
        if outcome.kind == "ok":
            self._grow()
        return outcome

    async def _body(self, batch: OutboxBatch) -> bytes:
        stats = self._outbox.stats()
        uplink = self._uplink()
        head: wire.BatchJSON = {
            "schema": wire.SCHEMA_VERSION,
            "agent": self._agent_id,
            "sent_at": self._clock(),
            "heartbeat": {
                "uplink": uplink if uplink in wire.UPLINKS else "unknown",
                "backlog_records": stats.backlog_records,
                "oldest_unsent_ts": stats.oldest_unsent_ts,
                "dropped_records_total": stats.dropped_records_total,
                "last_seq": stats.last_seq,
                "version": self._version,
            },
            "records": [],
        }
        if batch.dropped_ranges:
            head["dropped"] = [[a, b] for a, b in batch.dropped_ranges]
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
        # Splice the stored JSON in, no parse and re-dump. Unescaped, '"records":[]' can
        # only be that key: inside a JSON string every quote is escaped.
        at = text.rindex(_EMPTY_RECORDS) + len(_EMPTY_RECORDS) - 1
        if len(batch.records_json) < _BODY_IN_THREAD_RECORDS:
            return _gzip_body(text[:at], batch.records_json, text[at:])
        return await asyncio.to_thread(_gzip_body, text[:at], batch.records_json, text[at:])

    def _url_order(self) -> list[int]:
        n = len(self._urls)
        start = self._current
        if start and self._clock() >= self._primary_retry_at:
            start = 0  # time to see whether the primary is back
            self._primary_retry_at = self._clock() + self._primary_retry_seconds
        return [(start + i) % n for i in range(n)]

    async def _deliver(self, body: bytes, token: str) -> _Outcome:
        """Try the URLs in order until one answers; switch to it."""
        outcome: _Outcome | None = None
        for i in self._url_order():
            outcome = await self._post(self._urls[i], body, token)
            if outcome.kind in ("unreachable", "server"):
                log.debug("push to %s failed: %s", self._urls[i], outcome.error)
                continue
            self._switch(i)
            return outcome
        assert outcome is not None
        return outcome

    def _switch(self, i: int) -> None:
        if i == self._current:
            return
        if i == 0:
            log.info("central %s answers again: back on the primary URL", self._urls[0])
        else:
            log.warning(
                "central %s does not answer: using %s (primary tried again every %g s)",
                self._urls[self._current],
                self._urls[i],
                self._primary_retry_seconds,
            )
            self._primary_retry_at = self._clock() + self._primary_retry_seconds
        self._current = i
        # Events stored at one URL are not known to be stored behind another.
        self._events_stored_upto = 0

    async def _post(self, url: str, body: bytes, token: str) -> _Outcome:
        assert self._session is not None
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        timeout_seconds = self._push.timeout_seconds
        try:
            async with (
                asyncio.timeout(timeout_seconds),
                self._session.post(url, data=body, headers=headers) as resp,
            ):
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                answer = await resp.content.read(_MAX_ANSWER_BYTES)
        except TimeoutError:
            return _Outcome(
                "unreachable", url, f"{url}: no answer within {timeout_seconds:g} s", timed_out=True
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            return _Outcome(
                "unreachable",
                url,
                _scrub(
                    f"{url}: central's TLS certificate is not trusted ({exc.certificate_error}); "
                    "set agent.ca_file to the CA that signed it",
                    token,
                ),
            )
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            return _Outcome("unreachable", url, _scrub(f"{url}: cannot connect: {reason}", token))
        except aiohttp.ClientError as exc:
            return _Outcome(
                "unreachable", url, _scrub(f"{url}: {type(exc).__name__}: {exc}", token)
            )
        return _classify(url, status, retry_after, answer, token, self._clock())

    async def _acked(self, batch: OutboxBatch, outcome: _Outcome, body_bytes: int) -> _Outcome:
        """Ack in the outbox; a 200 that moves nothing forward is a stall (backed off)."""
        now = self._clock()
        stats = self._outbox.stats()
        if outcome.acked_seq > stats.last_seq and not self._seq_warned:
            self._seq_warned = True
            log.error(
                "central already holds records up to seq %d but this agent numbered only up "
                "to %d: the outbox was replaced, or another agent uses id %r; numbering "
                "continues after %d",
                outcome.acked_seq,
                stats.last_seq,
                self._agent_id,
                outcome.acked_seq,
            )
        progressed = (
            outcome.acked_seq > self._state.acked_seq
            or not batch.records_json
            or batch.last_event_seq > self._events_stored_upto
        )
        # The ack runs on the outbox's thread while the next batch goes out; acks stay
        # in order (each waits for the one before).
        self._acking = asyncio.create_task(self._ack(self._acking, outcome.acked_seq))
        if batch.last_event_seq:
            self._events_stored_upto = max(self._events_stored_upto, batch.last_event_seq)
        self._heartbeat_due = now + self._push.heartbeat_seconds
        s = self._state
        self._state = PushState(
            url=self._urls_base(self._current),
            central_reachable=True,
            last_success_ts=now,
            consecutive_failures=s.consecutive_failures,
            last_error=s.last_error,
            acked_seq=max(outcome.acked_seq, s.acked_seq),
            records_sent_total=s.records_sent_total + len(batch.records_json),
            bytes_sent_total=s.bytes_sent_total + body_bytes,
            pushes_total=s.pushes_total + 1,
            push_failures_total=s.push_failures_total,
        )
        if not progressed:
            # Resending the same batch back to back would hammer central for nothing.
            return self._failed(
                _Outcome(
                    "stalled",
                    outcome.url,
                    f"{outcome.url}: central answered 200 but its mark stays at "
                    f"{outcome.acked_seq}, below the {len(batch.records_json)} records sent "
                    "(a fault at central, or URLs that lead to different centrals?)",
                )
            )
        if self._failing_since is not None:
            log.info(
                "central %s reachable again after %s (%d failed attempts); %d records to send",
                outcome.url,
                _duration(now - self._failing_since),
                s.consecutive_failures,
                self._outbox.stats().backlog_records,
            )
        self._failing_since = None
        self._logged_kind = ""
        self._state = replace(self._state, consecutive_failures=0, last_error="")
        return outcome

    async def _ack(self, before: asyncio.Task[None] | None, seq: int) -> None:
        if before is not None:
            await before
        await self._outbox.ack(seq)

    def _failed(self, outcome: _Outcome) -> _Outcome:
        now = self._clock()
        s = self._state
        if self._failing_since is None:
            self._failing_since = now
        self._state = PushState(
            url=self._urls_base(self._current),
            central_reachable=(
                s.central_reachable if outcome.kind == "no_token" else outcome.kind in _ANSWERED
            ),
            last_success_ts=s.last_success_ts,
            consecutive_failures=s.consecutive_failures + 1,
            last_error=outcome.error,
            acked_seq=s.acked_seq,
            records_sent_total=s.records_sent_total,
            bytes_sent_total=s.bytes_sent_total,
            pushes_total=s.pushes_total,
            push_failures_total=s.push_failures_total + 1,
        )
        self._log_failure(outcome)
        if outcome.kind == "too_large":
            self._shrink("central refused a batch as too large (413)")
        return outcome

    def _shrink(self, why: str) -> None:
        """Halve the batch size (a 413, or a big body that cannot go up in time)."""
        self._batch_max_bytes = max(_MIN_BATCH_BYTES, self._batch_max_bytes // 2)
        self._successes_since_shrink = 0
        log.warning("%s: batches now up to %d bytes of JSON", why, self._batch_max_bytes)

    def _grow(self) -> None:
        """After a run of successes, let batches grow back towards the configured size."""
        if self._batch_max_bytes >= self._batch_max_bytes_configured:
            return
        self._successes_since_shrink += 1
        if self._successes_since_shrink >= _GROW_AFTER_SUCCESSES:
            self._successes_since_shrink = 0
            self._batch_max_bytes = min(self._batch_max_bytes_configured, self._batch_max_bytes * 2)

    def _log_failure(self, outcome: _Outcome) -> None:
        if outcome.kind == "rejected":
            # Schema skew between this agent and central: each distinct problem once.
            new = [p for p in outcome.problems if p not in self._logged_problems]
            for p in new[:MAX_PROBLEM_LINES]:
                if len(self._logged_problems) < _MAX_LOGGED_PROBLEMS:
                    self._logged_problems.add(p)
                log.error("central rejected a batch (400, agent %s): %s", self._version, p)
            if not outcome.problems and outcome.error not in self._logged_problems:
                self._logged_problems.add(outcome.error)
                log.error("central rejected a batch: %s", outcome.error)
            return
        if outcome.kind == self._logged_kind:
            log.debug("push failed again: %s", outcome.error)
            return
        self._logged_kind = outcome.kind
        if outcome.kind in ("refused", "no_token"):
            log.error("cannot deliver to central: %s", outcome.error)
        elif outcome.kind != "too_large":
            log.warning(
                "cannot deliver to central: %s; retrying with backoff up to %g s "
                "(%d records waiting)",
                outcome.error,
                self._push.backoff_max_seconds,
                self._outbox.stats().backlog_records,
            )

    def _retry_delay(self, outcome: _Outcome) -> float:
        """Retry-After when central gave one (429), else exponential backoff, full jitter."""
        if outcome.retry_after_seconds is not None:
            return min(max(outcome.retry_after_seconds, 0.0), _MAX_RETRY_AFTER_SECONDS)
        failures = max(self._state.consecutive_failures, 1)
        cap = min(
            self._push.backoff_max_seconds,
            self._push.backoff_initial_seconds * 2.0 ** min(failures - 1, 60),
        )
        return self._rng.uniform(0.0, cap)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (injected sleep), or less if :meth:`wake` is called."""
        if self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._sleep(max(seconds, 0.0)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        self._wake.clear()

    def _urls_base(self, i: int) -> str:
        return self._config.central_urls[i]


def _gzip_body(head: str, records_json: tuple[str, ...], tail: str) -> bytes:
    raw = (head + ",".join(records_json) + tail).encode()
    return gzip.compress(raw, _GZIP_LEVEL, mtime=0)


def _classify(
    url: str, status: int, retry_after: str | None, answer: bytes, token: str, now: float
) -> _Outcome:
    if status == 200:
        try:
            ack = json.loads(answer)
            acked = ack["acked_seq"]
            if isinstance(acked, bool) or not isinstance(acked, int) or acked < 0:
                raise ValueError(acked)
        except (ValueError, KeyError, TypeError):
            return _Outcome(
                "server", url, _scrub(f"{url}: HTTP 200 without a readable acked_seq", token)
            )
        return _Outcome("ok", url, acked_seq=acked)
    error, problems = _error_text(answer)
    where = f"{url}: HTTP {status}"
    if status == 429:
        return _Outcome(
            "throttled",
            url,
            _scrub(f"{where}: central asks this agent to slow down", token),
            retry_after_seconds=_retry_after_seconds(retry_after, now),
        )
    if status in (401, 403):
        return _Outcome(
            "refused",
            url,
            _scrub(
                f"{where}: central refused this agent's token ({error or 'no detail'}); check "
                "agent.token and that this agent and site are registered at central",
                token,
            ),
        )
    if status == 413:
        return _Outcome("too_large", url, _scrub(f"{where}: batch too large", token))
    if status == 400:
        return _Outcome(
            "rejected",
            url,
            _scrub(f"{where}: {error or 'bad request'}", token),
            problems=tuple(_scrub(p, token) for p in problems),
        )
    if status >= 500:
        return _Outcome("server", url, _scrub(f"{where}: {error or 'server error'}", token))
    return _Outcome("rejected", url, _scrub(f"{where}: {error or 'unexpected answer'}", token))


def _error_text(answer: bytes) -> tuple[str, list[str]]:
    try:
        d = json.loads(answer)
    except ValueError:
        return answer[:200].decode("utf-8", "replace").strip(), []
    if not isinstance(d, dict):
        return "", []
    error = d.get("error")
    problems = d.get("problems")
    return (
        str(error)[:500] if error else "",
        [str(p)[:500] for p in problems[:MAX_PROBLEM_LINES]] if isinstance(problems, list) else [],
    )


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def _scrub(text: str, token: str) -> str:
    """Belt and braces: whatever a server or library echoes, the token never gets out."""
    return text.replace(token, "<token>") if token else text


def _ingest_url(base: str) -> str:
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith(INGEST_PATH) else trimmed + INGEST_PATH


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PushConfigError(
            f"agent.ca_file {ca_file!r} cannot be used as a CA bundle: {exc}"
        ) from exc


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
