"""One metric's points in the monitoring window, kept compactly (``Points``), and the median of its
trailing minutes kept incrementally (``RollingMedian``): the storage the window's evaluator
(engine/domain/decision_evaluator.py) reads as it goes.
"""

from __future__ import annotations

import bisect
import math
import statistics
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

Point = tuple[float, float | None, int | None]  # seconds into the window, value (None: stale), n
_I64 = (-(2 ** 63), 2 ** 63 - 1)


class Points(Sequence[Point]):
    """One metric's points in the window, read as the ``(t, value, n)`` tuples they were given but
    kept in typed arrays: 25 bytes a point instead of about 120 as tuples of boxed floats (a full
    window at 1 s is 57,600 points), in one growing buffer a column rather than small objects
    scattered among short-lived ones — which kept a console's memory growing through the window.
    Exact: a point that is not ``(float, float | None, int | None)`` turns the series into a plain
    list of the tuples as given."""

    __slots__ = ("_t", "_v", "_n", "_none", "_list")

    def __init__(self, points: Iterable[Point] = ()):
        self._t, self._v, self._n = array("d"), array("d"), array("q")
        self._none = bytearray()  # bit 1: the value is None; bit 2: n is None
        self._list: list[Point] | None = None
        for p in points:
            self.append(p)

    def append(self, point: Point) -> None:
        if self._list is None:
            if type(point) is tuple and len(point) == 3:
                t, v, n = point
                if type(t) is float and (v is None or type(v) is float) and (
                        n is None or (type(n) is int and _I64[0] <= n <= _I64[1])):
                    self._t.append(t)
                    self._v.append(0.0 if v is None else v)
                    self._n.append(0 if n is None else n)
                    self._none.append((v is None) | (n is None) << 1)
                    return
            self._list = list(self)
        self._list.append(point)

    def _at(self, i: int) -> Point:
        f = self._none[i]
        return self._t[i], None if f & 1 else self._v[i], None if f & 2 else self._n[i]

    def __len__(self) -> int:
        return len(self._list) if self._list is not None else len(self._t)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if self._list is not None:
            return self._list[i]
        if isinstance(i, slice):
            return [self._at(k) for k in range(*i.indices(len(self._t)))]
        if i < 0:
            i += len(self._t)
        if not 0 <= i < len(self._t):
            raise IndexError("point index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[Point]:
        if self._list is not None:
            yield from self._list
            return
        for t, v, n, f in zip(self._t, self._v, self._n, self._none, strict=True):
            yield t, None if f & 1 else v, None if f & 2 else n

    def __reversed__(self) -> Iterator[Point]:
        if self._list is not None:
            yield from reversed(self._list)
            return
        for i in range(len(self._t) - 1, -1, -1):
            yield self._at(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Points({list(self)!r})"


class RollingMedian:
    """The values of one series over a trailing time span, in arrival order and sorted, so that
    each tick adds one value, drops the ones that left the span and reads the median: O(span), not
    O(series). ``median`` is exactly ``statistics.median`` of the values in arrival order: the sorted
    list holds (value, arrival) pairs, the order a stable sort gives; a NaN (which has no order)
    makes it sort the values as that function does, for as long as the NaN is in the span."""

    __slots__ = ("arrived", "ordered", "seq", "nans", "last_t")

    def __init__(self) -> None:
        self.arrived: deque[tuple[float, float, int]] = deque()  # (t, value, arrival)
        self.ordered: list[tuple[float, int]] = []  # (value, arrival), NaNs left out
        self.seq = 0
        self.nans = 0
        self.last_t: float | None = None

    @property
    def n(self) -> int:
        return len(self.arrived)

    @property
    def last(self) -> float:
        return self.arrived[-1][1]

    def add(self, t: float, value: float) -> bool:
        """False (and nothing added) when ``t`` is before the last value's time: the span can then
        no longer be cut at its start."""
        if self.last_t is not None and not t >= self.last_t:
            return False
        self.last_t = t
        self.seq += 1
        self.arrived.append((t, value, self.seq))
        if _is_nan(value):
            self.nans += 1
        else:
            bisect.insort(self.ordered, (value, self.seq))
        return True

    def trim(self, after: float) -> None:
        """Keep only the values whose time is after ``after``."""
        arrived = self.arrived
        while arrived and not arrived[0][0] > after:
            _, value, seq = arrived.popleft()
            if _is_nan(value):
                self.nans -= 1
            else:
                del self.ordered[bisect.bisect_left(self.ordered, (value, seq))]

    def median(self) -> float:
        if self.nans:
            return statistics.median([v for _, v, _ in self.arrived])
        data, n = self.ordered, len(self.ordered)
        if n % 2 == 1:
            return data[n // 2][0]
        return (data[n // 2 - 1][0] + data[n // 2][0]) / 2


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
