"""The simulator's injectable faults on Anthropic's paths answer as Anthropic does (its error envelope, the
`request-id` header, 529 overloaded, `retry-after` in whole seconds), bad bodies mangle its answers too, and
AnthropicClient survives them with the one retry policy: 529 retried, `retry-after` honoured."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest
from anthropic.types.shared import ErrorResponse

from openai_batches.client.anthropic import AnthropicClient
from openai_batches.client.errors import ApiError
from openai_batches.client.retry import RetryPolicy
from openai_batches.simulator import Fault, SimClock, SimulatedOrg, SimulatorServer

T0 = 1_780_000_000.0
KEY = "sk-ant-api03-sim-faults-0123456789abcdef"
WS = "wrkspc_faults"
ON = "/v1/messages/batches"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(clock=SimClock(T0), seed=11, anthropic_workspaces={KEY: WS})
    org.anthropic.generate_history(30, days=5)
    with SimulatorServer(org) as srv:
        yield org, srv


@pytest.fixture
def srv(sim: tuple[SimulatedOrg, SimulatorServer]) -> Iterator[SimulatorServer]:
    server = sim[1]
    server.clear_faults()
    server.reset_requests()
    yield server
    server.clear_faults()


def raw(srv: SimulatorServer) -> httpx.Client:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    return httpx.Client(base_url=srv.anthropic_base_url, headers=headers)


ENVELOPES = [
    ("429", 429, "rate_limit_error", anthropic.RateLimitError),
    ("429-no-retry-after", 429, "rate_limit_error", anthropic.RateLimitError),
    ("529", 529, "overloaded_error", anthropic.OverloadedError),
    ("500", 500, "api_error", anthropic.InternalServerError),
    ("503", 503, "api_error", anthropic.ServiceUnavailableError),
    ("401", 401, "authentication_error", anthropic.AuthenticationError),
    ("403", 403, "permission_error", anthropic.PermissionDeniedError),
    ("404", 404, "not_found_error", anthropic.NotFoundError),
    ("insufficient_quota", 400, "invalid_request_error", anthropic.BadRequestError),
]


@pytest.mark.parametrize(("kind", "status", "error_type", "sdk_error"), ENVELOPES, ids=[e[0] for e in ENVELOPES])
def test_a_fault_on_anthropics_paths_answers_in_anthropics_envelope_with_its_request_id(
    sim: tuple[SimulatedOrg, SimulatorServer],
    srv: SimulatorServer,
    kind: str,
    status: int,
    error_type: str,
    sdk_error: type[anthropic.APIStatusError],
) -> None:
    org, _ = sim
    batch_id = org.anthropic.batches(WS)[0]["id"]
    with raw(srv) as c:
        for path in (ON, f"{ON}/{batch_id}", f"{ON}/{batch_id}/results"):
            srv.inject(Fault(kind, path_prefix=ON))
            r = c.get(path)
            assert r.status_code == status, (path, r.text)
            body = r.json()
            ErrorResponse.model_validate(body, strict=True)  # the official package's type of the envelope
            assert body["error"]["type"] == error_type and body["error"]["message"]
            assert body["request_id"] == r.headers["request-id"] == srv.requests[-1].request_id
            assert "sk-ant" not in r.text  # a masked key at most, never the key
            assert not [h for h in r.headers if h.startswith("openai-") or h == "x-request-id"]
            if kind == "404" and path != ON:
                assert batch_id in body["error"]["message"]
    # And the official package maps each to its own error class.
    srv.inject(Fault(kind, path_prefix=ON))
    with pytest.raises(sdk_error) as raised:
        anthropic.Anthropic(api_key=KEY, base_url=srv.anthropic_base_url, max_retries=0).messages.batches.list()
    assert raised.value.request_id == srv.requests[-1].request_id


def test_openai_paths_keep_openais_envelope(srv: SimulatorServer) -> None:
    srv.inject(Fault("429", path_prefix="/v1/batches"))
    r = httpx.get(srv.base_url + "/batches", headers={"authorization": "Bearer sk-none"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert "x-request-id" in r.headers and "request-id" not in r.headers


def test_retry_after_is_sent_as_anthropic_sends_it(srv: SimulatorServer) -> None:
    """Whole seconds in `retry-after` (no `retry-after-ms`, OpenAI's), with the rate limit headers, on 429."""
    with raw(srv) as c:
        srv.inject(Fault("429", path_prefix=ON, retry_after=1.5))
        limited = c.get(ON)
        assert limited.headers["retry-after"] == "2" and "retry-after-ms" not in limited.headers
        assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert int(limited.headers["anthropic-ratelimit-requests-limit"]) > 0
        assert limited.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
        srv.inject(Fault("429-no-retry-after", path_prefix=ON), Fault("529", path_prefix=ON))
        assert "retry-after" not in c.get(ON).headers
        overloaded = c.get(ON)
        assert overloaded.status_code == 529 and "retry-after" not in overloaded.headers


@pytest.mark.parametrize("kind", ["truncated-json", "non-json", "empty-body"])
def test_bad_bodies_mangle_anthropics_answers_too(
    sim: tuple[SimulatedOrg, SimulatorServer], srv: SimulatorServer, kind: str
) -> None:
    org, _ = sim
    batch_id = org.anthropic.batches(WS)[0]["id"]
    with raw(srv) as c:
        for path in (ON, f"{ON}/{batch_id}"):
            whole = c.get(path).content
            srv.inject(Fault(kind, path_prefix=ON))
            r = c.get(path)
            assert r.status_code == 200 and r.headers["request-id"] == srv.requests[-1].request_id
            if kind == "truncated-json":
                assert r.content == whole[: len(whole) // 2]
            else:
                assert r.content != whole
                with pytest.raises(ValueError):
                    r.json()


def test_anthropic_client_retries_529_and_waits_what_retry_after_says(
    sim: tuple[SimulatedOrg, SimulatorServer], srv: SimulatorServer
) -> None:
    slept: list[float] = []
    policy = RetryPolicy(sleep=slept.append, initial_backoff=0.25)
    srv.inject(Fault("429", path_prefix=ON, retry_after=3), Fault("529", path_prefix=ON))
    with AnthropicClient(api_key=KEY, base_url=srv.anthropic_base_url, retry=policy) as c:
        assert len(c.list_page().data) == 30
        assert [r.status for r in srv.requests] == [429, 529, 200]
        assert slept[0] == 3.0  # the server's hint, in whole seconds
        assert 0.75 * 0.5 <= slept[1] <= 0.5  # no hint on 529: the client's own backoff (second attempt)
        srv.inject(Fault("529", count=3, path_prefix=ON, retry_after=None))
        with pytest.raises(ApiError) as failed:
            AnthropicClient(
                api_key=KEY, base_url=srv.anthropic_base_url, retry=RetryPolicy(sleep=slept.append, max_attempts=3)
            ).list_page()
    line = str(failed.value)
    assert failed.value.status == 529
    assert line == (
        f"GET {srv.anthropic_base_url}{ON}: HTTP 529: Overloaded (gave up after 3 attempts) "
        f"[request-id {srv.requests[-1].request_id}]"
    )


@pytest.mark.parametrize(
    ("kind", "status", "error_type"), [("429", 429, "rate_limit_error"), ("529", 529, "overloaded_error")]
)
def test_faults_on_anthropics_admin_api_answer_in_its_envelope_too(
    srv: SimulatorServer, kind: str, status: int, error_type: str
) -> None:
    from openai_batches.simulator.anthropic_books import DEFAULT_ADMIN_KEYS

    headers = {"x-api-key": DEFAULT_ADMIN_KEYS[0], "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=srv.anthropic_base_url, headers=headers) as c:
        assert c.get("/v1/organizations/workspaces").status_code == 200
        srv.inject(Fault(kind, path_prefix="/v1/organizations/"))
        r = c.get("/v1/organizations/workspaces")
    assert r.status_code == status
    ErrorResponse.model_validate(r.json(), strict=True)
    assert r.json()["error"]["type"] == error_type and r.json()["request_id"] == r.headers["request-id"]
