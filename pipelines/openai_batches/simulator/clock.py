"""The simulator's notion of "now": a clock tests can move by hand, or wall time optionally sped up."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Manual clock (tests advance it) or real-time clock (optionally accelerated).

    A manual clock stays at ``start`` until :meth:`advance` moves it. A real-time clock runs from
    ``start`` (default: the current wall time) at ``speed`` simulated seconds per real second;
    :meth:`advance` also works on it (it jumps ahead), which demos find handy. Time never goes
    backwards: a batch's lifecycle is a function of the clock, so a step back would un-finish batches.
    """

    def __init__(self, start: float | None = None, *, realtime: bool = False, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._lock = threading.Lock()
        self._start = time.time() if start is None else float(start)
        self._offset = 0.0
        self._realtime = realtime
        self._speed = float(speed)
        # Monotonic, not wall time: an NTP step on the host must not make the simulated clock jump.
        self._t0 = time.monotonic()

    @property
    def realtime(self) -> bool:
        return self._realtime

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Epoch seconds, as a float."""
        with self._lock:
            base = self._start + self._offset
            if self._realtime:
                base += (time.monotonic() - self._t0) * self._speed
            return base

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (simulated seconds)."""
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        with self._lock:
            self._offset += float(seconds)

    def __repr__(self) -> str:
        kind = f"realtime x{self._speed:g}" if self._realtime else "manual"
        return f"SimClock({self.now():.3f}, {kind})"
