"""The API simulator, checked over real HTTP against the reference behaviour of OpenAI's batch endpoints."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from openai_batches.simulator import USAGE_CUTOFF, Fault, SimClock, SimulatedOrg, SimulatorServer

from .support.cli import printed, simulate_command
from .support.workload import FIXTURE_PAGE as FIXTURE

# 2025-11-24T16:00:00Z: 200 days of history straddle the 2025-09-07 usage/model cutoff.
T0 = 1_764_000_000.0
KEY_A, KEY_B = "sk-sim-alpha-1234567890abcdef", "sk-sim-bravo-fedcba0987654321"
PROJ_A, PROJ_B = "proj_alpha", "proj_bravo"

REPO = Path(__file__).resolve().parents[1]

ID_RE = re.compile(r"^batch_[0-9a-f]{32}$")
FILE_RE = re.compile(r"^file-[0-9A-Za-z]{22}$")
USAGE_KEYS = ["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"]


def fixture_batch_keys() -> list[str]:
    return list(json.loads(FIXTURE.read_text())["data"][0])


def post_cutoff_keys() -> list[str]:
    keys = fixture_batch_keys()
    keys.insert(keys.index("endpoint") + 1, "model")
    keys.insert(keys.index("request_counts") + 1, "usage")
    return keys


@pytest.fixture(scope="module")
def hist_org() -> SimulatedOrg:
    """Two projects with 200 days of history; read-only for the tests that use it."""
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=11)
    org.generate_history(1500, project=PROJ_A, days=200)
    org.generate_history(300, project=PROJ_B, days=200)
    return org


@pytest.fixture(scope="module")
def hist_server(hist_org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(hist_org) as srv:
        yield srv


@pytest.fixture
def live() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    """A fresh org (manual clock) and server, for tests that move time or inject faults."""
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=5)
    with SimulatorServer(org) as srv:
        yield org, srv


def client(server: SimulatorServer, key: str | None = KEY_A, **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.base_url, headers=headers, **kw)


def list_all(c: httpx.Client, limit: int = 100) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = c.get("/batches", params=params).raise_for_status().json()
        out.extend(page["data"])
        if not page["has_more"] or not page["data"]:
            return out
        params["after"] = page["last_id"]


def get_batch(c: httpx.Client, batch_id: str) -> dict[str, Any]:
    r = c.get(f"/batches/{batch_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# ---------------------------------------------------------------------------------------------- shape


def test_envelope_headers_and_field_order_match_the_recorded_page(hist_server: SimulatorServer) -> None:
    with client(hist_server) as c:
        r = c.get("/batches")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"req_[0-9a-f]{32}", r.headers["x-request-id"])
    assert r.headers["openai-project"] == PROJ_A
    assert r.headers["openai-organization"].startswith("org-sim")
    page = r.json()
    recorded = ["object", "data", "first_id", "last_id", "has_more"]
    if FIXTURE.exists():
        recorded = list(json.loads(FIXTURE.read_text()))
    assert list(page) == recorded
    assert page["object"] == "list" and page["has_more"] is True
    assert len(page["data"]) == 20  # the default limit
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    for b in page["data"]:
        assert list(b) == post_cutoff_keys()
        assert list(b["request_counts"]) == ["total", "completed", "failed"]
        assert list(b["usage"]) == USAGE_KEYS
    # Explicit nulls, pretty-printed like the real API.
    assert '"error_file_id": null' in r.text or '"output_file_id": null' in r.text


def test_pre_cutoff_batches_lack_usage_and_model(hist_org: SimulatedOrg) -> None:
    batches = hist_org.batches(PROJ_A)
    before = [b for b in batches if b["created_at"] < USAGE_CUTOFF]
    after = [b for b in batches if b["created_at"] >= USAGE_CUTOFF]
    assert before and after
    for b in before:
        assert list(b) == fixture_batch_keys()
    for b in after:
        assert list(b) == post_cutoff_keys()
        u = b["usage"]
        assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
        assert 0 <= u["input_tokens_details"]["cached_tokens"] <= u["input_tokens"]
        assert 0 <= u["output_tokens_details"]["reasoning_tokens"] <= u["output_tokens"]
        if b["model"] not in ("o4-mini-2025-04-16", "gpt-5-mini-2025-08-07"):
            assert u["output_tokens_details"]["reasoning_tokens"] == 0
        if b["endpoint"] == "/v1/embeddings":
            assert u["output_tokens"] == 0 and b["model"] == "text-embedding-3-small"


def test_ids_files_metadata_and_workload_are_realistic(hist_org: SimulatedOrg) -> None:
    batches = hist_org.batches()
    assert len(batches) == 1800
    for b in batches:
        assert ID_RE.match(b["id"]) and int(b["id"][6:14], 16) == b["created_at"]
        assert FILE_RE.match(b["input_file_id"])
        for f in ("output_file_id", "error_file_id"):
            assert b[f] is None or FILE_RE.match(b[f])
        assert b["expires_at"] == b["created_at"] + 86400
        assert b["completion_window"] == "24h"
        md = b["metadata"]
        assert md is None or (
            0 < len(md) <= 16
            and all(isinstance(k, str) and isinstance(v, str) and len(v) <= 512 for k, v in md.items())
        )
        rc = b["request_counts"]
        assert rc["completed"] + rc["failed"] <= rc["total"] <= 50_000
    status = Counter(b["status"] for b in batches)
    n = len(batches)
    assert 0.85 < status["completed"] / n < 0.96
    assert 0.02 < status["failed"] / n < 0.09
    assert status["expired"] and status["cancelled"]
    assert 0.35 < sum(b["metadata"] is not None for b in batches) / n < 0.65
    assert {b["endpoint"] for b in batches} >= {"/v1/chat/completions", "/v1/responses", "/v1/embeddings"}
    all_failed = [b for b in batches if b["status"] == "completed" and b["request_counts"]["completed"] == 0]
    assert all(b["output_file_id"] is None and b["error_file_id"] for b in all_failed)
    assert len({b["id"] for b in batches}) == n
    # Bursts of submissions share a created_at: the id breaks the tie.
    assert max(Counter(b["created_at"] for b in batches).values()) > 1


def test_same_seed_and_clock_give_the_same_batches() -> None:
    def make(seed: int) -> list[dict[str, Any]]:
        org = SimulatedOrg(clock=SimClock(T0), seed=seed)
        org.generate_history(300, days=30)
        org.create_batch(outcome="failed")
        return org.batches()

    assert make(3) == make(3)
    assert make(3) != make(4)


def test_org_helpers_projects_overrides_and_out_of_order_creation() -> None:
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=2)
    assert org.keys == {KEY_A: PROJ_A, KEY_B: PROJ_B}
    assert org.project_of_key(KEY_B) == PROJ_B and org.project_of_key("sk-x") is None
    org.generate_history(1001, days=10, open_fraction=0.3)  # split over both projects
    assert (org.count(PROJ_A), org.count(PROJ_B)) == (501, 500)
    open_share = sum(b["status"] in ("validating", "in_progress", "finalizing", "cancelling") for b in org.batches())
    assert 0.2 < open_share / 1001 < 0.4
    # Created in the past, the batch lands at its place in the newest-first order.
    old = org.create_batch(project=PROJ_B, created_at=T0 - 5 * 86400, outcome="completed")
    ids = [b["id"] for b in org.batches(PROJ_B)]
    keys = [(b["created_at"], b["id"]) for b in org.batches(PROJ_B)]
    assert old in ids and keys == sorted(keys, reverse=True)
    assert (org.get(old) or {}).get("status") == "completed"
    assert org.list_page(PROJ_B, limit=1, after=ids[ids.index(old) - 1])["data"][0]["id"] == old
    new = org.create_batch(project=PROJ_A, endpoint="/v1/embeddings", metadata=None)
    b = org.get(new)
    assert b is not None and b["status"] == "validating" and b["model"] == "text-embedding-3-small"
    assert b["metadata"] is None and org.get(new, PROJ_B) is None
    with pytest.raises(TypeError):
        org.create_batch(colour="red")
    with pytest.raises(ValueError):
        org.generate_history(1, project="proj_nope")
    with pytest.raises(KeyError):
        org.cancel("batch_00000000000081900000000000000000")


# ---------------------------------------------------------------------------------------------- paging


def test_paging_with_after_returns_every_batch_once_newest_first(
    hist_org: SimulatedOrg, hist_server: SimulatorServer
) -> None:
    with client(hist_server) as c:
        got = list_all(c, limit=37)
    ids = [b["id"] for b in got]
    assert ids == [b["id"] for b in hist_org.batches(PROJ_A)]
    assert len(set(ids)) == len(ids) == 1500
    keys = [(b["created_at"], b["id"]) for b in got]
    assert keys == sorted(keys, reverse=True)


def test_limit_bounds_and_validation(hist_server: SimulatorServer) -> None:
    with client(hist_server) as c:
        assert len(c.get("/batches", params={"limit": 1}).json()["data"]) == 1
        assert len(c.get("/batches", params={"limit": 100}).json()["data"]) == 100
        for bad in ("0", "101", "-3", "abc", "2.5"):
            r = c.get("/batches", params={"limit": bad})
            assert r.status_code == 400, bad
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and err["param"] == "limit"
            assert set(err) == {"message", "type", "param", "code"}


def test_unknown_or_foreign_after_gives_an_empty_page(hist_org: SimulatedOrg, hist_server: SimulatorServer) -> None:
    foreign = hist_org.batches(PROJ_B)[0]["id"]
    with client(hist_server) as c:
        for after in (foreign, "batch_00000000000081900000000000000000", "nonsense"):
            page = c.get("/batches", params={"after": after}).json()
            assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
        last = list_all(c)[-1]["id"]
        page = c.get("/batches", params={"after": last}).json()
        assert page["data"] == [] and page["has_more"] is False


# ---------------------------------------------------------------------------------------------- auth


def test_auth_errors_and_project_scoping(hist_org: SimulatedOrg, hist_server: SimulatorServer) -> None:
    with client(hist_server, key=None) as c:
        r = c.get("/batches")
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["message"].startswith("You didn't provide an API key.")
        assert err["type"] == "invalid_request_error" and err["param"] is None and err["code"] is None
        assert "openai-project" not in r.headers
    wrong = "sk-proj-THISISAVERYSECRETKEYTHATMUSTNOTLEAK1234"
    with client(hist_server, key=wrong) as c:
        r = c.get("/batches")
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["code"] == "invalid_api_key"
        assert err["message"].startswith("Incorrect API key provided: sk-proj-")
        assert wrong not in err["message"] and wrong not in r.text and "1234" in err["message"]
    with client(hist_server, key="tiny") as c:
        assert "tiny" not in c.get("/batches").text

    with client(hist_server, key=KEY_B) as c:
        b_ids = [b["id"] for b in list_all(c)]
        assert c.get("/batches").headers["openai-project"] == PROJ_B
        a_id = hist_org.batches(PROJ_A)[0]["id"]
        r = c.get(f"/batches/{a_id}")
        assert r.status_code == 404
        assert r.json()["error"] == {
            "message": f"No batch found with id '{a_id}'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    assert b_ids == [b["id"] for b in hist_org.batches(PROJ_B)]
    assert not set(b_ids) & {b["id"] for b in hist_org.batches(PROJ_A)}


def test_get_by_id_unknown_ids_and_paths(hist_org: SimulatedOrg, hist_server: SimulatorServer) -> None:
    with client(hist_server) as c:
        first = c.get("/batches", params={"limit": 5}).json()["data"][3]
        assert get_batch(c, first["id"]) == first == hist_org.get(first["id"])
        for bad in ("batch_ffffffff000081900000000000000000", "not-an-id"):
            r = c.get(f"/batches/{bad}")
            assert r.status_code == 404 and r.json()["error"]["message"] == f"No batch found with id '{bad}'."
        r = c.get("/files")
        assert r.status_code == 404 and r.json()["error"]["message"] == "Invalid URL (GET /v1/files)"
    assert [r.status for r in hist_server.requests[-4:]] == [200, 404, 404, 404]
    assert hist_server.requests[-1].project == PROJ_A and hist_server.requests[-1].path == "/v1/files"


# ---------------------------------------------------------------------------------------------- lifecycle


def test_lifecycle_validating_in_progress_finalizing_completed(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    bid = org.create_batch(
        outcome="completed",
        model="gpt-5-mini-2025-08-07",
        total_requests=1000,
        validating_seconds=10,
        processing_seconds=1000,
        finalizing_seconds=30,
        failed_fraction=0.0,
        metadata={"job": "nightly"},
    )
    with client(srv) as c:
        b = get_batch(c, bid)
        assert b["status"] == "validating" and b["in_progress_at"] is None
        assert b["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
        assert b["usage"]["total_tokens"] == 0 and b["output_file_id"] is None
        assert b["model"] == "gpt-5-mini-2025-08-07" and b["endpoint"] in ("/v1/chat/completions", "/v1/responses")
        assert b["metadata"] == {"job": "nightly"}

        org.advance(10)
        b = get_batch(c, bid)
        assert b["status"] == "in_progress" and b["in_progress_at"] == b["created_at"] + 10
        assert b["request_counts"]["total"] == 1000 and b["request_counts"]["completed"] == 0

        seen = []
        for _ in range(4):
            org.advance(200)
            b = get_batch(c, bid)
            assert b["status"] == "in_progress" and b["request_counts"]["total"] == 1000
            seen.append((b["request_counts"]["completed"], b["usage"]["total_tokens"]))
        assert seen == sorted(seen) and 0 < seen[0][0] < seen[-1][0] < 1000
        assert seen[-1][1] > 0 and b["usage"]["output_tokens_details"]["reasoning_tokens"] > 0

        org.advance(200)
        b = get_batch(c, bid)
        assert b["status"] == "finalizing" and b["finalizing_at"] == b["in_progress_at"] + 1000
        assert b["request_counts"]["completed"] == 1000 and b["completed_at"] is None

        org.advance(30)
        b = get_batch(c, bid)
        assert b["status"] == "completed" and b["completed_at"] == b["finalizing_at"] + 30
        assert FILE_RE.match(b["output_file_id"]) and b["error_file_id"] is None
        assert b["errors"] is None and b["failed_at"] is None


def test_lifecycle_failed_validation(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    ids = [org.create_batch(outcome="failed", validating_seconds=5) for _ in range(20)]
    org.advance(5)
    with client(srv) as c:
        for bid in ids:
            b = get_batch(c, bid)
            assert b["status"] == "failed" and b["failed_at"] == b["created_at"] + 5
            assert b["in_progress_at"] is None and b["output_file_id"] is None and b["error_file_id"] is None
            assert b["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
            assert b["usage"]["total_tokens"] == 0
            data = b["errors"]["data"]
            assert b["errors"]["object"] == "list" and data
            for e in data:
                assert list(e) == ["code", "line", "message", "param"]
                assert isinstance(e["code"], str) and isinstance(e["message"], str)
                assert e["line"] is None or isinstance(e["line"], int)
                assert e["param"] is None or isinstance(e["param"], str)


def test_lifecycle_expiry_all_failed_and_cancel(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    expiring = org.create_batch(outcome="expired", total_requests=5000, validating_seconds=2)
    all_failed = org.create_batch(
        outcome="all_failed", total_requests=40, validating_seconds=1, processing_seconds=60, finalizing_seconds=5
    )
    running = org.create_batch(outcome="completed", total_requests=100, validating_seconds=1, processing_seconds=1000)
    early = org.create_batch(outcome="completed", validating_seconds=900)
    with client(srv) as c:
        org.advance(500)
        assert get_batch(c, running)["status"] == "in_progress"
        org.cancel(running)
        org.cancel(early)
        b = get_batch(c, running)
        assert b["status"] == "cancelling" and b["cancelling_at"] == b["created_at"] + 500
        frozen = b["request_counts"]
        assert 0 < frozen["completed"] + frozen["failed"] < 100
        assert get_batch(c, early)["status"] == "cancelling"

        b = get_batch(c, all_failed)
        assert b["status"] == "completed" and b["output_file_id"] is None and FILE_RE.match(b["error_file_id"])
        assert b["request_counts"] == {"total": 40, "completed": 0, "failed": 40}

        org.advance(600)
        b = get_batch(c, running)
        assert b["status"] == "cancelled" and b["cancelled_at"] - b["cancelling_at"] <= 600
        assert b["request_counts"] == frozen and b["completed_at"] is None and b["finalizing_at"] is None
        b = get_batch(c, early)
        assert b["status"] == "cancelled" and b["in_progress_at"] is None
        with pytest.raises(ValueError):
            org.cancel(running)

        org.advance(86400 - 1100)  # exactly at expires_at: not expired yet
        b = get_batch(c, expiring)
        assert b["status"] == "in_progress" and b["expired_at"] is None
        org.advance(1800)
        b = get_batch(c, expiring)
        assert b["status"] == "expired" and b["expired_at"] > b["expires_at"]
        rc = b["request_counts"]
        assert rc["total"] == 5000 and rc["completed"] + rc["failed"] < 5000
        assert b["error_file_id"] is not None and b["finalizing_at"] is None


def test_arrivals_are_deterministic_whatever_the_reading_pattern() -> None:
    def run(step: float) -> list[dict[str, Any]]:
        org = SimulatedOrg(clock=SimClock(T0), seed=9)
        org.set_arrival_rate(120)
        for _ in range(int(7200 / step)):
            org.advance(step)
            org.count()
        return org.batches()

    once, often = run(7200), run(60)
    assert once == often
    assert 160 < len(once) < 320
    assert all(T0 <= b["created_at"] <= T0 + 7200 for b in once)
    assert any(b["status"] not in ("completed", "failed", "expired", "cancelled") for b in once)


def test_realtime_clock_moves_and_manual_clock_does_not() -> None:
    fast = SimClock(T0, realtime=True, speed=1000)
    manual = SimClock(T0)
    time.sleep(0.01)
    assert fast.now() >= T0 + 5 and manual.now() == T0
    manual.advance(3)
    assert manual.now() == T0 + 3
    with pytest.raises(ValueError):
        manual.advance(-1)


# ---------------------------------------------------------------------------------------------- faults


def test_injected_faults(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    org.generate_history(50, days=5)
    srv.inject(
        Fault("429", retry_after=0.25, should_retry=True),
        Fault("502-html"),
        Fault("truncated-json"),
        Fault("non-json"),
        Fault("empty-body"),
        Fault("insufficient_quota"),
        Fault("503", count=2),
    )
    with client(srv) as c:
        r = c.get("/batches")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["retry-after"] == "0.25" and r.headers["retry-after-ms"] == "250"
        assert r.headers["x-should-retry"] == "true"
        r = c.get("/batches")
        assert r.status_code == 502 and r.headers["content-type"].startswith("text/html") and "<html>" in r.text
        r = c.get("/batches")
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
        r = c.get("/batches")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        r = c.get("/batches")
        assert r.status_code == 200 and r.content == b""
        r = c.get("/batches")
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
        assert "retry-after" not in r.headers
        assert [c.get("/batches").status_code for _ in range(3)] == [503, 503, 200]
    assert [r.fault for r in srv.requests] == [
        "429", "502-html", "truncated-json", "non-json", "empty-body", "insufficient_quota", "503", "503", None,
    ]  # fmt: skip


def test_timeout_fault_drops_the_connection_and_path_prefix_filters(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    srv.inject(Fault("timeout", delay=0.3, path_prefix="/v1/batches/"), Fault("slow", delay=0.2))
    with client(srv, timeout=5) as c:
        t = time.perf_counter()
        assert c.get("/batches").status_code == 200  # "slow" applies; the timeout's prefix does not match
        assert time.perf_counter() - t >= 0.2
        t = time.perf_counter()
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/batches/batch_00000000000081900000000000000000")
        assert time.perf_counter() - t >= 0.3
    srv.inject(Fault("timeout", delay=1.0))
    with client(srv, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.get("/batches")
    assert srv.requests[1].status == 0 and srv.requests[1].fault == "timeout"


def test_random_fault_rate_and_latency(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    srv.fault_rate = 0.5
    with client(srv) as c:
        codes = [c.get("/batches").status_code for _ in range(40)]
    assert 8 < sum(code != 200 for code in codes) < 32
    assert set(codes) <= {200, 429, 500, 502, 503}
    srv.fault_rate = 0.0
    srv.latency = 0.1
    srv.reset_requests()
    with client(srv) as c:
        t = time.perf_counter()
        assert c.get("/batches").status_code == 200
        assert time.perf_counter() - t >= 0.1
    assert len(srv.requests) == 1


# ---------------------------------------------------------------------------------------------- official SDK


def test_official_sdk_auto_pages_retrieves_and_retries(hist_org: SimulatedOrg, hist_server: SimulatorServer) -> None:
    sdk = openai.OpenAI(api_key=KEY_A, base_url=hist_server.base_url, max_retries=2)
    hist_server.inject(Fault("429", retry_after=0.01))  # the SDK honours retry-after-ms and retries
    ids = [b.id for b in sdk.batches.list(limit=100)]
    assert ids == [b["id"] for b in hist_org.batches(PROJ_A)]
    assert len(set(ids)) == len(ids) == 1500
    latest = hist_org.batches(PROJ_A)[0]
    got = sdk.batches.retrieve(latest["id"])
    assert got.id == latest["id"] and got.status == latest["status"] and got.created_at == latest["created_at"]
    assert got.request_counts is not None and got.request_counts.total == latest["request_counts"]["total"]
    with pytest.raises(openai.NotFoundError):
        sdk.batches.retrieve(hist_org.batches(PROJ_B)[0]["id"])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="sk-nope", base_url=hist_server.base_url, max_retries=0).batches.list()


def test_official_sdk_create_and_cancel(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    sdk = openai.OpenAI(api_key=KEY_B, base_url=srv.base_url, max_retries=0)
    created = sdk.batches.create(
        input_file_id="file-abc", endpoint="/v1/embeddings", completion_window="24h", metadata={"team": "x"}
    )
    assert created.status == "validating" and created.input_file_id == "file-abc" and created.metadata == {"team": "x"}
    assert org.get(created.id) is not None and org.batches(PROJ_A) == []
    cancelled = sdk.batches.cancel(created.id)
    assert cancelled.status == "cancelling"


# ---------------------------------------------------------------------------------------------- scale and CLI


def test_hundred_thousand_batches_generate_fast_and_page_in_milliseconds() -> None:
    org = SimulatedOrg(clock=SimClock(T0), seed=1)
    t = time.perf_counter()
    org.generate_history(100_000, days=365)
    assert time.perf_counter() - t < 10
    page = org.list_page(limit=100)
    t = time.perf_counter()
    for _ in range(20):
        deep = org.list_page(limit=100, after=page["last_id"])
    assert (time.perf_counter() - t) / 20 < 0.05
    assert deep["data"][0]["created_at"] <= page["data"][-1]["created_at"] and deep["has_more"]


def test_simulate_command_serves_until_interrupted() -> None:
    with simulate_command("--batches", "300", "--projects", "2") as (proc, lines):
        (base_url,) = printed(lines, "OPENAI_BASE_URL")
        keys = printed(lines, "OPENAI_API_KEY")
        assert len(keys) == 2
        total = 0
        for key in keys:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as c:
                total += len(list_all(c))
        assert total == 300
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
