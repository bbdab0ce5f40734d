"""Which buckets belong to which path, and how a new split moves as few subjects as possible.

A subject's sticky value hashes into one of 10,000 buckets (murmur3 32-bit, unsigned, scaled as
flagd's ``fractional`` does: ``hash * 10,000 >> 32``). A :class:`Layout` gives every bucket a
path as contiguous segments. Cumulative ranges in a fixed order are not enough: with
``[events, saga, dag]``, raising events and saga together shifts saga's whole range off its
subjects. So a new layout is derived from the one in force (:func:`rebalance`): a path that
shrinks gives up buckets from its highest segments, a path that grows keeps all of its buckets
and takes the freed ones. Raising ``events`` 10 → 25 therefore moves nobody off ``events``, and
only moves subjects of the paths that shrank, only onto the paths that grew. Each version stores
its layout, so every process evaluates the same one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence

import mmh3
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

BUCKETS = 10_000
PER_PERCENT = BUCKETS // 100


def bucket_of(flag: str, value: object) -> int:
    """The bucket (0..9,999) of ``value`` for ``flag``: the same everywhere, every time.

    The flag name is part of the hash so that two flags bucket the same key independently.

    :param flag: the flag's name.
    :param value: the sticky attribute's value (converted with ``str``).
    """
    digest = mmh3.hash(f"{flag}\x1f{value}".encode(), signed=False)
    return (digest * BUCKETS) >> 32


class Segment(BaseModel):
    """Buckets ``start`` (inclusive) to ``end`` (exclusive) go to ``path``.

    :param path: the path of these buckets.
    :param start: the first bucket.
    :param end: one past the last bucket.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    start: int = Field(ge=0, le=BUCKETS)
    end: int = Field(ge=1, le=BUCKETS)


class Layout(BaseModel):
    """Every bucket's path, as sorted contiguous segments covering 0..9,999.

    :param segments: the segments, in bucket order, with no gap or overlap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: tuple[Segment, ...]
    _ends: list[int] = PrivateAttr(default_factory=list)
    _paths: list[str] = PrivateAttr(default_factory=list)

    @field_validator("segments")
    @classmethod
    def _covers_every_bucket(cls, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
        position = 0
        for segment in segments:
            if segment.start != position or segment.end <= segment.start:
                raise ValueError(f"layout segments leave a gap or overlap at bucket {position}")
            position = segment.end
        if position != BUCKETS:
            raise ValueError(f"layout covers {position} of {BUCKETS} buckets")
        return segments

    def model_post_init(self, _context: object) -> None:
        """Precompute the segment ends for one bisect per evaluation.

        :param _context: pydantic's validation context (unused).
        """
        self._ends = [segment.end for segment in self.segments]
        self._paths = [segment.path for segment in self.segments]

    @classmethod
    def single(cls, path: str) -> Layout:
        """Every bucket to ``path`` (the layout before any version).

        :param path: the baseline.
        """
        return cls(segments=(Segment(path=path, start=0, end=BUCKETS),))

    def path_of(self, bucket: int) -> str:
        """The path of ``bucket``.

        :param bucket: 0..9,999, from :func:`bucket_of`.
        """
        return self._paths[bisect_right(self._ends, bucket)]

    def counts(self) -> dict[str, int]:
        """Buckets per path."""
        counts: dict[str, int] = {}
        for segment in self.segments:
            counts[segment.path] = counts.get(segment.path, 0) + segment.end - segment.start
        return counts


def rebalance(previous: Layout, weights: Mapping[str, int], order: Sequence[str]) -> Layout:
    """The layout for ``weights`` (percent per path) moving the fewest buckets of ``previous``.

    :param previous: the layout in force.
    :param weights: the new percentages (summing to 100); paths left out get none.
    :param order: the allowed paths; growing paths take freed buckets in this order.
    """
    target = {path: weights.get(path, 0) * PER_PERCENT for path in order}
    have = previous.counts()
    surplus = {path: count - target.get(path, 0) for path, count in have.items()}
    pieces: list[tuple[str, int, int]] = []
    freed: list[tuple[int, int]] = []
    for segment in reversed(previous.segments):  # shrinking paths give up their highest buckets
        give = min(max(surplus[segment.path], 0), segment.end - segment.start)
        surplus[segment.path] -= give
        if give:
            freed.append((segment.end - give, segment.end))
        if segment.end - give > segment.start:
            pieces.append((segment.path, segment.start, segment.end - give))
    freed.sort()
    for path in order:
        need = target[path] - have.get(path, 0)
        while need > 0:
            start, end = freed.pop(0)
            take = min(need, end - start)
            pieces.append((path, start, start + take))
            if start + take < end:
                freed.insert(0, (start + take, end))
            need -= take
    return Layout(segments=tuple(_merged(sorted(pieces, key=lambda piece: piece[1]))))


def _merged(pieces: list[tuple[str, int, int]]) -> list[Segment]:
    merged: list[Segment] = []
    for path, start, end in pieces:
        if merged and merged[-1].path == path and merged[-1].end == start:
            merged[-1] = Segment(path=path, start=merged[-1].start, end=end)
        else:
            merged.append(Segment(path=path, start=start, end=end))
    return merged
