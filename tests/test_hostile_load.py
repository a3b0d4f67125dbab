"""The load path under a hostile server, found by trying to break it: batch files that lie about their
size, arrive cut short or are not batch files at all, and Admin API pages no real API sends. Each test
failed before the fix it protects."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from openai_batches.config import AdminConfig
from openai_batches.load.runner import LoadOutcome, run_load

from .support.assertions import table
from .support.fake_api import RawApi, Reply, ScriptedApi, json_reply, make_batch, raw_response, serve_all
from .support.workload import KEY_A, config_for

DAY = 86_400


def result_line(custom_id: str) -> bytes:
    body = {"id": f"chatcmpl-{custom_id}", "model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    response = {"status_code": 200, "request_id": f"req_{custom_id}", "body": body}
    return json.dumps({"custom_id": custom_id, "response": response, "error": None}).encode() + b"\n"


OUTPUT = b"".join(result_line(c) for c in ("a", "b", "c"))
INPUT = b"".join(json.dumps({"custom_id": c, "body": {}}).encode() + b"\n" for c in ("a", "b", "c"))

Content = Callable[[int], Iterator[tuple[bytes, float]]]  # (attempt number) -> pieces of the response


def one_batch_api(
    content: Content, *, described: dict[str, Any] | None = None, inputs: Content | None = None
) -> RawApi:
    """One completed batch of three requests (output file `file-out1`, input file `file-in1`), finished an
    hour ago; `content` answers the output file's content, `inputs` the input file's (default: as it
    should be)."""
    batch = make_batch(1, output_file_id="file-out1", error_file_id=None, input_file_id="file-in1")
    batch["request_counts"] = {"total": 3, "completed": 3, "failed": 0}
    batch["created_at"] = int(time.time()) - 2 * 3600
    batch["completed_at"] = int(time.time()) - 3600
    attempts = {"file-out1": 0, "file-in1": 0}

    def answer(path: str) -> Iterator[tuple[bytes, float]]:
        if path == "/v1/files/file-out1/content":
            attempts["file-out1"] += 1
            yield from content(attempts["file-out1"])
            return
        if path == "/v1/files/file-in1/content":
            attempts["file-in1"] += 1
            yield from (inputs or (lambda attempt: iter([(raw_response(INPUT), 0.0)])))(attempts["file-in1"])
            return
        if path.startswith("/v1/files/"):
            file_id = path.split("/")[3]
            size = len(OUTPUT if file_id == "file-out1" else INPUT)
            meta = {"id": file_id, "object": "file", "bytes": size, "expires_at": None, "purpose": "batch_output"}
            yield raw_response(json.dumps(meta | (described or {})).encode()), 0
            return
        yield raw_response(json.dumps({"object": "list", "data": [batch], "has_more": False}).encode()), 0

    return RawApi(answer)


def load(api: RawApi | ScriptedApi, db: str, **kw: Any) -> LoadOutcome:
    kw.setdefault("max_attempts", 2)
    return run_load(db, config_for(api.base_url, KEY_A, requests=True, **kw))


def requests(db: str) -> dict[str, str]:
    return dict(table(db, "SELECT custom_id, outcome FROM openai_batches.batch_requests"))


def file_states(db: str) -> dict[str, str]:
    return dict(table(db, "SELECT kind, state FROM openai_batches.batch_files"))


def content_requests(api: RawApi) -> int:
    return api.paths.count("/v1/files/file-out1/content")


# --- how long a download may take ------------------------------------------------------------------


def test_a_huge_announced_size_does_not_let_a_server_trickle_a_download_forever(db: str) -> None:
    """A content-length of 10 TB once stretched the download's time limit to four months: a server
    trickling bytes held the run (and its lock) for as long as it liked."""

    def trickle(attempt: int) -> Iterator[tuple[bytes, float]]:
        if attempt > 2:  # the next run's server behaves
            yield raw_response(OUTPUT), 0
            return
        yield raw_response(b"", length=10**13), 0
        for byte in OUTPUT:
            yield bytes([byte]), 0.05

    with one_batch_api(trickle) as api:
        started = time.monotonic()
        result = load(api, db, timeout=1.0)
        elapsed = time.monotonic() - started
        assert result.ok  # the batch waits for the next run
        assert elapsed < 10, elapsed  # two attempts of about a second each, not the 25 s the trickle takes each
        assert file_states(db) == {"output": "pending"}
        assert load(api, db, timeout=1.0).ok
    assert requests(db) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_a_negative_size_in_the_file_object_does_not_fail_every_download(db: str) -> None:
    """A file object saying `bytes: -10**12` once set the download's deadline in the past: every attempt
    timed out at once, on every run, and the batch stayed pending forever."""

    def whole(attempt: int) -> Iterator[tuple[bytes, float]]:
        yield raw_response(OUTPUT), 0

    with one_batch_api(whole, described={"bytes": -(10**12)}) as api:
        result = load(api, db)
    assert result.ok, result.outcomes[0].error
    assert requests(db) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert file_states(db)["output"] == "read"


# --- downloads cut short ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        raw_response(OUTPUT, length=len(OUTPUT) - 40),  # a content-length that lies: the body ends early
        raw_response(OUTPUT[:-40], length=None),  # no content-length, the connection closed part way
    ],
    ids=["short-content-length", "closed-early"],
)
def test_a_download_cut_short_without_a_protocol_error_is_read_again(db: str, cut: bytes) -> None:
    """Such a body once ended quietly: the file was recorded `read`, its last request lost for good."""

    def first_cut(attempt: int) -> Iterator[tuple[bytes, float]]:
        yield (cut if attempt == 1 else raw_response(OUTPUT)), 0

    with one_batch_api(first_cut) as api:
        result = load(api, db)
        assert content_requests(api) == 2
    assert result.ok, result.outcomes[0].error
    assert requests(db) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert table(db, "SELECT kind, state, bytes FROM openai_batches.batch_files") == [("output", "read", len(OUTPUT))]


# --- a document that is not the batch file ---------------------------------------------------------

HTML = b"<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head>\n<body>Try later</body></html>\n"


def test_an_html_page_served_as_a_file_is_not_read_as_one(db: str, caplog: pytest.LogCaptureFixture) -> None:
    """A proxy's page with status 200 was once recorded as the output file, `read`, and all three requests
    that succeeded were called `missing` (from the input file), for good."""

    def page_first(attempt: int) -> Iterator[tuple[bytes, float]]:
        yield raw_response(HTML if attempt == 1 else OUTPUT), 0

    with one_batch_api(page_first, described={"bytes": None}) as api:  # no size that would tell
        assert load(api, db).ok
        assert file_states(db) == {"output": "pending"}
        assert "none of its 3 line(s) is a request of the batch" in caplog.text
        assert "/v1/files/file-in1/content" not in api.paths
        assert load(api, db).ok
    assert requests(db) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert file_states(db) == {"output": "read"}


def test_an_html_page_served_as_the_input_file_calls_no_request_missing_wrongly(db: str) -> None:
    """The same for the input file: its page was recorded `read` with no custom id in it, so the request
    in neither of the other files was not called missing, for good."""

    def two_of_three(attempt: int) -> Iterator[tuple[bytes, float]]:
        yield raw_response(OUTPUT.split(b"\n", 2)[0] + b"\n" + OUTPUT.split(b"\n", 2)[1] + b"\n"), 0

    def page_first(attempt: int) -> Iterator[tuple[bytes, float]]:
        yield raw_response(HTML if attempt == 1 else INPUT), 0

    with one_batch_api(two_of_three, described={"bytes": None}, inputs=page_first) as api:
        assert load(api, db).ok
        assert file_states(db) == {"output": "pending"}
        assert load(api, db).ok
    assert requests(db) == {"a": "succeeded", "b": "succeeded", "c": "missing"}
    assert file_states(db) == {"output": "read", "input": "read"}


# --- a batch left pending whose files can no longer exist -------------------------------------------


def test_a_batch_whose_file_keeps_failing_is_given_up_once_its_files_cannot_exist(db: str) -> None:
    """A batch left pending was asked for on every run, forever: a file that fails for good (here a 400;
    a 500 costs every run its full retries) was retried years after the API had deleted it."""
    batch = make_batch(1, output_file_id="file-out1", error_file_id=None, input_file_id="file-in1")
    now = {"t": float(batch["completed_at"] + 3600)}
    listing = serve_all([batch])

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path == "/v1/files/file-out1/content":
            return json_reply({"error": {"message": "Invalid file"}}, 400)
        if path.startswith("/v1/files/"):
            return json_reply({"id": "file-out1", "object": "file", "bytes": 100, "expires_at": None})
        return listing(path, query, number)

    with ScriptedApi(route, clock=lambda: now["t"]) as api:
        assert load(api, db).ok
        assert file_states(db) == {"output": "pending"}
        now["t"] += 10 * DAY
        assert load(api, db).ok
        assert file_states(db) == {"output": "pending"}
        now["t"] += 30 * DAY  # the files were deleted at the latest 30 days after the batch ended
        asked = len(api.requests)
        result = load(api, db)
        assert [path for path, _ in api.requests[asked:]] == ["/v1/batches"]
        assert result.ok and file_states(db) == {"output": "gone"}
        assert load(api, db).ok and [path for path, _ in api.requests[asked + 1 :]] == ["/v1/batches"]
    assert result.outcomes[0].stats.ledger is not None and result.outcomes[0].stats.ledger.files_gone == 1


# --- Admin API pages no real API sends -------------------------------------------------------------

ADMIN_KEY = "sk-admin-hostile-0123456789abcdef"


@pytest.mark.parametrize("start_time", [10**15, -(10**13), 2**63], ids=["year-31-million", "before-year-1", "int64"])
def test_a_bucket_dated_outside_any_calendar_refuses_the_page_in_one_line(db: str, start_time: int) -> None:
    """Such a bucket once ended the organisation's load in a Python error (`ValueError: year 31690708 is out
    of range`, `OverflowError`), never retried; it is a page that cannot be right, like any other."""
    listing = serve_all([make_batch(1)])

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path == "/v1/organization/projects":
            return json_reply({"object": "list", "data": [], "has_more": False})
        if path.startswith("/v1/organization/"):
            bucket = {"object": "bucket", "start_time": start_time, "end_time": start_time + DAY, "results": []}
            return json_reply({"object": "page", "data": [bucket], "has_more": False, "next_page": None})
        return listing(path, query, number)

    with ScriptedApi(route) as api:
        admin = AdminConfig(admin_key=ADMIN_KEY, base_url=api.base_url)
        result = run_load(db, config_for(api.base_url, KEY_A, max_attempts=2, admin=admin))
    assert result.outcomes[0].error is None and result.admin is not None
    assert result.admin.error is not None
    assert "unexpected response body (not a page object) (gave up after 2 attempts)" in result.admin.error
    assert "Error" not in result.admin.error


# --- bodies no JSON parser can take ---------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 500])
def test_a_body_nested_too_deep_to_parse_is_a_bad_body_retried_like_any_other(db: str, status: int) -> None:
    """`[[[[...` 100,000 deep once failed the project at once with `RecursionError: maximum recursion depth
    exceeded`: neither retried as the bad body it is nor said in the API's terms."""
    listing = serve_all([make_batch(1)])
    deep = b"[" * 100_000 + b"]" * 100_000

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        return Reply(status, deep) if number == 1 else listing(path, query, number)

    with ScriptedApi(route) as api:
        result = run_load(db, config_for(api.base_url, KEY_A, max_attempts=2))
    assert result.ok, result.outcomes[0].error
    assert len(api.requests) == 2 and table(db, "SELECT count(*) FROM openai_batches.batches") == [(1,)]


# --- a line without end --------------------------------------------------------------------------------


def test_a_line_longer_than_any_real_one_is_skipped_without_being_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line with no newline was buffered whole: a server sending gigabytes without a `\\n` ran the loader
    out of memory. Beyond `LEDGER_MAX_LINE_BYTES` the line is dropped as it streams and counted bad."""
    import tracemalloc

    from openai_batches import settings
    from openai_batches.sources.ledger import parse as ledger_parse

    monkeypatch.setattr(settings, "LEDGER_MAX_LINE_BYTES", 1 << 20)
    piece = b"x" * 65_536

    sent = 0

    def stream() -> Iterator[bytes]:
        nonlocal sent
        pieces = [OUTPUT.split(b"\n")[0] + b"\n" + b'{"custom_id": "b", "response": "']
        pieces += [piece] * (64 * 16)  # 64 MB without a newline, one reused piece at a time
        pieces.append(b'"}\n' + OUTPUT.split(b"\n")[2] + b"\n")
        for p in pieces:
            sent += len(p)
            yield p

    tracemalloc.start()
    try:
        parsed = ledger_parse.parse_results(
            stream(), "output", seen_before=set(), clean_code=str, clean_message=str, stop=None
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # a few chunks at most, never the 64 MB line
    assert parsed.rows == 2 and parsed.bad_lines == 1
    assert parsed.first_bad == "line 2: longer than 1,048,576 bytes (skipped unread)"
    assert parsed.bytes == sent and parsed.lines == 3


def test_a_batch_file_with_an_endless_line_loads_its_other_requests(
    db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from openai_batches import settings

    monkeypatch.setattr(settings, "LEDGER_MAX_LINE_BYTES", 1 << 20)
    a, b, c = OUTPUT.split(b"\n")[:3]

    def endless_b(attempt: int) -> Iterator[tuple[bytes, float]]:
        body = a + b"\n" + b[:-2] + b" " * (4 << 20) + b"}}\n" + c + b"\n"
        yield raw_response(body), 0

    with one_batch_api(endless_b, described={"bytes": None}) as api:
        assert load(api, db).ok
    assert requests(db) == {"a": "succeeded", "b": "missing", "c": "succeeded"}
    assert "line 2: longer than 1,048,576 bytes (skipped unread)" in caplog.text
