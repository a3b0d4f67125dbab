"""The simulator's Anthropic Message Batches API, checked over real HTTP with the official `anthropic` package
(its types validated strictly against every object) and with plain httpx for what the SDK hides."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from openai_batches.simulator import CONTENT_MARKER, SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator.anthropic import EXPIRY_S, RETENTION_S

from .support.cli import printed, simulate_command

T0 = 1_780_000_000.0  # 2026-05-28
KEY_A, KEY_B = "sk-ant-api03-sim-alpha", "sk-ant-api03-sim-bravo"
WS_A, WS_B = "wrkspc_alpha", "wrkspc_bravo"


@pytest.fixture(scope="module")
def hist() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(clock=SimClock(T0), seed=3, anthropic_workspaces={KEY_A: WS_A, KEY_B: WS_B})
    org.anthropic.generate_history(2300, workspace=WS_A, days=45)
    org.anthropic.generate_history(40, workspace=WS_B, days=45)
    for _ in range(5):
        org.anthropic.create_batch(workspace=WS_A)  # submitted now: in progress
    with SimulatorServer(org) as srv:
        yield org, srv


@pytest.fixture
def live() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(clock=SimClock(T0), seed=5, anthropic_workspaces={KEY_A: WS_A})
    with SimulatorServer(org) as srv:
        yield org, srv


def sdk(srv: SimulatorServer, key: str = KEY_A) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=srv.anthropic_base_url, max_retries=0)


def raw(srv: SimulatorServer, key: str | None = KEY_A, **headers: str) -> httpx.Client:
    sent = {"anthropic-version": "2023-06-01", **headers}
    if key:
        sent["x-api-key"] = key
    return httpx.Client(base_url=srv.anthropic_base_url, headers=sent)


def test_the_sdk_pages_every_batch_newest_first_and_its_types_accept_each(
    hist: tuple[SimulatedOrg, SimulatorServer],
) -> None:
    org, srv = hist
    srv.reset_requests()
    listed = list(sdk(srv).messages.batches.list(limit=1000))
    assert [b.id for b in listed] == [b["id"] for b in org.anthropic.batches(WS_A)]
    assert len(listed) == 2305 and len({b.id for b in listed}) == 2305
    pages = [r for r in srv.requests if r.path == "/v1/messages/batches"]
    assert len(pages) == 3 and all(r.status == 200 for r in pages)
    assert pages[1].query["after_id"] == listed[999].id and pages[2].query["after_id"] == listed[1999].id
    created = [b.created_at for b in listed]
    assert created == sorted(created, reverse=True)
    # strict validation, not the SDK's lenient construct(): every field of every object has the right type
    with raw(srv) as c:
        body = c.get("/v1/messages/batches", params={"limit": 1000}).json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    for obj in body["data"]:
        MessageBatch.model_validate(obj, strict=False)
        assert set(obj) == set(MessageBatch.model_fields)


def test_lifecycles_are_realistic(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = hist
    batches = [MessageBatch.model_validate(b) for b in org.anthropic.batches(WS_A, srv.anthropic_base_url)]
    status = Counter(b.processing_status for b in batches)
    assert status["ended"] > 2000 and status["in_progress"] >= 5
    outcomes = Counter()
    for b in batches:
        counts = b.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        assert total > 0
        assert b.expires_at.timestamp() == pytest.approx(b.created_at.timestamp() + EXPIRY_S, abs=1e-3)
        if b.processing_status != "ended":
            assert counts.processing == total and b.results_url is None and b.ended_at is None
            continue
        assert counts.processing == 0 and b.ended_at is not None and b.ended_at <= b.expires_at
        assert b.results_url == f"{srv.anthropic_base_url}/v1/messages/batches/{b.id}/results"
        archived = b.created_at.timestamp() + RETENTION_S <= T0
        assert (b.archived_at is not None) == archived
        outcomes.update(k for k in ("errored", "canceled", "expired") if getattr(counts, k))
        if counts.canceled:
            assert b.cancel_initiated_at is not None and b.cancel_initiated_at <= b.ended_at
    assert outcomes["errored"] and outcomes["canceled"] and outcomes["expired"]
    assert any(b.archived_at is not None for b in batches) and any(b.archived_at is None for b in batches)


def test_results_stream_through_the_sdk_one_line_per_request_with_cache_usage(
    hist: tuple[SimulatedOrg, SimulatorServer],
) -> None:
    org, srv = hist
    client = sdk(srv)
    ended = [
        b for b in client.messages.batches.list(limit=1000) if b.processing_status == "ended" and b.archived_at is None
    ][:40]
    kinds: Counter[str] = Counter()
    for b in ended:
        lines = list(client.messages.batches.results(b.id))
        counts = b.request_counts
        assert len(lines) == counts.succeeded + counts.errored + counts.canceled + counts.expired
        assert len({line.custom_id for line in lines}) == len(lines)
        got = Counter(line.result.type for line in lines)
        assert (
            got == Counter({k: getattr(counts, k) for k in ("succeeded", "errored", "canceled", "expired")}) - Counter()
        )
        kinds.update(got)
        for line in lines:
            if line.result.type == "succeeded":
                usage = line.result.message.usage
                assert line.result.message.model.startswith("claude-") and usage.service_tier == "batch"
                assert usage.cache_creation is not None
                split = usage.cache_creation.ephemeral_5m_input_tokens + usage.cache_creation.ephemeral_1h_input_tokens
                assert usage.cache_creation_input_tokens == split
    assert kinds["succeeded"] > 1000 and kinds["errored"]
    # strictly typed too, and no content but the marker
    with raw(srv) as c:
        text = c.get(f"/v1/messages/batches/{ended[0].id}/results").text
    for line in text.splitlines():
        parsed = MessageBatchIndividualResponse.model_validate_json(line)
        if parsed.result.type == "succeeded":
            assert CONTENT_MARKER in line
    usage_keys = {"cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation", "service_tier"}
    assert any(
        usage_keys <= set(json.loads(line)["result"].get("message", {}).get("usage", {})) for line in text.splitlines()
    )


def test_retrieve_and_errors_in_anthropics_envelope_with_a_request_id(
    hist: tuple[SimulatedOrg, SimulatorServer],
) -> None:
    org, srv = hist
    client = sdk(srv)
    first = org.anthropic.batches(WS_A)[0]
    assert client.messages.batches.retrieve(first["id"]).id == first["id"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.batches.retrieve(org.anthropic.batches(WS_B)[0]["id"])  # another workspace's
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": missing.value.request_id,
    }
    assert missing.value.request_id and missing.value.response.headers["request-id"] == missing.value.request_id
    with pytest.raises(anthropic.AuthenticationError):
        sdk(srv, key="sk-ant-api03-unknown").messages.batches.list()
    with raw(srv, key=None) as c:
        assert c.get("/v1/messages/batches").json()["error"]["type"] == "authentication_error"
    with raw(srv) as c:
        assert c.get("/v1/messages/batches", params={"limit": 1001}).status_code == 400
        assert c.get("/v1/messages/batches", params={"limit": 0}).status_code == 400
        assert "request-id" in c.get("/v1/messages/batches").headers
    with httpx.Client(base_url=srv.anthropic_base_url, headers={"x-api-key": KEY_A}) as c:
        assert c.get("/v1/messages/batches").status_code == 400  # no anthropic-version
    with raw(srv, **{"anthropic-workspace-id": WS_B}) as c:
        assert c.get("/v1/messages/batches").status_code == 403


def test_before_id_pages_back_towards_the_newest(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = hist
    ids = [b["id"] for b in org.anthropic.batches(WS_A)]
    with raw(srv) as c:
        page = c.get("/v1/messages/batches", params={"before_id": ids[50], "limit": 20}).json()
        assert [b["id"] for b in page["data"]] == ids[30:50] and page["has_more"] is True
        assert page["first_id"] == ids[30] and page["last_id"] == ids[49]
        top = c.get("/v1/messages/batches", params={"before_id": ids[5], "limit": 20}).json()
        assert [b["id"] for b in top["data"]] == ids[:5] and top["has_more"] is False
        unknown = c.get("/v1/messages/batches", params={"after_id": "msgbatch_01nope"}).json()
        assert unknown == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    listed = sdk(srv).messages.batches.list(before_id=ids[50], limit=20)
    assert [b.id for b in listed.data] == ids[30:50]


def test_a_batch_moves_through_its_lifecycle_cancel_and_delete(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    client = sdk(srv)
    done = org.anthropic.create_batch(total_requests=30, processing_seconds=600)
    cancelled = org.anthropic.create_batch(total_requests=100, processing_seconds=3600)
    expiring = org.anthropic.create_batch(total_requests=10, processing_seconds=EXPIRY_S * 2)
    assert client.messages.batches.retrieve(done).processing_status == "in_progress"
    with raw(srv) as c:
        assert c.get(f"/v1/messages/batches/{done}/results").status_code == 400  # not ended yet
    org.advance(1800)
    assert client.messages.batches.cancel(cancelled).processing_status == "canceling"
    b = client.messages.batches.retrieve(done)
    assert b.processing_status == "ended" and b.request_counts.succeeded + b.request_counts.errored == 30
    org.advance(600)
    c_b = client.messages.batches.retrieve(cancelled)
    assert c_b.processing_status == "ended" and c_b.request_counts.canceled == 50 and c_b.cancel_initiated_at
    org.advance(EXPIRY_S)
    e_b = client.messages.batches.retrieve(expiring)
    assert e_b.processing_status == "ended" and e_b.request_counts.expired == 10 - e_b.request_counts.succeeded
    assert e_b.ended_at is not None and e_b.ended_at == e_b.expires_at
    assert client.messages.batches.delete(done).type == "message_batch_deleted"
    assert done not in {b.id for b in client.messages.batches.list()}
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(done)
    org.advance(RETENTION_S)
    archived = client.messages.batches.retrieve(cancelled)
    assert isinstance(archived.archived_at, datetime)
    with pytest.raises(anthropic.NotFoundError):
        list(client.messages.batches.results(cancelled))


def test_the_sdk_parses_every_result_type_and_agrees_with_the_simulators_truth(
    live: tuple[SimulatedOrg, SimulatorServer],
) -> None:
    """Every line type (succeeded with the full usage, errored in the error envelope, canceled, expired)
    through `client.messages.batches.results`, strictly typed, and what the SDK reads is what
    `request_truth` tells the ledger tests."""
    org, srv = live
    made = [
        org.anthropic.create_batch(total_requests=300, processing_seconds=600, errored=40),
        org.anthropic.create_batch(total_requests=100, processing_seconds=3600),
        org.anthropic.create_batch(total_requests=80, processing_seconds=EXPIRY_S * 2, errored=3),
    ]
    org.advance(1200)
    org.anthropic.cancel(made[1])
    org.advance(EXPIRY_S)
    client = sdk(srv)
    kinds: Counter[str] = Counter()
    thinking = one_hour = 0
    for bid in made:
        truth = {t.custom_id: t for t in org.anthropic.request_truth(bid)}
        lines = list(client.messages.batches.results(bid))
        assert {line.custom_id for line in lines} == set(truth) and len(lines) == len(truth)
        for line in lines:
            t, result = truth[line.custom_id], line.result
            kinds[result.type] += 1
            if result.type == "succeeded":
                message, usage = result.message, result.message.usage
                assert message.model == t.model and message.id == t.response_id and message.model[-8:].isdigit()
                assert usage.service_tier == t.service_tier == "batch" and usage.cache_creation is not None
                assert usage.cache_read_input_tokens is not None and usage.cache_creation_input_tokens is not None
                total = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
                assert (total, usage.cache_read_input_tokens, usage.output_tokens) == (
                    t.input_tokens,
                    t.cached_tokens,
                    t.output_tokens,
                )
                assert usage.cache_creation_input_tokens == t.cache_write_tokens
                assert usage.cache_creation.ephemeral_1h_input_tokens == t.cache_write_1h_tokens
                details = usage.output_tokens_details
                assert (details.thinking_tokens if details else None) == t.reasoning_tokens
                thinking += details is not None
                one_hour += bool(t.cache_write_1h_tokens)
            elif result.type == "errored":
                error = result.error
                assert error.type == "error" and error.request_id == t.request_id and t.outcome == "failed"
                assert (error.error.type, error.error.message) == (t.error_code, t.error_message)
            else:
                assert t.outcome == {"canceled": "cancelled", "expired": "expired"}[result.type]
                assert t.input_tokens is None and t.model is None
        with raw(srv) as c:
            for text in c.get(f"/v1/messages/batches/{bid}/results").text.splitlines():
                MessageBatchIndividualResponse.model_validate_json(text, strict=True)
    assert set(kinds) == {"succeeded", "errored", "canceled", "expired"} and thinking and one_hour


def test_results_are_gzipped_for_a_client_that_accepts_it(live: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = live
    srv.compress = True
    bid = org.anthropic.create_batch(total_requests=500, processing_seconds=60)
    org.advance(120)
    with raw(srv) as c, c.stream("GET", f"/v1/messages/batches/{bid}/results") as r:
        assert r.headers["content-encoding"] == "gzip"
        body = gzip.decompress(b"".join(r.iter_raw()))
    assert len(body.splitlines()) == 500
    assert len(list(sdk(srv).messages.batches.results(bid))) == 500


def test_simulate_prints_the_anthropic_settings() -> None:
    with simulate_command("--batches", "10", "--anthropic-batches", "1200") as (_proc, lines):
        (base,) = printed(lines, "ANTHROPIC_BASE_URL")
        (key,) = printed(lines, "ANTHROPIC_API_KEY")
        assert not base.endswith("/v1")
        listed = list(anthropic.Anthropic(api_key=key, base_url=base, max_retries=0).messages.batches.list(limit=1000))
        assert len(listed) == 1200
    with simulate_command("--batches", "10", "--anthropic-batches", "0") as (_proc, lines):
        assert not printed(lines, "ANTHROPIC_API_KEY")
