"""AnthropicClient over real HTTP against the simulator's Anthropic workspaces (and a scripted server for
answers the simulator never gives): paging, retrieve, results (plain and gzip), retries with the one
budget, the key's rules and where it may be sent."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from openai_batches.client.anthropic import API_VERSION, AnthropicClient, _origin, key_kind_problem
from openai_batches.client.errors import ApiError
from openai_batches.client.paging import EveryPage, Page, iter_pages
from openai_batches.client.retry import RetryPolicy
from openai_batches.simulator import Fault, SimClock, SimulatedOrg, SimulatorServer

from .support.fake_api import Reply, ScriptedApi, json_reply

T0 = 1_780_000_000.0
KEY = "sk-ant-api03-sim-client-0123456789abcdef"
WS = "wrkspc_client"


@pytest.fixture
def sim() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(clock=SimClock(T0), seed=7, anthropic_workspaces={KEY: WS})
    org.anthropic.generate_history(2100, days=20)
    with SimulatorServer(org) as srv:
        yield org, srv


def no_sleep(**kw: float | int) -> RetryPolicy:
    return RetryPolicy(sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def client(srv: SimulatorServer | ScriptedApi, **kw: object) -> AnthropicClient:
    base = srv.anthropic_base_url if isinstance(srv, SimulatorServer) else srv.base_url.removesuffix("/v1")
    return AnthropicClient(api_key=KEY, base_url=base, retry=no_sleep(), **kw)  # type: ignore[arg-type]


def all_pages(c: AnthropicClient) -> list[Page]:
    return [page for page, _ in iter_pages(c, c.list_page(), EveryPage())]


def count_lines(chunks: Iterator[bytes]) -> int:
    return b"".join(chunks).count(b"\n")


def test_pages_every_batch_with_after_id_the_previous_last_id(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = sim
    with client(srv) as c:
        pages = all_pages(c)
    assert [len(p.data) for p in pages] == [1000, 1000, 100]
    assert [b["id"] for p in pages for b in p.data] == [b["id"] for b in org.anthropic.batches(WS)]
    listed = [r for r in srv.requests if r.path == "/v1/messages/batches"]
    assert [r.query.get("after_id") for r in listed] == [None, pages[0].data[-1]["id"], pages[1].data[-1]["id"]]
    assert all(r.query["limit"] == "1000" for r in listed)
    sent = listed[0].headers
    assert sent["x-api-key"] == KEY and sent["anthropic-version"] == API_VERSION == "2023-06-01"
    assert "authorization" not in sent
    assert pages[0].server_time == T0 // 1 and pages[0].project is None


def test_retrieve_and_a_deleted_batch_is_none(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = sim
    listed = org.anthropic.batches(WS, srv.anthropic_base_url)
    newest, oldest = listed[0], listed[-1]
    with client(srv) as c:
        assert c.retrieve(newest["id"]) == newest
        assert c.retrieve(oldest["id"]) == oldest and oldest["results_url"].startswith(srv.anthropic_base_url)
        assert org.anthropic.delete(oldest["id"]) is None
        assert c.retrieve(oldest["id"]) is None
        assert c.retrieve("msgbatch_01unknown") is None


@pytest.mark.parametrize("compress", [False, True])
def test_streams_the_results_plain_and_gzipped(sim: tuple[SimulatedOrg, SimulatorServer], compress: bool) -> None:
    org, srv = sim
    srv.compress = compress
    bid = org.anthropic.create_batch(total_requests=3000, processing_seconds=60)
    org.advance(120)
    with client(srv) as c:
        batch = c.retrieve(bid)
        assert batch is not None and batch["processing_status"] == "ended"
        assert c.stream_results(batch["results_url"], count_lines) == 3000
    assert srv.requests[-1].path == f"/v1/messages/batches/{bid}/results"
    assert ("gzip" in srv.requests[-1].headers["accept-encoding"]) and srv.requests[-1].status == 200


def test_a_gzip_cut_short_is_retried_not_taken_as_the_whole(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = sim
    srv.compress = True
    bid = org.anthropic.create_batch(total_requests=2000, processing_seconds=60)
    org.advance(120)
    srv.inject(Fault("truncated-gzip", path_prefix=f"/v1/messages/batches/{bid}/results"))
    with client(srv) as c:
        batch = c.retrieve(bid)
        assert batch is not None
        assert c.stream_results(batch["results_url"], count_lines) == 2000
    assert [r.fault for r in srv.requests if r.path.endswith("/results")] == ["truncated-gzip", None]


def test_retries_429_and_5xx_from_one_budget(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = sim
    on = "/v1/messages/batches"
    srv.inject(Fault("429", path_prefix=on), Fault("503", path_prefix=on), Fault("500", path_prefix=on))
    policy = no_sleep(budget_retries=4)
    base = srv.anthropic_base_url
    with AnthropicClient(api_key=KEY, base_url=base, retry=policy) as c:
        assert len(c.list_page().data) == 1000
        assert policy.retries_used == 3 and c.api_calls == 4
        srv.inject(Fault("500", count=5, path_prefix=on))
        with pytest.raises(ApiError) as failed:
            c.list_page()
    # one retry left in the run's budget: two attempts, then the one line with the request id
    line = str(failed.value)
    assert failed.value.status == 500 and "gave up after 2 attempts" in line
    assert line.endswith(f"[request-id {srv.requests[-1].request_id}]") and "\n" not in line


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example/v1/messages/batches/msgbatch_01x/results",
        "https://127.0.0.1:{port}/v1/messages/batches/msgbatch_01x/results",
        "http://127.0.0.1:{other}/v1/messages/batches/msgbatch_01x/results",
        "http://user@127.0.0.1:{port}.evil.example/v1/results",
        "not a url at all",
    ],
)
def test_a_results_url_off_the_configured_host_is_refused_before_any_request(
    sim: tuple[SimulatedOrg, SimulatorServer], url: str
) -> None:
    _, srv = sim
    srv.reset_requests()
    with client(srv) as c, pytest.raises(ApiError) as refused:
        c.stream_results(url.format(port=srv.port, other=srv.port + 1), count_lines)
    assert "refused" in str(refused.value) or "not a valid URL" in str(refused.value)
    assert "\n" not in str(refused.value) and KEY not in str(refused.value)
    assert srv.requests == [] and c.api_calls == 0


def test_a_relative_results_url_is_taken_on_the_configured_root(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = sim
    bid = org.anthropic.create_batch(total_requests=5, processing_seconds=60)
    org.advance(120)
    with client(srv) as c:
        assert c.stream_results(f"/v1/messages/batches/{bid}/results", count_lines) == 5


def test_a_key_echoed_in_an_error_is_masked_and_the_line_names_request_id() -> None:
    def route(path: str, query: dict[str, str], n: int) -> Reply:
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad key {KEY} here"}}
        return json_reply(body, 400, **{"request-id": "req_011echo"})

    with ScriptedApi(route, project=None) as api, client(api) as c, pytest.raises(ApiError) as failed:
        c.list_page()
    line = str(failed.value)
    assert KEY not in line and KEY[:12] not in line and "***" in line
    assert line.endswith("[request-id req_011echo]") and "invalid_request_error" not in line


def test_a_page_whose_last_id_is_not_its_last_batch_is_refused() -> None:
    data = [{"id": f"msgbatch_01{i}", "type": "message_batch"} for i in range(3)]

    def route(path: str, query: dict[str, str], n: int) -> Reply:
        return json_reply({"data": data, "has_more": True, "first_id": data[0]["id"], "last_id": "msgbatch_01zzz"})

    with ScriptedApi(route, project=None) as api, client(api) as c, pytest.raises(ApiError) as failed:
        c.list_page()
    assert "last_id is not the id of the page's last batch" in str(failed.value)
    assert len(api.requests) > 1  # retried like any bad answer


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("sk-ant-admin01-abcdefghijklmnop", "Admin API key"),
        ("sk-proj-abcdefghijklmnopqrstuvwx", "looks like an OpenAI key"),
        ("sk-abcdefghijklmnopqrstuvwxyz", "looks like an OpenAI key"),
        ("", "no Anthropic API key configured"),
        ("sk-ant-api03-abc def", "cannot be sent in an HTTP header"),
    ],
)
def test_a_key_of_the_wrong_kind_is_refused_in_one_line_naming_the_setting(key: str, fragment: str) -> None:
    with pytest.raises(ApiError) as refused:
        AnthropicClient(api_key=key, base_url="http://127.0.0.1:9", setting="ANTHROPIC_API_KEY")
    line = str(refused.value)
    assert fragment in line and "ANTHROPIC_API_KEY" in line and "\n" not in line
    assert not key or key not in line


def test_surrounding_whitespace_of_the_key_is_stripped(sim: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = sim
    with AnthropicClient(api_key=f"  {KEY}\r\n", base_url=srv.anthropic_base_url) as c:
        assert len(c.list_page(limit=5).data) == 5
    assert srv.requests[-1].headers["x-api-key"] == KEY


def test_key_kinds_and_origins_pure() -> None:
    assert key_kind_problem("sk-ant-api03-x", setting="S") is None
    assert key_kind_problem("gateway-key-123", setting="S") is None  # another shape: the API's refusal says it
    assert "S is an Anthropic Admin API key" in (key_kind_problem("sk-ant-admin01-x", setting="S") or "")
    assert _origin(httpx.URL("https://API.anthropic.com/v1")) == ("https", "api.anthropic.com", 443)
    assert _origin(httpx.URL("http://h:8080")) == ("http", "h", 8080)
    assert _origin(httpx.URL("https://h")) == _origin(httpx.URL("https://h:443/x"))
