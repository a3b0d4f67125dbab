"""The ids a run already saw: what tells a page that brings nothing new (the pager) and a batch listed twice
(the plan) apart, in 8 bytes an id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SeenIds:
    """The ids a run already saw, exactly, in 8 bytes per id (a backfill's million ids in 8 MB).

    64-bit hashes of the ids: recent ones in a small set, the rest in sorted numpy chunks; a page is
    checked with one vectorised search per chunk. The set becomes a chunk every `_CHUNK` ids, and every
    `_MERGED` such chunks become one, never more: merging everything seen into one array copied it all,
    and that copy made a backfill's peak memory grow with its length (+16 MB from 300k to 1M batches).
    Exact whatever order (or creation times) the API sends; two ids of one run sharing a 64-bit hash is
    a chance of about 1e-8 per million-batch run."""

    _CHUNK = 65_536
    _MERGED = 4

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._merged: list[Any] = []  # sorted, _MERGED chunks each
        self._chunks: list[Any] = []  # sorted, fewer than _MERGED
        self._recent: set[int] = set()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add_new(self, ids: Sequence[str]) -> list[bool]:
        """Adds `ids`; returns for each whether it was not seen before (also within `ids`)."""
        np = self._np
        hashes = [hash(i) for i in ids]
        seen_before: Any = [False] * len(hashes)
        if (self._merged or self._chunks) and hashes:
            wanted = np.array(hashes, dtype=np.int64)
            found = np.zeros(len(hashes), dtype=bool)
            for part in (*self._merged, *self._chunks):
                at = np.searchsorted(part, wanted)
                at[at == len(part)] = 0
                found |= part[at] == wanted
            seen_before = found.tolist()
        fresh: list[bool] = []
        for h, old in zip(hashes, seen_before, strict=True):
            new = not old and h not in self._recent
            if new:
                self._recent.add(h)
                self._count += 1
            fresh.append(new)
        if len(self._recent) >= self._CHUNK:
            chunk = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            chunk.sort()
            self._chunks.append(chunk)
            self._recent = set()
            if len(self._chunks) == self._MERGED:
                merged = np.concatenate(self._chunks)
                merged.sort()
                self._merged.append(merged)
                self._chunks = []
        return fresh


__all__ = ["SeenIds"]
