"""The contiguous acknowledgement mark of one agent, and what it holds above the mark.

Sequence numbers at or below ``acked`` are all accounted for (stored, or declared dropped).
Above it, ``held`` intervals are what central already has: events that overtook older
results, or dropped ranges declared early. When the hole below them fills, the mark jumps.
Intervals, not a set of numbers: a dropped range may cover millions of sequence numbers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator


class SeqMark:
    __slots__ = ("_ends", "_starts", "acked")

    def __init__(self, acked: int = 0, held: Iterable[tuple[int, int]] = ()) -> None:
        self.acked = acked
        # Disjoint, sorted, never adjacent to each other, every start > acked + 1.
        self._starts: list[int] = []
        self._ends: list[int] = []
        for first, last in held:
            self.add(first, last)

    def copy(self) -> SeqMark:
        out = SeqMark(self.acked)
        out._starts = self._starts.copy()
        out._ends = self._ends.copy()
        return out

    def held(self) -> tuple[tuple[int, int], ...]:
        """The intervals held above the mark, lowest first."""
        return tuple(zip(self._starts, self._ends, strict=True))

    def holds(self, seq: int) -> bool:
        if seq <= self.acked:
            return True
        i = bisect_right(self._starts, seq) - 1
        return i >= 0 and self._ends[i] >= seq

    def add(self, first: int, last: int) -> list[tuple[int, int]]:
        """Hold ``first..last``; return the pieces of it that were not held before."""
        first = max(first, self.acked + 1)
        if first > last:
            return []
        starts, ends = self._starts, self._ends
        i = bisect_left(ends, first - 1)  # first interval touching or after first
        j = bisect_right(starts, last + 1)  # intervals [i, j) touch first..last
        new: list[tuple[int, int]] = []
        cur = first
        for k in range(i, j):
            if starts[k] > cur:
                new.append((cur, min(starts[k] - 1, last)))
            cur = max(cur, ends[k] + 1)
        if cur <= last:
            new.append((cur, last))
        if i < j:
            first, last = min(first, starts[i]), max(last, ends[j - 1])
        starts[i:j] = [first]
        ends[i:j] = [last]
        if starts[0] == self.acked + 1:
            self.acked = ends[0]
            del starts[0], ends[0]
        return new

    def add_seqs(self, seqs: Iterable[int]) -> None:
        """Hold every sequence number in ``seqs`` (any order)."""
        for first, last in runs(sorted(seqs)):
            self.add(first, last)


def runs(sorted_seqs: list[int]) -> Iterator[tuple[int, int]]:
    """``[1, 2, 3, 7, 8]`` -> ``(1, 3), (7, 8)``."""
    if not sorted_seqs:
        return
    first = last = sorted_seqs[0]
    for s in sorted_seqs[1:]:
        if s > last + 1:
            yield first, last
            first = s
        last = s
    yield first, last
