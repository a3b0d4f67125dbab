"""The request ledger and the reconciliation with OpenAI's books under a hostile or misbehaving server,
found by trying to break "the numbers can be trusted down to the single request and up to OpenAI's own
bill". Each test failed on the code before its fix (or is marked xfail, strict, with the reason)."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from openai_batches.config import AdminConfig
from openai_batches.load.runner import LoadOutcome, run_load

from .support.assertions import table
from .support.fake_api import RawApi, Reply, ScriptedApi, json_reply, make_batch, serve_all
from .support.workload import KEY_A, config_for

DAY = 86_400
ADMIN_KEY = "sk-admin-hostileBooks-Zq81LmN0pXv7RtY3"
PROJECT = "proj_scripted"


# --- the Admin API -----------------------------------------------------------------------------------


def _midnight(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp())


def bucket(day: date, *results: dict[str, Any]) -> dict[str, Any]:
    start = _midnight(day)
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": list(results)}


def usage(**fields: Any) -> dict[str, Any]:
    base = {"input_tokens": 10, "input_cached_tokens": 0, "output_tokens": 5, "num_model_requests": 1}
    row = {"object": "organization.usage.completions.result", "project_id": PROJECT, "model": "m", "batch": True}
    return row | base | fields


def cost(value: Any = 1.5, **fields: Any) -> dict[str, Any]:
    row = {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"}}
    return row | {"line_item": "m, input_tokens", "project_id": PROJECT} | fields


def page(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "page", "data": data, "has_more": False, "next_page": None}


class Books:
    """A scripted organisation: one batch listed for the project key, the Admin API answering what the
    test puts in `projects`, `usage` and `costs` (functions of the query's start day)."""

    def __init__(self) -> None:
        self.projects: list[dict[str, Any]] = [
            {"id": PROJECT, "object": "organization.project", "name": "p", "created_at": 1, "status": "active"}
        ]
        self.usage: Any = lambda start: [bucket(start)]
        self.costs: Any = lambda start: [bucket(start)]
        listing = serve_all([make_batch(1, created=int(time.time()) - 10 * DAY)])

        def route(path: str, query: dict[str, str], number: int) -> Reply:
            if path == "/v1/organization/projects":
                return json_reply({"object": "list", "data": self.projects, "has_more": False})
            if path.startswith("/v1/organization/"):
                start = datetime.fromtimestamp(int(query["start_time"]), UTC).date()
                answer = self.usage if path.endswith("/completions") else self.costs
                return json_reply(page(answer(start)))
            return listing(path, query, number)

        self.api = ScriptedApi(route)

    def load(self, db: str) -> LoadOutcome:
        admin = AdminConfig(admin_key=ADMIN_KEY, base_url=self.api.base_url)
        return run_load(db, config_for(self.api.base_url, KEY_A, max_attempts=2, admin=admin))


@pytest.fixture
def books() -> Iterator[Books]:
    b = Books()
    with b.api:
        yield b


def test_the_admin_key_echoed_in_a_project_name_or_line_item_is_never_stored(
    db: str, books: Books, caplog: pytest.LogCaptureFixture
) -> None:
    """Project names, models and line items were stored as sent: a server echoing the admin key in one put
    the key in the database, and in `status`, the reports and the load summary that show them."""
    books.projects[0]["name"] = f"team {ADMIN_KEY} batch"
    other = {"id": "proj_other", "object": "organization.project", "created_at": 1, "status": "active"}
    books.projects.append(other | {"name": {"echo": ADMIN_KEY}})  # not text: a warning shows it
    # The project key too: the Admin API's client sends only the admin key, but every key of the run is secret.
    books.projects.append(other | {"id": "proj_third", "name": f"echo {KEY_A}"})
    books.costs = lambda start: [bucket(start, cost(line_item=f"m, {ADMIN_KEY[:20]}"))]
    books.usage = lambda start: [bucket(start, usage(model=f"gpt-{ADMIN_KEY[5:30]}"))]
    result = books.load(db)
    assert result.admin is not None and result.admin.error is None
    stored = json.dumps(
        table(db, "SELECT * FROM openai_batches.projects")
        + table(db, "SELECT * FROM openai_batches.costs_daily")
        + table(db, "SELECT * FROM openai_batches.usage_daily"),
        default=str,
    )
    for key in (ADMIN_KEY, KEY_A):
        for i in range(len(key) - 8):
            assert key[i : i + 8] not in stored, stored
    assert "team" in stored  # the rest of the name is kept
    assert "name=" in caplog.text
    for i in range(len(ADMIN_KEY) - 8):
        assert ADMIN_KEY[i : i + 8] not in caplog.text, caplog.text


def test_a_bucket_for_a_day_before_the_query_never_replaces_that_days_rows(db: str, books: Books) -> None:
    """A run re-reads the last three days; a server that also answers a bucket for an older day (empty,
    or other figures) must not overwrite a day the earlier run read and that is settled."""
    books.usage = lambda start: [bucket(start + timedelta(days=i), usage()) for i in range(12)]
    assert books.load(db).admin.error is None  # type: ignore[union-attr]
    before = table(db, "SELECT day, input_tokens FROM openai_batches.usage_daily ORDER BY day")
    first_day = before[0][0]
    assert len(before) == 12

    def hostile(start: date) -> list[dict[str, Any]]:
        assert start > first_day  # the re-read window starts later
        return [bucket(first_day), bucket(first_day + timedelta(days=1), usage(input_tokens=999_999))] + [
            bucket(start + timedelta(days=i), usage()) for i in range(3)
        ]

    books.usage = hostile
    assert books.load(db).admin.error is None  # type: ignore[union-attr]
    after = table(db, "SELECT day, input_tokens FROM openai_batches.usage_daily ORDER BY day")
    assert after == before


def test_same_key_results_whose_sum_overflows_64_bits_fail_no_load(db: str, books: Books) -> None:
    """Each part fits a BIGINT, their sum does not: the sum is unknown (NULL, with a warning), the rest
    of the organisation's books load."""
    big = 2**62 + 1
    books.usage = lambda start: [bucket(start, usage(input_tokens=big), usage(input_tokens=big), usage(model="n"))]
    result = books.load(db)
    assert result.admin is not None and result.admin.error is None, result.admin.error
    stored = dict(table(db, "SELECT model, input_tokens FROM openai_batches.usage_daily"))
    assert stored == {"m": None, "n": 10}


# --- batch files ---------------------------------------------------------------------------------------


def result_line(custom_id: str) -> bytes:
    body = {"id": f"chatcmpl-{custom_id}", "model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    response = {"status_code": 200, "request_id": f"req_{custom_id}", "body": body}
    return json.dumps({"custom_id": custom_id, "response": response, "error": None}).encode() + b"\n"


IDS = ("a", "b", "c", "d")
OUTPUT = b"".join(result_line(c) for c in IDS)
INPUT = b"".join(json.dumps({"custom_id": c, "body": {}}).encode() + b"\n" for c in IDS)


def encoded_response(body: bytes, coding: str | None) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nopenai-project: proj_raw\r\n"
    if coding:
        head += b"content-encoding: %s\r\n" % coding.encode()
    return head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body


def file_api(output: bytes, coding: str | None, *, size: int | None) -> RawApi:
    """One completed batch of four requests; its output file answered with ``output`` as the body."""
    batch = make_batch(1, output_file_id="file-out1", error_file_id=None, input_file_id="file-in1")
    batch["request_counts"] = {"total": len(IDS), "completed": len(IDS), "failed": 0}
    batch["created_at"] = int(time.time()) - 2 * 3600
    batch["completed_at"] = int(time.time()) - 3600

    def answer(path: str) -> Iterator[tuple[bytes, float]]:
        if path == "/v1/files/file-out1/content":
            yield encoded_response(output, coding), 0
        elif path == "/v1/files/file-in1/content":
            yield encoded_response(INPUT, None), 0
        elif path.startswith("/v1/files/"):
            file_id = path.split("/")[3]
            meta = {"id": file_id, "object": "file", "expires_at": None, "purpose": "batch_output"}
            meta["bytes"] = (size if file_id == "file-out1" else len(INPUT)) if size is not None else None
            yield encoded_response(json.dumps(meta).encode(), None), 0
        else:
            body = json.dumps({"object": "list", "data": [batch], "has_more": False}).encode()
            yield encoded_response(body, None), 0

    return RawApi(answer)


def _load_files(api: RawApi, db: str) -> dict[str, str]:
    with api:
        run_load(db, config_for(api.base_url, KEY_A, requests=True, max_attempts=2))
    return dict(table(db, "SELECT custom_id, outcome FROM openai_batches.batch_requests"))


@pytest.mark.parametrize("size", [None, len(OUTPUT)], ids=["size-unknown", "size-known"])
def test_a_gzip_body_of_several_members_is_read_whole(db: str, size: int | None) -> None:
    """RFC 1952: a gzip file is one or more members (what `cat a.gz b.gz` or a chunked compressor gives);
    decoding stopped at the end of the first, so the requests of the others were called missing."""
    body = gzip.compress(result_line("a") + result_line("b")) + gzip.compress(result_line("c") + result_line("d"))
    assert _load_files(file_api(body, "gzip", size=size), db) == dict.fromkeys(IDS, "succeeded")


@pytest.mark.parametrize("coding", ["deflate-zlib", "deflate-raw", "GZIP", "identity"])
def test_each_content_coding_a_server_may_send_reads_the_file_whole(db: str, coding: str) -> None:
    if coding == "deflate-zlib":
        body, header = zlib.compress(OUTPUT), "deflate"
    elif coding == "deflate-raw":
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body, header = c.compress(OUTPUT) + c.flush(), "deflate"
    elif coding == "GZIP":
        body, header = gzip.compress(OUTPUT), "GZIP"
    else:
        body, header = OUTPUT, "identity"
    assert _load_files(file_api(body, header, size=len(OUTPUT)), db) == dict.fromkeys(IDS, "succeeded")


def test_cost_amounts_that_add_up_beyond_any_float_are_kept_as_sent_not_infinite(db: str, books: Books) -> None:
    """Each amount is finite, their sum is not: `amount_usd` once held `inf`, and every sum over it too."""
    books.costs = lambda start: [bucket(start, cost(1e308), cost(1e308), cost(2.0, line_item="other"))]
    result = books.load(db)
    assert result.admin is not None and result.admin.error is None, result.admin.error
    stored = table(db, "SELECT line_item, amount_usd, amount_raw FROM openai_batches.costs_daily ORDER BY ALL")
    assert all(amount is None or amount == amount and abs(amount) < float("inf") for _, amount, _ in stored), stored
    assert ("other", 2.0, None) in stored
    assert sum(1 for item, amount, raw in stored if item == "m, input_tokens" and amount is None and raw) >= 1


def test_the_admin_key_echoed_in_a_batch_file_line_is_never_stored(db: str) -> None:
    """Every configured key is a secret wherever a server echoes it: the ledger masks its project's key in
    what it stores from a file line, not the admin key configured next to it."""
    line = json.loads(result_line("a"))
    line["response"] = {
        "status_code": 400,
        "request_id": "req_a",
        "body": {"error": {"message": f"bad key {ADMIN_KEY}", "type": "x", "code": "c"}},
    }
    output = json.dumps(line).encode() + b"\n" + b"".join(result_line(c) for c in IDS[1:])
    api = file_api(output, None, size=len(output))
    with api:
        admin = AdminConfig(admin_key=ADMIN_KEY, base_url=api.base_url)
        run_load(db, config_for(api.base_url, KEY_A, requests=True, max_attempts=1, admin=admin))
    stored = json.dumps(table(db, "SELECT * FROM openai_batches.batch_requests"), default=str)
    assert "bad key" in stored
    for i in range(len(ADMIN_KEY) - 8):
        assert ADMIN_KEY[i : i + 8] not in stored, stored
