"""What a ping across an impaired link should measure: the model's expectation, and what
the impairer really did (from its echo log), to judge a measurement against both.

Model (see :mod:`tests.netlab.impair`): each direction holds a frame ``D + X`` with ``X``
uniform on ``[-J, J]`` (or normal, sd ``J``) and drops it with probability ``p``. When
no frame is bunched by the FIFO (pings spaced ``>= 4 J`` apart with uniform jitter), a
round trip is ``2 D + X1 + X2`` with independent X, so:

- RTT mean ``2 D``; RTT standard deviation ``J sqrt(2/3)`` (uniform) or ``J sqrt 2``;
- jitter as ``mean |RTT_i - RTT_i-1|``: the difference of consecutive RTTs is
  ``X1 + X2 - X3 - X4``, whose mean absolute value is ``14 J / 15`` for uniform X
  (Irwin-Hall, n = 4) and ``2 J sqrt(2/pi)`` for normal X;
- loss ``1 - (1 - p)^2`` (the request or the reply is lost).

The bridge itself adds a little on top of ``2 D`` (two passes through a Python loop and
four veth hops): :func:`realized_round_trips` measures that too.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tests.netlab.impair import Config
from tests.netlab.lab import EchoRecord

__all__ = ["Expected", "PingStats", "RoundTrip", "expected", "ping_stats", "realized_round_trips"]


@dataclass(frozen=True, slots=True)
class Expected:
    """The model's values for a ping across the link (seconds and ratio)."""

    rtt_avg_seconds: float
    rtt_stddev_seconds: float
    jitter_seconds: float
    loss_ratio: float


def expected(config: Config) -> Expected:
    j = config.jitter_ms / 1000.0
    if config.jitter_distribution == "uniform":
        stddev = j * math.sqrt(2.0 / 3.0)
        jitter = 14.0 * j / 15.0
    else:
        stddev = j * math.sqrt(2.0)
        jitter = 2.0 * j * math.sqrt(2.0 / math.pi)
    return Expected(
        rtt_avg_seconds=2.0 * config.delay_ms / 1000.0,
        rtt_stddev_seconds=stddev,
        jitter_seconds=jitter,
        loss_ratio=1.0 - (1.0 - config.loss) ** 2,
    )


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One echo request from A and its reply from B, as the impairer handled them."""

    family: int
    ident: int
    seq: int
    request_held_seconds: float | None
    reply_held_seconds: float | None

    @property
    def held_seconds(self) -> float | None:
        """Time the link held request + reply; None when either was dropped (or never came)."""
        if self.request_held_seconds is None or self.reply_held_seconds is None:
            return None
        return self.request_held_seconds + self.reply_held_seconds


def realized_round_trips(records: Iterable[EchoRecord]) -> list[RoundTrip]:
    """Pair each A->B echo request with the B->A reply of the same (family, id, seq),
    in the order the requests reached the impairer."""
    requests: list[EchoRecord] = []
    replies: dict[int, float | None] = {}
    waiting: dict[tuple[int, int, int], deque[int]] = defaultdict(deque)
    for record in records:
        key = (record.family, record.ident, record.seq)
        if record.direction == "a_to_b" and record.is_request:
            requests.append(record)
            if record.held_seconds is not None:
                waiting[key].append(len(requests) - 1)
        elif record.direction == "b_to_a" and not record.is_request and waiting[key]:
            replies[waiting[key].popleft()] = record.held_seconds
    # The log is in decision order (a drop at arrival, a send at departure): put the
    # requests back in the order they arrived, which is the order they were sent.
    order = sorted(range(len(requests)), key=lambda index: requests[index].arrival_ns)
    return [
        RoundTrip(r.family, r.ident, r.seq, r.held_seconds, replies.get(index))
        for index in order
        for r in (requests[index],)
    ]


@dataclass(frozen=True, slots=True)
class PingStats:
    """The figures a ping tool reports, computed the same way for every source."""

    sent: int
    received: int
    rtt_avg_seconds: float
    rtt_median_seconds: float
    rtt_stddev_seconds: float
    rtt_min_seconds: float
    rtt_max_seconds: float
    jitter_seconds: float

    @property
    def loss_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0


def ping_stats(rtts: Sequence[float | None]) -> PingStats:
    """Statistics of per-packet RTTs in sequence order (None: lost); jitter is the mean
    absolute difference of consecutive received RTTs."""
    got = [r for r in rtts if r is not None]
    nan = math.nan
    if not got:
        return PingStats(len(rtts), 0, nan, nan, nan, nan, nan, nan)
    pairs = list(itertools.pairwise(got))
    jitter = statistics.fmean(abs(b - a) for a, b in pairs) if pairs else nan
    return PingStats(
        sent=len(rtts),
        received=len(got),
        rtt_avg_seconds=statistics.fmean(got),
        rtt_median_seconds=statistics.median(got),
        rtt_stddev_seconds=statistics.pstdev(got),
        rtt_min_seconds=min(got),
        rtt_max_seconds=max(got),
        jitter_seconds=jitter,
    )
