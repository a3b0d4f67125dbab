"""The ledger's download threads: a few daemon workers that run downloads at once, in order or as they
finish, within a bound on the bytes under way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Workers:
    """`DOWNLOADS_AT_ONCE` daemon threads: a stalled download can never keep the process from exiting
    (an interrupted run stops at once; downloads see the stop between chunks)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._threads: list[threading.Thread] = []
        self._tasks: queue.Queue[Any] = queue.Queue()
        self._results: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._closed = threading.Event()

    def run(
        self,
        fn: Callable[[Any], Any],
        items: list[Any],
        *,
        ordered: bool = False,
        weight: Callable[[Any], int] | None = None,
        max_weight: int = 0,
    ) -> Iterator[Any]:
        """`fn(item)` for each item, at most `count` at a time. With `ordered`, every result (or the
        exception it raised) in the items' order; without, results as they finish, and an exception is
        raised. Without `ordered` an item is handed out only once the caller is done with a result (it
        turns each into rows before more are downloaded), and, with `weight`, only while the items under
        way weigh at most `max_weight` together (one always goes): memory stays bounded by both."""
        while len(self._threads) < min(self.count, len(items)):
            thread = threading.Thread(target=self._work, name="openai-batches-ledger", daemon=True)
            thread.start()
            self._threads.append(thread)
        at_once = len(items) if ordered else self.count
        under_way: dict[int, int] = {}
        handed = 0

        def hand_out() -> None:
            nonlocal handed
            while handed < len(items) and len(under_way) < at_once:
                heavy = weight(items[handed]) if weight is not None else 0
                if under_way and sum(under_way.values()) + heavy > max_weight and weight is not None:
                    return
                self._tasks.put((handed, fn, items[handed]))
                under_way[handed] = heavy
                handed += 1

        hand_out()
        finished: dict[int, Any] = {}
        next_index = 0
        for _ in items:
            index, outcome = self._next_result()
            del under_way[index]
            if not ordered:
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
                hand_out()
                continue
            hand_out()
            finished[index] = outcome
            while next_index in finished:
                yield finished.pop(next_index)
                next_index += 1

    def _next_result(self) -> tuple[int, Any]:
        while True:  # a timeout, so that Ctrl-C is seen at once on every platform
            try:
                return self._results.get(timeout=0.5)
            except queue.Empty:
                continue

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self._closed.is_set():
                return
            index, fn, item = task
            try:
                outcome = fn(item)
            except BaseException as e:  # handed to the caller's thread, which raises it there
                outcome = e
            self._results.put((index, outcome))

    def close(self) -> None:
        """Workers finish the item in hand (downloads stop at their next chunk) and take no other."""
        self._closed.set()
        for _ in self._threads:
            self._tasks.put(None)
