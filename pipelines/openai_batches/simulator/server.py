"""The HTTP face of the simulator: OpenAI's batch endpoints, errors, headers and injectable faults."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from . import admin_api, anthropic, anthropic_admin, flavors, others
from .batch_requests import output_expires_seconds
from .faults import DEFAULT_RANDOM_FAULTS, Fault, fault_response
from .files import FILES_PREFIX, Streamed
from .org import SimulatedOrg, overrides_from_query
from .responses import Response, error_response, gzip_body, gzip_chunks, json_response, mask_key

_OPENAI_VERSION = "2020-10-01"

# Benchmark control endpoints live under this prefix, outside `/v1`, and only with `admin=True`.
ADMIN_PREFIX = "/_sim/"


_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API "
    "from your browser and are prompted for a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


@dataclass(frozen=True)
class RequestRecord:
    """One request the server saw. ``status`` 0 means the connection was dropped without a response."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    project: str | None
    timestamp: float  # wall clock (time.time()) when the response was sent
    fault: str | None = None
    request_id: str = ""
    api_key_valid: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-cased names


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sim: SimulatorServer


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive like the real API, so pooled clients (httpx, the SDK) measure the server, not TCP setup.
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    # Idle keep-alive connections are dropped after this, as a load balancer would.
    timeout = 120
    # Headers and body go out as two writes; with Nagle on, delayed ACKs would add ~40 ms per response.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "cloudflare"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The `Date` header is the API's "now": the simulated clock's, not this machine's.
        return super().date_time_string(self.server.sim.org.clock.now() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        self.server.sim._handle(self, method)


class SimulatorServer:
    """A local HTTP server that answers like api.openai.com's batch endpoints for a :class:`SimulatedOrg`.

    Endpoints: ``GET /v1/batches``, ``GET /v1/batches/{id}``, plus ``POST /v1/batches`` and
    ``POST /v1/batches/{id}/cancel`` so the demo can be driven with the SDK too, and
    ``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content`` for every batch's files (files.py).
    """

    def __init__(
        self,
        org: SimulatedOrg,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = DEFAULT_RANDOM_FAULTS,
        fault_seed: int = 0,
        fault_delay: float = 0.5,
        admin: bool = False,
        compress: bool = False,
        echo_key_in_metadata: bool = False,
        groq_paging: str = "honours",
        azure_quirks: frozenset[str] = frozenset(),
        together_order: str = "newest",
        mistral_arrivals: int = 0,
    ) -> None:
        for kind in fault_kinds:
            Fault(kind)  # validates the name
        self.org = org
        # `/_sim/*` control endpoints for benchmarks (see _admin); off unless asked, never part of the API.
        self.admin = admin
        # gzip every answer to a client that accepts it (as Cloudflare in front of the real API does):
        # JSON bodies whole, file contents as they stream (chunked, no content-length).
        self.compress = compress
        # A hostile or buggy server: every batch it returns carries the caller's key in `metadata.echoed_key`.
        self.echo_key_in_metadata = echo_key_in_metadata
        # Groq's and Azure's flavours of the OpenAI projects (flavors.py): whether Groq's list honours
        # `limit`/`after` ("honours") or answers every batch each time ("ignores"); which of Azure's quirks to show.
        self.groq_paging = groq_paging
        self.azure_quirks = frozenset(azure_quirks)
        self._azure_ids = flavors.IdMap()
        # Together's, Mistral's and OpenRouter's APIs (others.py): the order of Together's array, and how many new
        # jobs arrive in a Mistral project after each list page served.
        if together_order not in others.TOGETHER_ORDERS:
            raise ValueError(f"together_order must be one of {others.TOGETHER_ORDERS}")
        self.together_order = together_order
        self.mistral_arrivals = mistral_arrivals
        self._other_ids = others.UuidMap()
        self.host = host
        self.port = port
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.fault_delay = fault_delay
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fault_rng = random.Random(fault_seed)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.sim = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-batches-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        # Idle keep-alive connections would otherwise keep answering after stop().
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Anthropic's API root as the SDK takes it (`ANTHROPIC_BASE_URL`): without `/v1`."""
        return self.base_url.removesuffix("/v1")

    # ------------------------------------------------------------------ faults and records
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each hits the next ``count`` requests its ``path_prefix`` matches, in order."""
        with self._lock:
            # Copies: the countdown must not consume the caller's objects (e.g. reused parametrize values).
            self._faults.extend(dataclasses.replace(f) for f in faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, f in enumerate(self._faults):
                if path.startswith(f.path_prefix):
                    f.count -= 1
                    if f.count <= 0:
                        del self._faults[i]
                    return f
            if self.fault_rate > 0 and self.fault_kinds and self._fault_rng.random() < self.fault_rate:
                return Fault(self._fault_rng.choice(self.fault_kinds), delay=self.fault_delay)
        return None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    # ------------------------------------------------------------------ request handling
    def _handle(self, h: _Handler, method: str) -> None:  # noqa: C901, PLR0912, PLR0915 -- one request's life in the order the API applies it (key, fault, route, headers, body)
        started = time.perf_counter()
        split = urlsplit(h.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        if self.admin and path.startswith(ADMIN_PREFIX):
            self._send_admin(h, method, path, query)
            return
        request_id = "req_" + secrets.token_hex(16)
        headers = {k.lower(): v for k, v in h.headers.items()}
        auth = h.headers.get("authorization") or ""
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        project = self.org.project_of_key(key) if key else None
        key_valid = project is not None or self.org.is_admin_key(key)
        on_anthropic_admin = anthropic_admin.handles(path)
        on_anthropic = anthropic.handles(path) or on_anthropic_admin
        if on_anthropic:  # Anthropic's Message Batches (anthropic.py): its own keys, errors and headers
            key = anthropic.key_of(headers)
            project = self.org.anthropic.workspace_of_key(key)
            key_valid = project is not None or (on_anthropic_admin and key in self.org.anthropic_books.admin_keys)

        flavor = flavors.flavor_of(path, headers)
        if flavor is not None:  # Groq's or Azure's API over the organisation's projects (flavors.py)
            key = flavors.key_of(flavor, headers)
            project = self.org.project_of_key(key) if key else None
            key_valid = project is not None
        other = others.provider_of(path)
        if other is not None:  # Together's, Mistral's or OpenRouter's API over the organisation's projects
            project = self.org.project_of_key(key) if key else None
            key_valid = project is not None

        fault = self._take_fault(path)

        def wait_out_latency() -> None:
            # `latency` is how long the server takes to answer, its own work included: a page is
            # rendered within it, so a request at 100 ms latency takes 100 ms, not 100 ms + rendering.
            # Re-read in slices: a test that lowers `latency` (a held page let go) frees the requests waiting.
            while (remaining := self.latency - (time.perf_counter() - started)) > 0 and not self._stopping.is_set():
                self._stopping.wait(min(remaining, 0.05))

        def record(status: int) -> None:
            self._record(
                RequestRecord(
                    method,
                    path,
                    query,
                    status,
                    project,
                    time.time(),
                    fault.kind if fault else None,
                    request_id,
                    key_valid,
                    headers,
                )
            )

        if fault is not None and fault.kind == "timeout":
            wait_out_latency()
            self._stopping.wait(fault.delay)
            h.close_connection = True
            record(0)
            return
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.delay)

        resp = None
        if fault is not None:
            resp = fault_response(
                fault, key, path, self.org.organization, request_id=request_id, now=self.org.clock.now()
            )
        if resp is None:
            if on_anthropic_admin:  # Anthropic's Admin API (anthropic_admin.py)
                books, of_key = self.org.anthropic_books, self.org.anthropic.workspace_of_key
                now = self.org.clock.now()
                resp = anthropic_admin.answer(books, of_key, method, path, split.query, headers, now, request_id)
            elif on_anthropic:
                root = self.anthropic_base_url
                resp = anthropic.answer(self.org.anthropic, method, path, query, headers, root, request_id)
            elif flavor is not None:
                resp = self._flavored(flavor, method, path, query, body, key, project)
            elif other is not None:
                resp = self._other(other, method, path, query, project)
            else:
                resp = self._organization_api(method, path, split.query, key)
                if resp is None:
                    resp = self._route(method, path, query, body, key, project)
            if fault is not None and fault.kind == "truncated-json":
                resp.body = resp.body[: len(resp.body) // 2]
        if fault is not None and fault.should_retry is not None:
            resp.headers["x-should-retry"] = "true" if fault.should_retry else "false"
        wait_out_latency()

        gzipped = self.compress and "gzip" in headers.get("accept-encoding", "").lower()
        if gzipped and resp.stream is None:
            resp.body = gzip_body(resp.body, fault.kind if fault is not None else None)
        h.send_response(resp.status)
        h.send_header("content-type", resp.content_type)
        if gzipped:
            h.send_header("content-encoding", "gzip")
        if gzipped and resp.stream is not None:
            h.send_header("transfer-encoding", "chunked")
        else:
            h.send_header("content-length", str(resp.stream.length if resp.stream else len(resp.body)))
        if on_anthropic:
            h.send_header("request-id", request_id)
        else:
            h.send_header("x-request-id", request_id)
            h.send_header("openai-organization", self.org.organization)
            if project is not None and flavor is None and other is None:
                h.send_header("openai-project", project)
            h.send_header("openai-version", _OPENAI_VERSION)
            h.send_header("openai-processing-ms", str(max(1, round((time.perf_counter() - started) * 1000))))
        for name, value in resp.headers.items():
            h.send_header(name, value)
        # Recorded before the client can see the answer, so a test that just got it finds the record.
        record(resp.status)
        h.end_headers()
        if resp.stream is None:
            h.wfile.write(resp.body)
        elif gzipped:
            self._send_gzipped(h, resp.stream, fault.kind if fault is not None else None)
        else:
            # `truncated-json` on a download: the connection drops halfway through the promised bytes.
            cut = resp.stream.length // 2 if fault is not None and fault.kind == "truncated-json" else None
            self._send_stream(h, resp.stream, cut)

    def _send_stream(self, h: _Handler, stream: Streamed, cut: int | None) -> None:
        # Never more than the promised length; on a shortfall (a cut, or a sizing bug) close the
        # connection so the client fails at once instead of waiting for bytes that will not come.
        limit = stream.length if cut is None else cut
        sent = 0
        try:
            for chunk in stream.chunks:
                if sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                h.wfile.write(chunk)
                sent += len(chunk)
                if sent >= limit:
                    break
        except OSError:  # the client went away mid-download
            pass
        finally:
            if sent != stream.length:
                h.close_connection = True
            close = getattr(stream.chunks, "close", None)
            if close is not None:
                close()

    def _send_gzipped(self, h: _Handler, stream: Streamed, fault: str | None) -> None:
        """A file's content gzip-compressed as it is rendered, in HTTP chunks. `truncated-json` drops the
        connection halfway (the chunked framing unfinished); `truncated-gzip` ends the framing cleanly
        after half the file, the gzip stream unfinished; `corrupt-gzip` flips bytes in its middle."""
        half = stream.length // 2 if fault in ("truncated-json", "truncated-gzip") else None
        finished = False
        try:
            for chunk in gzip_chunks(stream.chunks, half, corrupt=fault == "corrupt-gzip"):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if fault != "truncated-json":
                h.wfile.write(b"0\r\n\r\n")
                finished = True
        except OSError:  # the client went away mid-download
            pass
        finally:
            if not finished:
                h.close_connection = True
            close = getattr(stream.chunks, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ benchmark control (not the API)
    def _send_admin(self, h: _Handler, method: str, path: str, query: dict[str, str]) -> None:
        """Answer a `/_sim/*` control request: no latency, no faults, no auth, not recorded or counted."""
        try:
            resp = self._admin(method, path.removeprefix(ADMIN_PREFIX), query)
        except (KeyError, TypeError, ValueError) as exc:
            resp = json_response(400, {"error": str(exc)})
        h.send_response(resp.status)
        h.send_header("content-type", resp.content_type)
        h.send_header("content-length", str(len(resp.body)))
        h.end_headers()
        h.wfile.write(resp.body)

    def _admin(self, method: str, action: str, query: dict[str, str]) -> Response:
        """`GET stats`: API requests served and batches held; `POST advance?seconds=S`: move the clock;
        `POST create?count=N[&project=P][&override=value...]`: N batches submitted now (open: validating),
        with any ``create_batch`` override (e.g. ``endpoint=/v1/embeddings&output_bytes=1000000000``);
        answers their ids."""
        project = query.get("project") or None
        if method == "GET" and action == "stats":
            with self._lock:
                served = len(self.requests)
            return json_response(200, {"requests": served, "batches": self.org.count(project)})
        if method == "POST" and action == "advance":
            self.org.advance(float(query["seconds"]))
            return json_response(200, {"now": self.org.clock.now()})
        if method == "POST" and action == "create":
            overrides = overrides_from_query(query)
            ids = [self.org.create_batch(project=project, **overrides) for _ in range(int(query.get("count", "1")))]
            return json_response(200, {"created": len(ids), "ids": ids})
        return json_response(404, {"error": f"unknown control request {method} {ADMIN_PREFIX}{action}"})

    def _organization_api(self, method: str, path: str, raw_query: str, key: str) -> Response | None:
        """The Admin API (`/v1/organization/...`) and admin-key refusals elsewhere: see admin_api.py."""
        found = admin_api.answer(self.org, method, path, raw_query, key)
        return None if found is None else json_response(*found)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: bytes, key: str, project: str | None
    ) -> Response:
        if not key:
            return error_response(401, _NO_KEY)
        if project is None:
            return error_response(
                401,
                f"Incorrect API key provided: {mask_key(key)}. You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        parts = [unquote(p) for p in path.split("/")]
        if path == FILES_PREFIX or path.startswith(FILES_PREFIX + "/"):
            files = self._files(method, parts[3:], project)
            if files is not None:
                return files
        # "", "v1", "batches", [id], ["cancel"]
        if len(parts) >= 3 and parts[0] == "" and parts[1] == "v1" and parts[2] == "batches":
            if len(parts) == 3 and method == "GET":
                return self._echo_key(self._list(project, query), key)
            if len(parts) == 3 and method == "POST":
                return self._create(project, body)
            if len(parts) == 4 and parts[3] and method == "GET":
                obj = self.org.get(parts[3], project)
                if obj is None:
                    return error_response(404, f"No batch found with id '{parts[3]}'.")
                return self._echo_key(json_response(200, obj), key)
            if len(parts) == 5 and parts[3] and parts[4] == "cancel" and method == "POST":
                return self._cancel(project, parts[3])
        return error_response(404, f"Invalid URL ({method} {path})")

    def _files(self, method: str, rest: list[str], project: str) -> Response | None:
        """`GET /files/{id}[/content]` of the organisation's files (files.py); None: not a files URL served."""
        files = self.org.files.route(method, rest, project)
        if files is None:
            return None
        status, answer = files
        if isinstance(answer, Streamed):
            disposition = {"content-disposition": f'attachment; filename="{answer.filename}"'}
            return Response(status, b"", "application/octet-stream", disposition, stream=answer)
        return json_response(status, answer)

    def _flavored(
        self, flavor: str, method: str, path: str, query: dict[str, str], body: bytes, key: str, project: str | None
    ) -> Response:
        """A request to Groq's or Azure's API: OpenAI's answer, in the provider's shape (flavors.py)."""
        quirks = self.azure_quirks if flavor == flavors.AZURE else frozenset()
        rewritten = flavors.rewrite(flavor, path, query, quirks, self._azure_ids)
        if isinstance(rewritten, Response):
            return rewritten
        openai_path, openai_query = rewritten
        everything = None
        if flavor == flavors.GROQ and self.groq_paging == "ignores" and openai_path == "/v1/batches" and project:
            openai_query, everything = {}, self._every_batch(project)
        resp = self._route(method, openai_path, openai_query, body, key, project)
        return flavors.render(flavor, resp, quirks, self._azure_ids, everything)

    def _other(self, provider: str, method: str, path: str, query: dict[str, str], project: str | None) -> Response:
        """A request to Together's, Mistral's or OpenRouter's API (others.py), over the organisation's projects."""

        def arrive(project: str, count: int) -> None:
            for _ in range(count):
                self.org.create_batch(project=project)

        return others.answer(
            provider,
            method,
            path,
            query,
            project,
            every_batch=self.org.batches,
            get=self.org.get,
            list_page=lambda p, limit, after: self.org.list_page(p, limit=limit, after=after),
            ids=self._other_ids,
            files=lambda rest: self._files(method, [unquote(p) for p in rest], project) if project else None,
            results=lambda batch_id: self.org.files.result_rows(batch_id, project) if project else None,
            options={
                "together_order": self.together_order,
                "mistral_arrivals": self.mistral_arrivals,
                "arrive": arrive,
            },
        )

    def _every_batch(self, project: str) -> list[dict[str, Any]]:
        """Every batch of `project`, newest first (a list that ignores `limit` and `after`)."""
        out: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.org.list_page(project, limit=100, after=after)
            out.extend(page["data"])
            if not page["has_more"]:
                return out
            after = page["last_id"]

    def _echo_key(self, response: Response, key: str) -> Response:
        """`response` with `key` in every batch's metadata when `echo_key_in_metadata` is set."""
        if not self.echo_key_in_metadata or response.status != 200:
            return response
        payload = orjson.loads(response.body)
        for obj in payload.get("data", [payload]):
            obj["metadata"] = {**(obj.get("metadata") or {}), "echoed_key": key}
        return json_response(200, payload, response.headers)

    def _list(self, project: str, query: dict[str, str]) -> Response:
        raw = query.get("limit")
        limit = 20
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                return error_response(
                    400,
                    f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
                    param="limit",
                    code="invalid_type",
                )
            if limit < 1:
                return error_response(
                    400,
                    f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.",
                    param="limit",
                    code="integer_below_min_value",
                )
            if limit > 100:
                return error_response(
                    400,
                    f"Invalid 'limit': integer above maximum value. Expected a value <= 100, but got {limit} instead.",
                    param="limit",
                    code="integer_above_max_value",
                )
        return json_response(200, self.org.list_page(project, limit=limit, after=query.get("after") or None))

    def _create(self, project: str, body: bytes) -> Response:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return error_response(
                400,
                "We could not parse the JSON body of your request. "
                "(HINT: This likely means you aren't using your HTTP library correctly.)",
            )
        if not isinstance(req, dict):
            return error_response(400, "Invalid type for request body: expected an object.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not req.get(name):
                return error_response(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        if req["completion_window"] != "24h":
            return error_response(
                400,
                f"Invalid value: '{req['completion_window']}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        metadata = req.get("metadata")
        overrides: dict[str, Any] = {"endpoint": str(req["endpoint"]), "input_file_id": str(req["input_file_id"])}
        if "metadata" in req:
            overrides["metadata"] = metadata
        if req.get("output_expires_after") is not None:
            try:
                output_expires_seconds(req["output_expires_after"])
            except ValueError as exc:
                return error_response(400, str(exc), param="output_expires_after", code="invalid_value")
            overrides["output_expires_after"] = req["output_expires_after"]
        try:
            bid = self.org.create_batch(project=project, **overrides)
        except (TypeError, ValueError) as exc:
            return error_response(400, str(exc), param="metadata")
        return json_response(200, self.org.get(bid, project))

    def _cancel(self, project: str, bid: str) -> Response:
        if self.org.get(bid, project) is None:
            return error_response(404, f"No batch found with id '{bid}'.")
        try:
            self.org.cancel(bid)
        except ValueError as exc:
            return error_response(409, str(exc))
        return json_response(200, self.org.get(bid, project))
