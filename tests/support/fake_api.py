"""Helpers of the reliability tests: the CLI as cron runs it, a scriptable API, file greps."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

# --- a scriptable API -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(payload: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers=dict(headers))


Route = Callable[[str, dict[str, str], int], Reply]  # (path, query, request number) -> reply


class _Loopback:
    """A threaded HTTP server on a free loopback port, started and stopped with `with`; `base_url` ends in /v1."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class ScriptedApi(_Loopback):
    """A loopback server whose every answer the test decides: payloads, statuses and bodies that
    neither the simulator nor a well-behaved API would send."""

    def __init__(
        self,
        route: Route,
        project: str | None = "proj_scripted",
        clock: Callable[[], float] | None = None,
        keep_alive: bool = False,
    ) -> None:
        self.route = route
        self.project = project  # the `openai-project` header; None: not sent (settable between requests)
        self.clock = clock  # the API's "now" for the `Date` header; None: this machine's
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []  # of each request, lower-cased names
        api = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps connections open between requests (every reply has a content-length):
            # thousands of file downloads then cost no connection each.
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = keep_alive  # headers and body are two writes: no 40 ms wait between

            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                if timestamp is None and api.clock is not None:
                    timestamp = api.clock()
                return super().date_time_string(timestamp)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with lock:
                    api.requests.append((url.path, query))
                    api.headers.append({k.lower(): v for k, v in self.headers.items()})
                    number = len(api.requests)
                reply = api.route(url.path, query, number)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                if api.project is not None and "openai-project" not in reply.headers:
                    self.send_header("openai-project", api.project)
                if "x-request-id" not in reply.headers:
                    self.send_header("x-request-id", f"req_scripted_{number}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        self._serve(Handler)


def envelope(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": has_more,
    }


def paged(pages: list[tuple[list[dict[str, Any]], bool]]) -> Route:
    """Serve `pages` (items, has_more) by cursor: page i+1 answers `after=<last id of page i>`;
    `GET /batches/{id}` answers from every item served. An unknown cursor gets an empty last page."""
    by_cursor: dict[str | None, int] = {None: 0}
    for i, (items, _) in enumerate(pages[:-1]):
        if items:
            by_cursor.setdefault(items[-1]["id"], i + 1)
    by_id = {b["id"]: b for items, _ in pages for b in items if isinstance(b.get("id"), str)}

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.startswith("/v1/batches/"):
            found = by_id.get(path.rsplit("/", 1)[1])
            return json_reply(found) if found else json_reply({"error": {"message": "No batch found"}}, 404)
        index = by_cursor.get(query.get("after"))
        if index is None:
            return json_reply(envelope([], False))
        items, has_more = pages[index]
        return json_reply(envelope(items, has_more))

    return route


def make_batch(n: int, *, created: int = 1_790_000_000, **fields: Any) -> dict[str, Any]:
    """A complete, terminal batch object as the API sends it; newer for larger `n`."""
    created_at = created + n * 60
    batch: dict[str, Any] = {
        "id": f"batch_{created_at:08x}0000819{n:017x}",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini-2024-07-18",
        "errors": None,
        "input_file_id": f"file-in{n:06d}",
        "completion_window": "24h",
        "status": "completed",
        "output_file_id": f"file-out{n:06d}",
        "error_file_id": None,
        "created_at": created_at,
        "in_progress_at": created_at + 5,
        "expires_at": created_at + 86_400,
        "finalizing_at": created_at + 100,
        "completed_at": created_at + 120,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 10, "completed": 10, "failed": 0},
        "usage": {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 100},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1500,
        },
        "metadata": None,
    }
    batch.update(fields)
    return batch


def newest_first(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [make_batch(n, **fields) for n in range(count, 0, -1)]


def serve_all(batches: list[dict[str, Any]], page_size: int = 100) -> Route:
    """`batches` (newest first) paged like the API, with has_more on every page but the last."""
    chunks = [batches[i : i + page_size] for i in range(0, len(batches), page_size)] or [[]]
    return paged([(chunk, i < len(chunks) - 1) for i, chunk in enumerate(chunks)])


def serve_files(bodies: dict[str, bytes], otherwise: Route) -> Route:
    """Batch files: `bodies` by content path (`/v1/files/{id}/content`), each described at `/v1/files/{id}`
    with its size; any other path goes to `otherwise`."""

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path in bodies:
            return Reply(200, bodies[path], "application/octet-stream")
        if path.startswith("/v1/files/"):
            file_id = path.split("/")[3]
            size = len(bodies[f"/v1/files/{file_id}/content"])
            return json_reply({"id": file_id, "object": "file", "bytes": size, "expires_at": None})
        return otherwise(path, query, number)

    return route


def count_requests(api: ScriptedApi, prefix: str = "/v1/batches") -> int:
    return sum(1 for path, _ in api.requests if path.startswith(prefix))


class RawApi:
    """A loopback server that answers each request with raw bytes, for what no HTTP library would send:
    a lying content-length, a body cut short, bytes trickled one by one. `answer(path)` yields (bytes,
    seconds to wait before sending them); the connection closes after the last piece."""

    def __init__(self, answer: Callable[[str], Iterator[tuple[bytes, float]]]) -> None:
        self.answer = answer
        self.paths: list[str] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._stop = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> RawApi:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            received = b""
            while b"\r\n\r\n" not in received:
                more = conn.recv(65536)
                if not more:
                    return
                received += more
            path = received.split(b" ")[1].decode().split("?")[0]
            self.paths.append(path)
            try:
                for piece, pause in self.answer(path):
                    if self._stop.wait(pause):
                        return
                    conn.sendall(piece)
            except OSError:
                return


def raw_response(body: bytes, *, status: int = 200, length: int | None = -1, project: str = "proj_raw") -> bytes:
    """A response's bytes; `length` -1: the body's true length, None: no content-length (ends at close)."""
    head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\nopenai-project: %s\r\n" % (status, project.encode())
    if length is not None:
        head += b"content-length: %d\r\n" % (len(body) if length == -1 else length)
    return head + b"connection: close\r\n\r\n" + body


class StaticApi(_Loopback):
    """A list endpoint over a fixed list of batch objects, for recorded pages and odd payloads
    the simulator would never produce. Pages exactly like the API: newest first, `after` = id."""

    def __init__(self, batches: list[dict[str, Any]], project: str = "proj_static") -> None:
        self.batches = batches
        self.project = project
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.paths.append(self.path)
                query = parse_qs(url.query)
                ids = [b["id"] for b in api.batches]
                if url.path.startswith("/v1/batches/"):
                    wanted = url.path.rsplit("/", 1)[1]
                    found = [b for b in api.batches if b["id"] == wanted]
                    self._send(200 if found else 404, found[0] if found else {"error": {"message": "nope"}})
                    return
                limit = int(query.get("limit", ["20"])[0])
                start = ids.index(query["after"][0]) + 1 if "after" in query else 0
                data = api.batches[start : start + limit]
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                        "has_more": start + limit < len(api.batches),
                    },
                )

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("openai-project", api.project)
                self.send_header("x-request-id", "req_static")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._serve(Handler)
