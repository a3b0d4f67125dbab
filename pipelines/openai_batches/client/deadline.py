"""The total-time bound of a request. httpx's timeouts bound each wait for bytes, not the request; this
bounds the request, through httpcore's network backend (every read and write waits at most until the
request's deadline), so a server that trickles bytes cannot hold a run, and its lock, forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

from .. import settings


class Deadline(threading.local):
    """The instant by which the current thread's request must be done (None: no request under way)."""

    at: float | None = None


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the request's deadline.

    httpx's timeouts bound each wait for bytes, not the request: a server that sends a byte every few
    seconds, in the headers or the body, would keep a request (and the run, and its lock) alive forever."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def _bounded(self, timeout: float | None) -> float | None:
        if self._deadline.at is None:
            return timeout
        remaining = self._deadline.at - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the request's total time limit was reached")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._bounded(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options), self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class HttpxInternalsChanged(RuntimeError):
    """The installed httpx no longer has the attributes `bound_total_time` relies on."""


def bound_total_time(client: httpx.Client, deadline: Deadline) -> None:
    """Route every connection of `client` (direct and through proxies) through `_DeadlineStream`.

    The one place that reaches into httpx's internals: httpx does not expose httpcore's network backend
    (httpx.HTTPTransport builds its `httpcore.ConnectionPool` itself), so it is swapped on the connection
    pool of each of the client's transports. httpx < 0.29 is pinned; should an httpx change these
    attributes, this raises HttpxInternalsChanged at the client's creation instead of silently leaving
    requests unbounded (tests/test_deadline.py checks the installed httpx)."""
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise HttpxInternalsChanged(
                f"httpx {httpx.__version__}: {type(transport).__name__} has no httpcore pool with a network "
                "backend; the total-time bound of requests cannot be installed (pin httpx < 0.29)"
            )
        pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)


class Paced:
    """A download's chunks, each one moving its deadline on by its size at DOWNLOAD_MIN_BYTES_PER_S (from
    `base`, the start plus the request timeout); counts the bytes received."""

    def __init__(self, chunks: Iterator[bytes], deadline: Deadline, base: float) -> None:
        self._chunks = chunks
        self._deadline = deadline
        self._base = base
        self.received = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.received += len(chunk)
            self._deadline.at = self._base + self.received / settings.DOWNLOAD_MIN_BYTES_PER_S
            yield chunk
