"""The simulated org's storage: one project's batches as sorted numpy columns, and the batches that
arrive on their own as the clock moves (`set_arrival_rate`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .workload import (
    COLUMN_DTYPES,
    Catalog,
    Columns,
    draw_batches,
)


class Table:
    """One project's batches as parallel numpy columns, sorted ascending by (created_at, id).

    The list order is the reverse, so "newest first" pages are slices read backwards and the
    position of an `after` id is a binary search on created_at plus a scan of its (tiny) tie group.
    """

    def __init__(self) -> None:
        self.n = 0
        self.cols: dict[str, npt.NDArray[Any]] = {k: np.empty(1024, dtype=t) for k, t in COLUMN_DTYPES.items()}

    def col(self, name: str) -> npt.NDArray[Any]:
        return self.cols[name][: self.n]

    def _reserve(self, extra: int) -> None:
        cap = len(self.cols["created"])
        if self.n + extra <= cap:
            return
        new_cap = max(2 * cap, self.n + extra)
        for k, arr in self.cols.items():
            grown = np.empty(new_cap, dtype=arr.dtype)
            grown[: self.n] = arr[: self.n]
            self.cols[k] = grown

    def _key(self, i: int) -> tuple[int, int, int]:
        return int(self.cols["created"][i]), int(self.cols["ida"][i]), int(self.cols["idb"][i])

    def add(self, rows: Columns) -> None:
        m = len(rows["created"])
        if m == 0:
            return
        order = np.lexsort((rows["idb"], rows["ida"], rows["created"]))
        rows = {k: v[order] for k, v in rows.items()}
        first = (int(rows["created"][0]), int(rows["ida"][0]), int(rows["idb"][0]))
        if self.n == 0 or first > self._key(self.n - 1):
            # New batches are (nearly always) the newest: append in place, amortised O(1).
            self._reserve(m)
            for k, v in rows.items():
                self.cols[k][self.n : self.n + m] = v
            self.n += m
        elif m == 1:
            pos = self.insert_pos(*first)
            self._reserve(1)
            for k, v in rows.items():
                arr = self.cols[k]
                arr[pos + 1 : self.n + 1] = arr[pos : self.n]  # numpy handles the overlap
                arr[pos] = v[0]
            self.n += 1
        else:
            merged = {k: np.concatenate([self.col(k), v]) for k, v in rows.items()}
            order = np.lexsort((merged["idb"], merged["ida"], merged["created"]))
            total = self.n + m
            self._reserve(m)
            for k, v in merged.items():
                self.cols[k][:total] = v[order]
            self.n = total

    def insert_pos(self, created: int, ida: int, idb: int) -> int:
        c = self.col("created")
        lo = int(np.searchsorted(c, created, "left"))
        hi = int(np.searchsorted(c, created, "right"))
        a, b = self.cols["ida"], self.cols["idb"]
        while lo < hi and (int(a[lo]), int(b[lo])) < (ida, idb):
            lo += 1
        return lo

    def find(self, created: int, ida: int, idb: int) -> int:
        pos = self.insert_pos(created, ida, idb)
        if pos < self.n and self._key(pos) == (created, ida, idb):
            return pos
        return -1


class Arrivals:
    """Poisson arrivals of new batches for one project.

    Arrival times and their batches are drawn in blocks from an rng seeded by (segment, block), so
    the same clock gives the same batches however often the org happens to be looked at.
    """

    BLOCK = 256

    def __init__(self, per_hour: float, start: float, seed_key: list[int]) -> None:
        self.scale = 3600.0 / per_hour
        self.last_t = start
        self.seed_key = seed_key
        self.block_no = 0
        self.pending: Columns | None = None
        self.pos = 0

    def due(self, now: int, catalog: Catalog) -> list[Columns]:
        out: list[Columns] = []
        while True:
            if self.pending is None or self.pos >= len(self.pending["created"]):
                rng = np.random.default_rng([*self.seed_key, self.block_no])
                self.block_no += 1
                times = self.last_t + np.cumsum(rng.exponential(self.scale, self.BLOCK))
                self.last_t = float(times[-1])
                self.pending = draw_batches(rng, np.floor(times).astype(np.int64), catalog)
                self.pos = 0
            created = self.pending["created"]
            end = int(np.searchsorted(created, now, "right"))
            if end > self.pos:
                out.append({k: v[self.pos : end] for k, v in self.pending.items()})
                self.pos = end
            if self.pos < len(created):
                return out
