"""The simulator's batch files (`GET /v1/files/{id}` and `/content`), over real HTTP, against the ledger's rules.

Lines are read the way a ledger reads them (``ledger_view`` below, written from the API reference, not
from the simulator's code) and compared with the batch objects and with ``request_truth``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from openai_batches.simulator import (
    CONTENT_MARKER,
    CONTENT_MARKER_NUMBER,
    CONTENT_MARKER_NUMBER_TEXT,
    USAGE_CUTOFF,
    Fault,
    SimClock,
    SimulatedOrg,
    SimulatorServer,
)
from openai_batches.simulator.batch_requests import MISSING, OK, OUTPUT_ERROR, UNRUN, ZERO_STATUS, RequestPlan
from openai_batches.simulator.workload import usage_totals

from .support.workload import CHAT, COMPLETIONS, DAY, EMBEDDINGS, ENDPOINTS, MODEL_OF, MODERATIONS, NO_QUIRKS, RESPONSES

NOW = 1_793_491_200  # 2026-11-01T00:00:00Z
KEY_A, KEY_B = "sk-files-alpha-0123456789", "sk-files-bravo-9876543210"
PROJ_A, PROJ_B = "proj_alpha", "proj_bravo"
REPO = Path(__file__).resolve().parents[1]

NOT_FOUND_KEYS = {"message", "type", "param", "code"}


def new_org(seed: int = 21) -> SimulatedOrg:
    return SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(NOW), seed=seed)


def finished(org: SimulatedOrg, *, days_ago: float = 2, project: str | None = None, **overrides: Any) -> str:
    """A batch created ``days_ago`` (terminal by now unless it is younger than a day)."""
    timing = {"validating_seconds": 5, "processing_seconds": 900, "finalizing_seconds": 30}
    return org.create_batch(project=project, created_at=org.clock.now() - days_ago * DAY, **{**timing, **overrides})


@pytest.fixture
def sim() -> Iterator[tuple[SimulatedOrg, SimulatorServer, httpx.Client]]:
    org = new_org()
    with SimulatorServer(org) as srv, client(srv) as c:
        yield org, srv, c


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    """One server for the read-only tests; they add their own batches to it."""
    org = new_org(seed=33)
    with SimulatorServer(org) as srv:
        yield org, srv


def client(server: SimulatorServer, key: str = KEY_A) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def content(c: httpx.Client, file_id: str) -> bytes:
    r = c.get(f"/files/{file_id}/content")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["content-length"]) == len(r.content)
    return r.content


def jsonl(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    return [json.loads(line) for line in raw.splitlines()]


def family(endpoint: str) -> str:
    return {CHAT: "chat", RESPONSES: "responses", COMPLETIONS: "completions", EMBEDDINGS: "emb", MODERATIONS: "mod"}[
        endpoint
    ]


def ledger_view(line: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """What a ledger records of one output/error line, normalised across endpoints (the ledger's columns)."""
    out: dict[str, Any] = {"custom_id": line["custom_id"], "line_id": line["id"]}
    resp = line["response"]
    if resp is None:
        out.update(status_code=None, request_id=None, response_id=None, model=None, tokens=(None,) * 4)
        out.update(error_code=line["error"]["code"], error_message=line["error"]["message"])
        return out
    body = resp["body"]
    out.update(status_code=resp["status_code"], request_id=resp["request_id"])
    if 200 <= resp["status_code"] < 300:
        u = body.get("usage")
        fam = family(endpoint)
        if fam in ("chat", "completions"):
            tokens: tuple[int | None, ...] = (
                u["prompt_tokens"],
                u["prompt_tokens_details"]["cached_tokens"],
                u["completion_tokens"],
                u["completion_tokens_details"]["reasoning_tokens"],
            )
            assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        elif fam == "responses":
            tokens = (
                u["input_tokens"],
                u["input_tokens_details"]["cached_tokens"],
                u["output_tokens"],
                u["output_tokens_details"]["reasoning_tokens"],
            )
            assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
        elif fam == "emb":
            tokens = (u["prompt_tokens"], None, 0, None)
            assert u["total_tokens"] == u["prompt_tokens"]
        else:
            assert u is None
            tokens = (None,) * 4
        out.update(response_id=body.get("id"), model=body["model"], tokens=tokens, error_code=None, error_message=None)
    else:
        error = body.get("error") or {}
        out.update(response_id=None, model=None, tokens=(None,) * 4)
        out.update(error_code=error.get("code"), error_message=error.get("message"))
    return out


def read_batch(c: httpx.Client, bid: str) -> dict[str, Any]:
    """The batch object and its files, read over HTTP: {"batch", "input", "output", "error"}."""
    batch = c.get(f"/batches/{bid}").json()
    out: dict[str, Any] = {"batch": batch, "output": [], "error": []}
    for kind in ("input", "output", "error"):
        file_id = batch[f"{kind}_file_id"]
        if file_id:
            raw = content(c, file_id)
            meta = c.get(f"/files/{file_id}").json()
            assert meta["bytes"] == len(raw)
            out[kind] = jsonl(raw)
    return out


def token_sums(views: list[dict[str, Any]]) -> list[int]:
    ok = [v["tokens"] for v in views if v["status_code"] is not None and 200 <= v["status_code"] < 300]
    return [sum(t[i] or 0 for t in ok) for i in range(4)]


# ---------------------------------------------------------------------- consistency with the batch object
@pytest.mark.parametrize("outcome", ["completed", "expired", "cancelled", "all_failed"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_files_agree_with_the_batch_object(shared: tuple[SimulatedOrg, SimulatorServer], endpoint: str, outcome: str):
    org, srv = shared
    bid = finished(
        org, endpoint=endpoint, model=MODEL_OF[endpoint], outcome=outcome, total_requests=300, failed_fraction=0.1,
        **NO_QUIRKS,
    )  # fmt: skip
    with client(srv) as c:
        got = read_batch(c, bid)
    batch = got["batch"]
    counts = batch["request_counts"]
    assert batch["status"] == ("completed" if outcome == "all_failed" else outcome)
    inputs = [line["custom_id"] for line in got["input"]]
    assert len(inputs) == 300 and len(set(inputs)) == 300
    if batch["in_progress_at"] is None:
        # Cancelled while validating (the simulator's share: 1 in 10; which one this test draws depends on the order
        # the shared org's batches are created in, so on how xdist spreads the tests): it never ran, no counts,
        # no files.
        assert outcome == "cancelled" and batch["cancelled_at"] is not None
        assert counts == {"total": 0, "completed": 0, "failed": 0}
        assert batch["output_file_id"] is None and batch["error_file_id"] is None
        return
    assert counts["total"] == 300
    assert all(line["url"] == endpoint and line["method"] == "POST" for line in got["input"])

    out = [ledger_view(line, endpoint) for line in got["output"]]
    err = [ledger_view(line, endpoint) for line in got["error"]]
    assert len(out) == counts["completed"]
    assert all(v["status_code"] == 200 for v in out)
    failed_lines = [v for v in err if v["status_code"] is not None]
    unrun_lines = [v for v in err if v["status_code"] is None]
    assert len(failed_lines) == counts["failed"]
    assert all(v["status_code"] >= 400 and v["error_message"] for v in failed_lines)
    never_ran = counts["total"] - counts["completed"] - counts["failed"]
    if outcome == "expired" or (outcome == "cancelled" and counts["failed"]):
        assert len(unrun_lines) == never_ran > 0
        assert {v["error_code"] for v in unrun_lines} == {f"batch_{outcome}"}
    else:
        assert unrun_lines == []
    in_files = [v["custom_id"] for v in out + err]
    assert len(in_files) == len(set(in_files)) and set(in_files) <= set(inputs)

    if counts["completed"]:
        assert batch["output_file_id"]
        if len(out) >= 20:  # real files are not in input order
            assert [v["custom_id"] for v in out] != [c for c in inputs if c in {v["custom_id"] for v in out}]
        assert {v["model"] for v in out} == {
            "omni-moderation-2024-09-26" if endpoint == MODERATIONS else MODEL_OF[endpoint]
        }
        usage = batch["usage"]
        expected = [
            usage["input_tokens"],
            usage["input_tokens_details"]["cached_tokens"],
            usage["output_tokens"],
            usage["output_tokens_details"]["reasoning_tokens"],
        ]
        if endpoint == MODERATIONS:
            assert all(v["tokens"] == (None,) * 4 for v in out)  # moderations report no usage per request
        else:
            assert token_sums(out) == expected and expected[0] > 0
        if endpoint == EMBEDDINGS:
            assert expected[1:] == [0, 0, 0]
    else:
        assert batch["output_file_id"] is None


def test_cancelled_batch_without_failures_leaves_unrun_requests_in_neither_file(sim):
    org, _, c = sim
    bid = finished(org, endpoint=CHAT, outcome="cancelled", total_requests=200, failed_fraction=0.0, **NO_QUIRKS)
    got = read_batch(c, bid)
    counts = got["batch"]["request_counts"]
    assert got["batch"]["error_file_id"] is None and counts["failed"] == 0 and counts["completed"] < 200
    seen = {line["custom_id"] for line in got["output"]}
    missing = [line["custom_id"] for line in got["input"] if line["custom_id"] not in seen]
    assert len(missing) == 200 - counts["completed"]
    truth = {t.custom_id: t for t in org.request_truth(bid)}
    assert {cid for cid, t in truth.items() if t.outcome == "missing"} == set(missing)
    assert {truth[cid].role for cid in missing} == {UNRUN}


def test_batches_before_the_usage_cutoff_still_carry_usage_per_request():
    org = SimulatedOrg(projects={KEY_A: PROJ_A}, clock=SimClock(USAGE_CUTOFF), seed=2)
    bid = org.create_batch(
        created_at=USAGE_CUTOFF - 5 * DAY, endpoint=CHAT, model=MODEL_OF[CHAT], outcome="completed",
        total_requests=120, failed_fraction=0.0, processing_seconds=600, **NO_QUIRKS,
    )  # fmt: skip
    with SimulatorServer(org) as srv, client(srv) as c:
        got = read_batch(c, bid)
    assert "usage" not in got["batch"] and "model" not in got["batch"]
    views = [ledger_view(line, CHAT) for line in got["output"]]
    src = org.batch_source(bid)
    assert src is not None
    totals = usage_totals(120, src.tin, src.tout, src.cfrac, src.rfrac)
    assert token_sums(views) == list(totals) and totals[0] > 0
    assert all(v["tokens"][0] >= 1 and v["tokens"][2] >= 1 for v in views)


# ---------------------------------------------------------------------- what users report
def test_reported_quirks_are_reachable_by_overrides(sim):
    org, _, c = sim
    bid = finished(
        org, endpoint=RESPONSES, model=MODEL_OF[RESPONSES], outcome="completed", total_requests=400,
        failed_fraction=0.05, missing_requests=3, zero_status_requests=2, output_error_requests=4,
    )  # fmt: skip
    got = read_batch(c, bid)
    counts = got["batch"]["request_counts"]
    assert counts == {"total": 400, "completed": 380, "failed": 20}
    out = [ledger_view(line, RESPONSES) for line in got["output"]]
    statuses = Counter(v["status_code"] for v in out)
    assert statuses[0] == 2 and sum(n for s, n in statuses.items() if s not in (0, 200)) == 4
    assert len(out) == counts["completed"] - 3  # "completed, yet some requests are missing"
    assert len(got["error"]) == counts["failed"]
    in_files = {v["custom_id"] for v in out} | {line["custom_id"] for line in got["error"]}
    assert len([line for line in got["input"] if line["custom_id"] not in in_files]) == 3
    usage = got["batch"]["usage"]
    assert token_sums(out)[0] == usage["input_tokens"] and token_sums(out)[2] == usage["output_tokens"]


def test_quirks_are_clamped_so_that_usage_has_a_line_to_land_on(sim):
    org, _, c = sim
    bid = finished(org, endpoint=CHAT, outcome="completed", total_requests=5, failed_fraction=0.0, missing_requests=50)
    got = read_batch(c, bid)
    assert len(got["output"]) == 1
    assert token_sums([ledger_view(got["output"][0], CHAT)])[0] == got["batch"]["usage"]["input_tokens"]


@pytest.mark.slow  # a 4,000-batch history with every file generated
def test_generated_history_shows_every_reported_quirk_at_small_rates():
    org = new_org(seed=5)
    org.generate_history(4000, project=PROJ_A, days=90)
    roles: Counter[int] = Counter()
    quirky = Counter[str]()
    short_retention = big = 0
    for batch in org.batches(PROJ_A):
        if batch["status"] not in ("completed", "expired", "cancelled"):
            continue
        src = org.batch_source(batch["id"])
        assert src is not None
        plan = RequestPlan(src)
        m, z, x = plan.quirks
        quirky.update(missing=m > 0, zero=z > 0, output_errors=x > 0)
        roles.update(plan.roles.tolist())
        short_retention += plan.retention_s < 30 * DAY
        big += src.endpoint == EMBEDDINGS and plan.n * 1536 * 20 > 300e6
    n = sum(1 for b in org.batches(PROJ_A) if b["status"] in ("completed", "expired", "cancelled"))
    for name in ("missing", "zero", "output_errors"):
        assert 0 < quirky[name] < 0.03 * n, (name, quirky[name], n)
    assert roles[MISSING] and roles[ZERO_STATUS] and roles[OUTPUT_ERROR] and roles[UNRUN] and roles[OK]
    assert 0 < short_retention < 0.1 * n
    assert big > 0  # embedding batches with files of several hundred MB


def test_a_natural_embeddings_file_of_several_hundred_mb_is_sized_without_being_rendered():
    org = new_org(seed=5)
    org.generate_history(4000, project=PROJ_A, days=90)
    candidates = [
        b for b in org.batches(PROJ_A) if b["endpoint"] == EMBEDDINGS and b["status"] == "completed"
        and b["request_counts"]["completed"] > 9000
    ]  # fmt: skip
    assert candidates
    info = {f.kind: f for f in org.files.batch_files(candidates[0]["id"])}
    assert info["output"].bytes > 300e6 and info["output"].lines == candidates[0]["request_counts"]["completed"]


# ---------------------------------------------------------------------- ground truth
@pytest.mark.parametrize(
    ("endpoint", "outcome"),
    [(CHAT, "completed"), (RESPONSES, "expired"), (COMPLETIONS, "cancelled"), (EMBEDDINGS, "completed"),
     (MODERATIONS, "expired"), (CHAT, "all_failed")],
)  # fmt: skip
def test_request_truth_equals_the_files_request_by_request(sim, endpoint: str, outcome: str):
    org, _, c = sim
    bid = finished(
        org, endpoint=endpoint, model=MODEL_OF[endpoint], outcome=outcome, total_requests=700,
        failed_fraction=0.08, missing_requests=2, zero_status_requests=2, output_error_requests=3,
    )  # fmt: skip
    got = read_batch(c, bid)
    truth_iter = org.request_truth(bid)
    assert iter(truth_iter) is truth_iter  # an iterator, not a list
    truth = list(truth_iter)
    assert [t.custom_id for t in truth if t.file == "output"] == [line["custom_id"] for line in got["output"]]
    assert [t.custom_id for t in truth if t.file == "error"] == [line["custom_id"] for line in got["error"]]
    assert sorted(t.custom_id for t in truth) == sorted(line["custom_id"] for line in got["input"])
    views = {line["custom_id"]: ledger_view(line, endpoint) for line in got["output"] + got["error"]}
    for t in truth:
        if t.file == "missing":
            assert t.custom_id not in views and t.outcome == "missing"
            continue
        v = views[t.custom_id]
        tokens = (t.input_tokens, t.cached_tokens, t.output_tokens, t.reasoning_tokens)
        mine = (t.line_id, t.status_code, t.request_id, t.response_id, t.model, tokens, t.error_code, t.error_message)
        theirs = tuple(
            v[k]
            for k in (
                "line_id", "status_code", "request_id", "response_id", "model", "tokens", "error_code", "error_message",
            )
        )  # fmt: skip
        assert mine == theirs, t.custom_id
        expected_outcome = (
            "succeeded" if t.file == "output" and v["status_code"] == 200
            else (v["error_code"] or "").removeprefix("batch_") if v["status_code"] is None
            else "failed"
        )  # fmt: skip
        assert t.outcome == expected_outcome
    counts = got["batch"]["request_counts"]
    outcomes = Counter(t.outcome for t in truth)
    if counts["completed"] >= 10:
        assert outcomes["missing"] >= 2 and outcomes["failed"] >= counts["failed"] + 5


def test_request_truth_for_unknown_open_and_failed_batches(sim):
    org, _, _ = sim
    with pytest.raises(KeyError):
        list(org.request_truth("batch_" + "0" * 32))
    with pytest.raises(ValueError, match="validating"):
        org.request_truth(org.create_batch())
    assert list(org.request_truth(finished(org, outcome="failed"))) == []


# ---------------------------------------------------------------------- content, marker, ids
def test_every_prompt_and_every_successful_body_carries_the_content_marker(shared):
    org, srv = shared
    marker = CONTENT_MARKER.encode()
    for endpoint in ENDPOINTS:
        # A completed batch with failures has all three files; an expired one may have run nothing (how far it
        # got is random), so it adds only its error file, whose batch_expired lines must carry no content either.
        completed = finished(org, endpoint=endpoint, outcome="completed", total_requests=150, failed_fraction=0.1)
        expired = finished(org, endpoint=endpoint, outcome="expired", total_requests=150, failed_fraction=0.1)
        with client(srv) as c:
            batch = c.get(f"/batches/{completed}").json()
            raw = {k: content(c, batch[f"{k}_file_id"]) for k in ("input", "output", "error")}
            if expired_errors := c.get(f"/batches/{expired}").json()["error_file_id"]:
                raw["error"] += content(c, expired_errors)
        for line in raw["input"].splitlines():
            prompt = json.dumps(json.loads(line)["body"])
            assert CONTENT_MARKER in prompt
        for line in raw["output"].splitlines():
            obj = json.loads(line)
            if obj["response"]["status_code"] != 200:
                assert marker not in line
                continue
            body = obj["response"]["body"]
            if endpoint == EMBEDDINGS:
                assert body["data"][0]["embedding"][0] == CONTENT_MARKER_NUMBER
                assert len(body["data"][0]["embedding"]) == 1536
            elif endpoint == MODERATIONS:
                assert body["results"][0]["category_scores"]["harassment"] == CONTENT_MARKER_NUMBER
                assert CONTENT_MARKER_NUMBER_TEXT.encode() in line
            else:
                assert marker in line
        # Error messages are stored by a ledger: they never carry content.
        assert marker not in raw["error"] and CONTENT_MARKER_NUMBER_TEXT.encode() not in raw["error"]


def test_prompts_and_answers_are_valid_json_with_escapes(sim):
    org, _, c = sim
    got = read_batch(c, finished(org, endpoint=CHAT, outcome="completed", total_requests=30, **NO_QUIRKS))
    answer = got["output"][0]["response"]["body"]["choices"][0]["message"]["content"]
    assert answer.startswith(CONTENT_MARKER + ' "sim" café\n')
    prompt = got["input"][0]["body"]["messages"][1]["content"]
    assert prompt.startswith(CONTENT_MARKER) and len(prompt) > 40


def test_long_embedding_vectors_for_large_embedding_models(sim):
    org, _, c = sim
    bid = finished(org, endpoint=EMBEDDINGS, model="text-embedding-3-large", outcome="completed", total_requests=8)
    got = read_batch(c, bid)
    vectors = [line["response"]["body"]["data"][0]["embedding"] for line in got["output"]]
    assert vectors and all(len(v) == 3072 and v[0] == CONTENT_MARKER_NUMBER for v in vectors)


def test_custom_ids_look_like_real_ones_and_are_unique(shared):
    (
        org,
        _,
    ) = shared
    patterns = {
        "job": re.compile(r"^job-\d+-req-\d{5}$"),
        "ticket": re.compile(r"^ticket:\d+$"),
        "uuid": re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        "dataset": re.compile(r"^[a-z_]+_\d{8}_\d+$"),
        "request": re.compile(r"^request-\d+$"),
        "doc": re.compile(r"^[a-z]+:doc-\d+-\d+$"),
    }
    seen: Counter[str] = Counter()
    for _ in range(40):
        bid = finished(org, outcome="completed", total_requests=60, failed_fraction=0.0)
        ids = [t.custom_id for t in org.request_truth(bid)]
        assert len(ids) == len(set(ids)) == 60
        styles = {name for name, p in patterns.items() if all(p.match(i) for i in ids)}
        assert len(styles) == 1, ids[:3]
        seen.update(styles)
    assert len(seen) >= 5


def test_file_metadata_fields_and_dates(sim):
    org, _, c = sim
    bid = finished(org, endpoint=CHAT, outcome="completed", total_requests=50, failed_fraction=0.1, days_ago=3)
    batch = c.get(f"/batches/{bid}").json()
    inp = c.get(f"/files/{batch['input_file_id']}").json()
    out = c.get(f"/files/{batch['output_file_id']}").json()
    err = c.get(f"/files/{batch['error_file_id']}").json()
    keys = ["object", "id", "purpose", "filename", "bytes", "created_at", "expires_at", "status", "status_details"]
    for meta in (inp, out, err):
        assert list(meta) == keys and meta["object"] == "file" and meta["status"] == "processed"
    assert inp["purpose"] == "batch" and out["purpose"] == err["purpose"] == "batch_output"
    assert inp["created_at"] < batch["created_at"] and inp["expires_at"] == inp["created_at"] + 30 * DAY
    assert out["created_at"] == err["created_at"] == batch["completed_at"]
    assert out["expires_at"] == out["created_at"] + 30 * DAY
    assert out["filename"] == f"batch_{bid.removeprefix('batch_')}_output.jsonl" and inp["filename"].endswith(".jsonl")


# ---------------------------------------------------------------------- determinism
def test_same_file_same_bytes_every_time_and_across_identical_orgs():
    digests = []
    for _ in range(2):
        org = new_org(seed=9)
        bid = finished(org, endpoint=RESPONSES, outcome="completed", total_requests=500, failed_fraction=0.1)
        with SimulatorServer(org) as srv, client(srv) as c:
            batch = c.get(f"/batches/{bid}").json()
            files = [batch[f"{k}_file_id"] for k in ("input", "output", "error")]
            first = [hashlib.sha256(content(c, f)).hexdigest() for f in files]
            again = [hashlib.sha256(content(c, f)).hexdigest() for f in files]
        assert first == again
        digests.append((files, first))
    assert digests[0] == digests[1]
    other = new_org(seed=10)
    bid = finished(other, endpoint=RESPONSES, outcome="completed", total_requests=500, failed_fraction=0.1)
    with SimulatorServer(other) as srv, client(srv) as c:
        batch = c.get(f"/batches/{bid}").json()
        assert hashlib.sha256(content(c, batch["output_file_id"])).hexdigest() != digests[0][1][1]


# ---------------------------------------------------------------------- 404s, expiry, scoping
def test_unknown_malformed_and_foreign_files_are_404_like_the_api(sim):
    org, srv, c = sim
    bid = finished(org, total_requests=20, outcome="completed")
    out_id = c.get(f"/batches/{bid}").json()["output_file_id"]
    for file_id in ("file-AAAAAAAAAAAAAAAAAAAAAA", "file-nope", "batch_123", out_id[:-1] + "x"):
        for suffix in ("", "/content"):
            r = c.get(f"/files/{file_id}{suffix}")
            assert r.status_code == 404
            assert r.json() == {
                "error": {
                    "message": f"No such File object: {file_id}",
                    "type": "invalid_request_error",
                    "param": "id",
                    "code": None,
                }
            }
    with client(srv, KEY_B) as other:
        assert other.get(f"/files/{out_id}").status_code == 404
        assert other.get(f"/files/{out_id}/content").status_code == 404
        b_batch = other.get(f"/batches/{finished(org, project=PROJ_B, total_requests=5)}").json()
        assert other.get(f"/files/{b_batch['input_file_id']}").status_code == 200
        assert c.get(f"/files/{b_batch['input_file_id']}").status_code == 404
    with client(srv, "sk-wrong") as bad:
        assert bad.get(f"/files/{out_id}").status_code == 401
    assert c.delete(f"/files/{out_id}").status_code == 404
    assert c.get(f"/files/{out_id}/other").status_code == 404


def test_output_file_of_an_open_batch_does_not_exist_yet():
    """Two orgs with the same seed and history: the older one shows the file id the younger will have."""
    old, young = new_org(seed=4), new_org(seed=4)
    ids = [
        org.create_batch(endpoint=CHAT, outcome="completed", total_requests=10, processing_seconds=600)
        for org in (old, young)
    ]
    assert ids[0] == ids[1]
    old.advance(3 * 3600)
    file_id = old.get(ids[0])["output_file_id"]
    assert file_id and young.get(ids[1])["output_file_id"] is None
    with SimulatorServer(young) as srv, client(srv) as c:
        assert c.get(f"/files/{file_id}").status_code == 404
        assert c.get(f"/files/{young.get(ids[1])['input_file_id']}/content").status_code == 200
        young.advance(3 * 3600)
        assert c.get(f"/files/{file_id}").status_code == 200


def test_files_expire_30_days_after_they_were_written(sim):
    org, _, c = sim
    fresh = c.get(f"/batches/{finished(org, days_ago=20, outcome='completed', total_requests=10)}").json()
    old = c.get(f"/batches/{finished(org, days_ago=40, outcome='completed', total_requests=10)}").json()
    for kind in ("input", "output"):
        assert c.get(f"/files/{old[f'{kind}_file_id']}").status_code == 404
        assert c.get(f"/files/{old[f'{kind}_file_id']}/content").status_code == 404
        assert c.get(f"/files/{fresh[f'{kind}_file_id']}/content").status_code == 200
    assert old["output_file_id"]  # the batch still names it, as the real API does
    meta = c.get(f"/files/{fresh['output_file_id']}").json()
    org.advance(meta["expires_at"] - NOW - 1)
    assert c.get(f"/files/{fresh['output_file_id']}").status_code == 200
    org.advance(1)
    assert c.get(f"/files/{fresh['output_file_id']}").status_code == 404
    assert c.get(f"/files/{fresh['output_file_id']}/content").status_code == 404


def test_output_expires_after_through_the_sdk_and_create_batch(sim):
    org, srv, c = sim
    sdk = openai.OpenAI(api_key=KEY_A, base_url=srv.base_url, max_retries=0)
    created = sdk.batches.create(
        input_file_id="file-uploaded-by-user",
        endpoint=CHAT,
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.status == "validating"
    for bad in (
        {"anchor": "created_at", "seconds": 60},
        {"anchor": "created_at", "seconds": 2_592_001},
        {"anchor": "completed_at", "seconds": 3600},
        {"anchor": "created_at", "seconds": "3600"},
    ):
        with pytest.raises(openai.BadRequestError) as info:
            sdk.batches.create(input_file_id="f", endpoint=CHAT, completion_window="24h", output_expires_after=bad)
        assert info.value.body["param"] == "output_expires_after"  # type: ignore[index]
    with pytest.raises(ValueError, match="between 3600 and 2592000"):
        org.create_batch(output_expires_after={"anchor": "created_at", "seconds": 10})

    # The user's own input file id is served too (the simulator generates its content).
    assert sdk.files.retrieve("file-uploaded-by-user").purpose == "batch"
    while org.get(created.id)["status"] not in ("completed", "expired", "cancelled"):
        org.advance(300)
    batch = sdk.batches.retrieve(created.id)
    assert batch.output_file_id
    meta = sdk.files.retrieve(batch.output_file_id)
    assert meta.expires_at == meta.created_at + 3600
    assert len(sdk.files.content(batch.output_file_id).content) == meta.bytes
    org.advance(meta.expires_at - org.clock.now())  # an hour after it was written, it is gone
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(batch.output_file_id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(batch.output_file_id)

    short = finished(org, days_ago=1 / 24, outcome="completed", total_requests=5, processing_seconds=60,
                     output_expires_after={"anchor": "created_at", "seconds": 4 * 3600})  # fmt: skip
    meta = c.get(f"/files/{c.get(f'/batches/{short}').json()['output_file_id']}").json()
    assert meta["expires_at"] - meta["created_at"] == 4 * 3600


# ---------------------------------------------------------------------- the SDK, faults, control endpoint
def test_official_sdk_retrieves_and_downloads_files(sim):
    org, srv, c = sim
    bid = finished(org, endpoint=EMBEDDINGS, outcome="completed", total_requests=40, failed_fraction=0.1)
    sdk = openai.OpenAI(api_key=KEY_A, base_url=srv.base_url, max_retries=0)
    batch = sdk.batches.retrieve(bid)
    assert batch.output_file_id and batch.error_file_id
    for file_id in (batch.input_file_id, batch.output_file_id, batch.error_file_id):
        meta = sdk.files.retrieve(file_id)
        data = sdk.files.content(file_id).content
        assert meta.id == file_id and meta.bytes == len(data) and data == content(c, file_id)


def test_injected_faults_hit_the_files_endpoints(sim):
    org, srv, c = sim
    file_id = c.get(f"/batches/{finished(org, total_requests=300, outcome='completed')}").json()["output_file_id"]
    whole = content(c, file_id)
    srv.inject(Fault("500", path_prefix="/v1/files"), Fault("429", path_prefix="/v1/files"))
    assert c.get(f"/files/{file_id}").status_code == 500
    assert c.get(f"/files/{file_id}/content").status_code == 429
    assert content(c, file_id) == whole
    srv.inject(Fault("truncated-json", path_prefix="/v1/files"))
    with pytest.raises(httpx.RemoteProtocolError), c.stream("GET", f"/files/{file_id}/content") as r:
        assert int(r.headers["content-length"]) == len(whole)
        b"".join(r.iter_raw())
    assert content(c, file_id) == whole
    seen = [(r.path, r.status, r.fault) for r in srv.requests if r.path.startswith("/v1/files")]
    assert (f"/v1/files/{file_id}", 500, "500") in seen and (
        f"/v1/files/{file_id}/content",
        200,
        "truncated-json",
    ) in seen


def test_control_endpoint_creates_a_file_of_about_the_asked_size():
    org = new_org()
    with SimulatorServer(org, admin=True) as srv, client(srv) as c:
        root = srv.base_url.removesuffix("/v1")
        timing = {"validating_seconds": 1, "processing_seconds": 60, "finalizing_seconds": 1, "outcome": "completed"}
        asked = {CHAT: 3_000_000, EMBEDDINGS: 5_000_000}
        made = {}
        for endpoint, size in asked.items():
            r = httpx.post(f"{root}/_sim/create", params={**timing, "endpoint": endpoint, "output_bytes": size})
            assert r.status_code == 200 and r.json()["created"] == 1
            made[endpoint] = r.json()["ids"][0]
        assert httpx.post(f"{root}/_sim/create", params={"colour": "red"}).status_code == 400
        httpx.post(f"{root}/_sim/advance", params={"seconds": 600})
        for endpoint, bid in made.items():
            meta = c.get(f"/files/{c.get(f'/batches/{bid}').json()['output_file_id']}").json()
            if endpoint == CHAT:
                assert meta["bytes"] == asked[CHAT]  # text answers are sized exactly
            else:
                assert abs(meta["bytes"] - asked[endpoint]) < 0.1 * asked[endpoint]


# ---------------------------------------------------------------------- streaming
def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_300_mb_file_streams_with_flat_server_memory():
    """The server process's peak RSS hardly moves while it serves a 300 MB file: nothing is held whole."""
    size = 300_000_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "openai_batches.simulator", "--port", "0", "--batches", "0", "--admin"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        base = next(line for line in proc.stdout if line.startswith("OPENAI_BASE_URL=")).split("=", 1)[1].strip()
        root = base.removesuffix("/v1")
        params = {"endpoint": CHAT, "output_bytes": size, "outcome": "completed", "processing_seconds": 60}
        bid = httpx.post(f"{root}/_sim/create", params=params).json()["ids"][0]
        httpx.post(f"{root}/_sim/advance", params={"seconds": 600})
        headers = {"Authorization": "Bearer sk-sim-default"}
        file_id = httpx.get(f"{base}/batches/{bid}", headers=headers).json()["output_file_id"]
        assert httpx.get(f"{base}/files/{file_id}", headers=headers).json()["bytes"] == size
        before = _vm_hwm_mb(proc.pid)
        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
        conn.request("GET", f"{url.path}/files/{file_id}/content", headers=headers)
        resp = conn.getresponse()
        assert int(resp.getheader("content-length") or 0) == size
        buf = memoryview(bytearray(1 << 20))
        got = 0
        first_chunk_at = None
        t0 = time.perf_counter()
        while n := resp.readinto(buf):
            got += n
            first_chunk_at = first_chunk_at or time.perf_counter() - t0
        conn.close()
        grew = _vm_hwm_mb(proc.pid) - before
        assert got == size
        assert grew < 64, f"server peak RSS grew {grew:.0f} MB while serving {size / 1e6:.0f} MB"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
