"""How the request ledger fetches files from servers that misbehave (issue 16): compressed answers, files
that appear a run late, 404s that flap, a byte-order mark; over real HTTP against the simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.openai_batches.helpers import BatchesClient, RetryPolicy
from pipelines.openai_batches.runner import run_load
from pipelines.openai_batches.simulator import Fault, SimulatedOrg, SimulatorServer

from .conftest import KEY_A, config_for, rows_by_id
from .test_ledger import file_requests, files, finished, ledger, load, truth
from .test_simulator_files import CHAT, EMBEDDINGS, NO_QUIRKS


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
        assert client.requests_made == 2  # one describe, one download: no retry
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
