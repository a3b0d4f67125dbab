"""How the request ledger fetches files from servers that misbehave: compressed answers, files
that appear a run late, 404s that flap, a byte-order mark; over real HTTP against the simulator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from openai_batches.cli.progress import BarProgress, LogProgress
from openai_batches.client.batches import BatchesClient
from openai_batches.client.retry import RetryPolicy
from openai_batches.load.runner import run_load
from openai_batches.simulator import Fault, SimulatedOrg, SimulatorServer
from openai_batches.sources.ledger.parse import InputIds, split_lines

from .support.assertions import rows_by_id, table
from .support.cli import run_cli
from .support.fake_api import Reply, ScriptedApi, json_reply, make_batch, serve_all
from .support.ledger import file_requests, files, finished, ledger, load, truth
from .support.workload import CHAT, DAY, EMBEDDINGS, KEY_A, NO_QUIRKS, config_for


def _content_path(org: SimulatedOrg, batch_id: str, kind: str = "output") -> str:
    batch = org.get(batch_id)
    assert batch is not None
    return f"/v1/files/{batch[f'{kind}_file_id']}/content"


# ---------------------------------------------------------------------------------------------- gzip
def test_gzip_encoded_file_is_decoded_while_streaming(org: SimulatedOrg, server: SimulatorServer) -> None:
    server.compress = True
    batch_id = finished(org, endpoint=EMBEDDINGS, outcome="completed", total_requests=400, **NO_QUIRKS)
    file_id = _content_path(org, batch_id).split("/")[3]
    chunks: list[int] = []

    def consume(body: Iterator[bytes]) -> bytes:
        chunks.clear()
        whole = bytearray()
        for chunk in body:
            chunks.append(len(chunk))
            whole += chunk
        return bytes(whole)

    with BatchesClient(api_key=KEY_A, base_url=server.base_url) as client:
        info = client.file_info(file_id)
        assert info is not None
        decoded = client.stream_file(file_id, consume, size=info["bytes"])
        assert client.api_calls == 2  # one describe, one download: no retry
    seen = [r for r in server.requests if r.path.endswith("/content")]
    assert "gzip" in seen[0].headers["accept-encoding"]
    assert decoded is not None and len(decoded) == info["bytes"] and decoded.count(b"\n") == 400
    # Handed over piece by piece as it arrived, never as one body.
    assert len(chunks) > 10 and max(chunks) <= 1 << 20


def test_a_gzip_stream_cut_before_its_end_is_retried_even_without_a_known_size(
    org: SimulatedOrg, server: SimulatorServer
) -> None:
    server.compress = True
    batch_id = finished(org, endpoint=CHAT, outcome="completed", total_requests=300, failed_fraction=0.0, **NO_QUIRKS)
    content = _content_path(org, batch_id)
    server.inject(Fault("truncated-gzip", path_prefix=content))
    with BatchesClient(api_key=KEY_A, base_url=server.base_url, retry=RetryPolicy(sleep=lambda s: None)) as client:
        lines = client.stream_file(content.split("/")[3], lambda body: b"".join(body).count(b"\n"), size=None)
    assert lines == 300 and file_requests(server).count(content) == 2


@pytest.mark.parametrize("fault", ["truncated-gzip", "corrupt-gzip"])
def test_a_corrupt_or_cut_gzip_download_is_retried_and_the_ledger_stays_exact(
    db: str, org: SimulatedOrg, server: SimulatorServer, fault: str
) -> None:
    server.compress = True
    batch_id = finished(org, endpoint=CHAT, outcome="completed", total_requests=300, failed_fraction=0.1)
    content = _content_path(org, batch_id)
    server.inject(Fault(fault, path_prefix=content))
    load(db, server)
    assert file_requests(server).count(content) == 2
    assert ledger(db, batch_id) == truth(org, batch_id)


def test_a_gzip_download_that_keeps_failing_leaves_its_batch_pending_with_one_line(
    db: str, org: SimulatedOrg, server: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.compress = True
    batch_id = finished(org, endpoint=CHAT, outcome="completed", total_requests=60, **NO_QUIRKS)
    content = _content_path(org, batch_id)
    server.inject(Fault("corrupt-gzip", count=2, path_prefix=content))
    result = load(db, server, max_attempts=2)
    counts = result.outcomes[0].stats.ledger
    assert counts is not None and (counts.files_failed, counts.batches_pending) == (1, 1)
    lines = [r.getMessage() for r in caplog.records if "left for the next run" in r.getMessage()]
    assert len(lines) == 1 and "could not be decoded" in lines[0] and "\n" not in lines[0], lines
    assert files(db, batch_id)["output"][0] == "pending"  # and no request row: batch_requests is not created yet
    load(db, server)
    assert ledger(db, batch_id) == truth(org, batch_id)


def test_gzip_encoded_list_pages_are_decoded_and_a_corrupt_one_is_retried(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    server.compress = True
    for _ in range(3):
        finished(org, outcome="completed", total_requests=10)
    server.inject(Fault("corrupt-gzip", path_prefix="/v1/batches"))
    result = run_load(db, config_for(server.base_url, KEY_A))
    assert result.ok, [o.error for o in result.outcomes]
    assert set(rows_by_id(db)) == {b["id"] for b in org.list_page("proj_alpha", limit=100)["data"]}
    assert [r.fault for r in server.requests][:2] == ["corrupt-gzip", None]


# ---------------------------------------------------------------------------------------------- late files, 404s
def _outcomes(db: str, batch_id: str) -> set[str]:
    return {row[0] for row in ledger(db, batch_id).values()}


@pytest.mark.parametrize("second_run", ["plain", "full_refresh"])
def test_an_output_file_named_a_run_late_is_read_then_and_replaces_the_missing_rows(
    db: str, org: SimulatedOrg, server: SimulatorServer, second_run: str
) -> None:
    batch_id = finished(org, outcome="completed", total_requests=40, failed_fraction=0.0, **NO_QUIRKS)
    org.files_appear_at(batch_id, org.clock.now() + 3600)  # listed completed, `output_file_id` still null
    load(db, server)
    assert _outcomes(db, batch_id) == {"missing"} and len(ledger(db, batch_id)) == 40  # as its files say now
    org.advance(2 * 3600)
    load(db, server, full_refresh=second_run == "full_refresh")
    assert ledger(db, batch_id) == truth(org, batch_id) and _outcomes(db, batch_id) == {"succeeded"}
    assert set(files(db, batch_id)) == {"output"}  # the input file's row of the first reading is gone too
    assert rows_by_id(db)[batch_id]["output_file_id"] == org.get(batch_id)["output_file_id"]  # type: ignore[index]
    server.reset_requests()
    load(db, server)  # read in full: not watched any more
    assert [r.path for r in server.requests] == ["/v1/batches"]


def test_a_batch_still_without_its_output_file_is_asked_for_on_three_runs_then_left(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = finished(org, outcome="completed", total_requests=20, failed_fraction=0.0, **NO_QUIRKS)
    org.files_appear_at(batch_id, org.clock.now() + 30 * 86_400)
    load(db, server)
    asked = []
    for _ in range(4):
        server.reset_requests()
        load(db, server)
        asked.append([r.path for r in server.requests])
    assert asked == [["/v1/batches", f"/v1/batches/{batch_id}"]] * 3 + [["/v1/batches"]]
    assert _outcomes(db, batch_id) == {"missing"}


@pytest.mark.parametrize("where", ["describe", "content"])
def test_a_file_answering_404_once_is_read_on_the_next_run_not_recorded_gone(
    db: str, org: SimulatedOrg, server: SimulatorServer, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    batch_id = finished(org, endpoint=CHAT, outcome="completed", total_requests=60, failed_fraction=0.1)
    content = _content_path(org, batch_id)
    server.inject(Fault("404", path_prefix=content if where == "content" else content.removesuffix("/content")))
    first = load(db, server)
    counts = first.outcomes[0].stats.ledger
    assert counts is not None and (counts.files_gone, counts.batches_pending) == (0, 1)
    assert "the API answered 404 (run 1 of 3 in a row before it is taken as gone)" in caplog.text
    assert files(db, batch_id)["output"][0] == "pending"
    load(db, server)
    assert ledger(db, batch_id) == truth(org, batch_id)
    assert {state for state, *_ in files(db, batch_id).values()} == {"read"}


def test_a_file_missing_three_runs_in_a_row_is_gone_and_a_full_refresh_reads_it_once_back(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = finished(org, endpoint=CHAT, outcome="completed", total_requests=60, failed_fraction=0.1)
    server.inject(Fault("404", count=1000, path_prefix=_content_path(org, batch_id).removesuffix("/content")))
    states = []
    for _ in range(3):
        load(db, server)
        states.append(files(db, batch_id)["output"][0])
    assert states == ["pending", "pending", "gone"]
    assert _outcomes(db, batch_id) <= {"failed"} and ledger(db, batch_id)  # the error file's requests only
    server.clear_faults()
    load(db, server)  # a plain run does not ask again: gone is gone
    assert files(db, batch_id)["output"][0] == "gone"
    load(db, server, full_refresh=True)  # a full refresh re-reads what can still be fetched
    assert ledger(db, batch_id) == truth(org, batch_id)
    assert {state for state, *_ in files(db, batch_id).values()} == {"read"}


# ---------------------------------------------------------------------------------------------- odd bytes
def test_a_byte_order_mark_at_the_start_of_a_file_does_not_make_its_first_request_missing(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    batch = make_batch(1, output_file_id="file-out1", error_file_id="file-err1", input_file_id="file-in1")
    batch["request_counts"] = {"total": 4, "completed": 2, "failed": 1}  # one request in neither file
    batch["completed_at"] = batch["created_at"] + 120
    ok = {"status_code": 200, "request_id": "req_1", "body": {"id": "chatcmpl-1", "model": "m", "usage": {}}}
    failed = {"status_code": 400, "request_id": "req_2", "body": {"error": {"code": "bad", "message": "no"}}}
    bom = b"\xef\xbb\xbf"

    def jsonl(*lines: dict[str, Any]) -> bytes:
        return bom + b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    bodies = {
        "file-out1": jsonl({"custom_id": "a", "response": ok}, {"custom_id": "b", "response": ok}),
        "file-err1": jsonl({"custom_id": "c", "response": failed}),
        "file-in1": jsonl(*({"custom_id": c, "body": {}} for c in "abcd")),
    }

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        if path.startswith("/v1/files/"):
            file_id = path.split("/")[3]
            if path.endswith("/content"):
                return Reply(200, bodies[file_id], "application/octet-stream")
            return json_reply({"id": file_id, "object": "file", "bytes": len(bodies[file_id]), "expires_at": None})
        return serve_all([batch])(path, query, number)

    with ScriptedApi(route, clock=lambda: batch["created_at"] + DAY) as api:
        result = run_load(db, config_for(api.base_url, KEY_A, requests=True))
    assert result.ok, result.outcomes[0].error
    outcomes = dict(table(db, "SELECT custom_id, outcome FROM openai_batches.batch_requests"))
    assert outcomes == {"a": "succeeded", "b": "succeeded", "c": "failed", "d": "missing"}
    assert "could not be read" not in caplog.text and "no custom_id" not in caplog.text


def test_split_lines_strips_a_byte_order_mark_split_across_chunks() -> None:
    counter = InputIds()
    lines = list(split_lines(iter([b"\xef", b"\xbb", b"\xbf{}\n", b"\xef\xbb\xbf{}\n"]), counter, None))
    assert (
        lines == [b"{}", b"\xef\xbb\xbf{}"] and counter.bytes == 12
    )  # only at the start of the file; every byte counted


# ---------------------------------------------------------------------------------------------- status
def test_status_says_how_many_ledger_files_are_read_pending_and_gone(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    read = finished(org, endpoint=CHAT, outcome="completed", total_requests=30, failed_fraction=0.1)
    broken = finished(org, endpoint=CHAT, outcome="completed", total_requests=30, failed_fraction=0.0, **NO_QUIRKS)
    server.inject(Fault("500", count=1000, path_prefix=_content_path(org, broken)))
    load(db, server, max_attempts=1)
    assert files(db, read) and files(db, broken)["output"][0] == "pending"
    shown = run_cli("status", "--db", db)
    size = files(db, broken)["output"][1]
    line = f"request ledger: 2 files read, 1 pending ({size / 1e6:,.1f} MB, read by the next loads), 0 gone"
    assert shown.returncode == 0 and line in shown.stdout.splitlines(), shown.stdout + shown.stderr
    without = run_cli("status", "--db", db.replace("batches.duckdb", "plain.duckdb"))
    assert "request ledger" not in without.stdout


# ---------------------------------------------------------------------------------------------- progress
def test_downloads_show_files_and_bytes_done_of_the_planned_total(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    ids = [finished(org, endpoint=CHAT, outcome="completed", total_requests=30, failed_fraction=0.1) for _ in range(3)]
    stream = io.StringIO()
    result = run_load(db, config_for(server.base_url, KEY_A, requests=True), progress=LogProgress(stream))
    assert result.ok, result.outcomes[0].error
    size = sum(f.bytes for b in ids for f in org.files.batch_files(b) if f.kind != "input")
    project = result.outcomes[0].stats.project
    last = f"[{project}] ledger: 6 of 6 files, {size / 1e6:,.1f} of {size / 1e6:,.1f} MB"
    assert stream.getvalue().splitlines() == [last]  # cron: one line at the end (and every 20 files)
    bar = BarProgress()
    bar.files_planned("p", 2, 2_000_000)
    bar.file_read("p", 1_000_000)
    task = bar._progress.tasks[0]
    assert (task.completed, task.total, task.fields["counts"]) == (1_000_000, 2_000_000, "1 of 2 files, 1.0 of 2.0 MB")
    bar.close()
