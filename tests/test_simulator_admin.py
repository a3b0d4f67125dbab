"""The simulator's Admin API (projects, completions usage, costs), over real HTTP and the official SDK.

The numbers are checked against the batch objects the same simulator serves: month totals equal the
batches' `usage`, days split across midnight, a discrepancy shows exactly where it was injected.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.admin.organization.project import Project
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult,
    UsageCompletionsResponse,
)
from openai.types.admin.organization.usage_costs_response import DataResultOrganizationCostsResult, UsageCostsResponse

from openai_batches.simulator import USAGE_CUTOFF, Fault, SimClock, SimulatedOrg, SimulatorServer

from .support.cli import printed, simulate_command

KEY_A, KEY_B = "sk-sim-alpha-1234567890abcdef", "sk-sim-bravo-fedcba0987654321"
PROJ_A, PROJ_B, PROJ_HIDDEN = "proj_alpha", "proj_bravo", "proj_unconfigured"
ADMIN = "sk-admin-sim"
DAY = 86_400
COMPLETIONS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
GROUP_ALL = ["project_id", "model", "batch"]


def utc(*ymd_hms: int) -> int:
    return calendar.timegm((*ymd_hms, *(0,) * (6 - len(ymd_hms))))


def month_of(t: int) -> str:
    return time.strftime("%Y-%m", time.gmtime(t))


# 2025-11-24T16:00Z: 200 days of history straddle the 2025-09-07 usage cutoff.
T0 = 1_764_000_000


@pytest.fixture(scope="module")
def hist() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    """Two configured projects and one nobody configured, 200 days of history; read-only."""
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=11)
    org.generate_history(1200, project=PROJ_A, days=200)
    org.generate_history(300, project=PROJ_B, days=200)
    org.add_project(PROJ_HIDDEN, name="Unconfigured")
    org.generate_history(150, project=PROJ_HIDDEN, days=60)
    with SimulatorServer(org) as srv:
        yield org, srv


def admin(srv: SimulatorServer, key: str | None = ADMIN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=srv.base_url, headers=headers, timeout=30)


def sdk(srv: SimulatorServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("admin_api_key", ADMIN)
    kw.setdefault("api_key", "")
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=srv.base_url, **kw)


def pages(c: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a bucketed endpoint, following `next_page`."""
    out: list[dict[str, Any]] = []
    while True:
        r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        out.append(body)
        if not body["has_more"]:
            assert body["next_page"] is None
            return out
        assert body["next_page"]
        params["page"] = body["next_page"]


def buckets(c: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    return [b for page in pages(c, path, **params) for b in page["data"]]


def usage_buckets(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    params.setdefault("group_by[]", GROUP_ALL)
    return buckets(c, "/organization/usage/completions", **params)


def batch_usage_totals(bks: list[dict[str, Any]], by_month: bool = True) -> Counter[tuple[Any, ...]]:
    """(month, project, model, field) -> tokens of the batch (batch: true) results."""
    out: Counter[tuple[Any, ...]] = Counter()
    for b in bks:
        for r in b["results"]:
            if r["batch"] is not True:
                continue
            key = (month_of(b["start_time"]) if by_month else None, r["project_id"], r["model"])
            for f in ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests"):
                out[(*key, f)] += r[f]
    return +out  # without the zeros


def object_totals(batches: list[dict[str, Any]], project: str, month: str | None) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for b in batches:
        if b["endpoint"] not in COMPLETIONS:
            continue
        key = (month, project, b["model"])
        u = b["usage"]
        out[(*key, "input_tokens")] += u["input_tokens"]
        out[(*key, "input_cached_tokens")] += u["input_tokens_details"]["cached_tokens"]
        out[(*key, "output_tokens")] += u["output_tokens"]
        out[(*key, "num_model_requests")] += b["request_counts"]["completed"]
    return +out


# ---------------------------------------------------------------------------------------------- shapes


def test_usage_and_costs_match_the_sdk_types_field_by_field(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = hist
    usage_fields = set(DataResultOrganizationUsageCompletionsResult.model_fields)
    cost_fields = set(DataResultOrganizationCostsResult.model_fields)
    with admin(srv) as c:
        r = c.get("/organization/usage/completions", params={"start_time": T0 - 3 * DAY, "group_by[]": GROUP_ALL})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert re.fullmatch(r"req_[0-9a-f]{32}", r.headers["x-request-id"]) and "openai-project" not in r.headers
        body = r.json()
        assert list(body) == ["object", "data", "has_more", "next_page"] and body["object"] == "page"
        parsed = UsageCompletionsResponse.model_validate(body)
        assert len(parsed.data) == 4 and body["has_more"] is False  # 3 whole days and today, under the default 7
        results = [res for b in body["data"] for res in b["results"]]
        assert results and {res["batch"] for res in results} == {True, False}
        for b in body["data"]:
            assert list(b) == ["object", "start_time", "end_time", "results"] and b["object"] == "bucket"
        for res in results:
            assert set(res) <= usage_fields, set(res) - usage_fields
            assert res["object"] == "organization.usage.completions.result"
            assert 0 <= res["input_cached_tokens"] <= res["input_tokens"] and res["num_model_requests"] >= 0
            assert res["project_id"] in (PROJ_A, PROJ_B, PROJ_HIDDEN) and res["user_id"] is None

        r = c.get("/organization/costs", params={"start_time": T0 - 3 * DAY, "group_by[]": ["project_id", "line_item"]})
        body = r.json()
        UsageCostsResponse.model_validate(body)
        for res in [res for b in body["data"] for res in b["results"]]:
            assert set(res) <= cost_fields, set(res) - cost_fields
            assert res["object"] == "organization.costs.result" and res["amount"]["currency"] == "usd"
            assert isinstance(res["amount"]["value"], float) and res["amount"]["value"] > 0

    # The official SDK, with the admin key only, reads the same pages.
    client = sdk(srv)
    page = client.admin.organization.usage.completions(
        start_time=T0 - 3 * DAY, group_by=["project_id", "model", "batch"]
    )
    assert page.model_dump(exclude_unset=True) == parsed.model_dump(exclude_unset=True)
    costs = client.admin.organization.usage.costs(start_time=T0 - 3 * DAY, group_by=["project_id", "line_item"])
    assert costs.object == "page" and all(
        isinstance(res, DataResultOrganizationCostsResult) for b in costs.data for res in b.results
    )
    sent = srv.requests[-1]
    assert sent.path == "/v1/organization/costs" and sent.api_key_valid and sent.project is None
    assert "group_by[]" in sent.query  # what the SDK sends


def test_projects_lists_every_project_with_sdk_paging(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = hist
    client = sdk(srv)
    listed = list(client.admin.organization.projects.list(limit=1, include_archived=True))
    assert [p.id for p in listed] == [PROJ_A, PROJ_B, PROJ_HIDDEN]  # oldest first; PROJ_HIDDEN is younger
    assert all(isinstance(p, Project) and p.object == "organization.project" for p in listed)
    assert PROJ_HIDDEN not in org.keys.values()  # no key reads its batches, the Admin API sees it
    by_id = {p.id: p for p in listed}
    assert by_id[PROJ_HIDDEN].name == "Unconfigured" and by_id[PROJ_A].status == "active"
    for p in listed:
        assert p.archived_at is None
        assert p.created_at < min(b["created_at"] for b in org.batches(p.id))
    with admin(srv) as c:
        page = c.get("/organization/projects", params={"limit": 2}).json()
        assert list(page) == ["object", "data", "first_id", "last_id", "has_more"]
        assert page["has_more"] is True and page["first_id"] == PROJ_A and page["last_id"] == PROJ_B
        assert list(page["data"][0]) == ["id", "object", "name", "created_at", "archived_at", "status"]
        assert c.get("/organization/projects", params={"after": "proj_nope"}).json()["data"] == []
        for bad in ("0", "101", "x"):
            r = c.get("/organization/projects", params={"limit": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
        r = c.get("/organization/projects", params={"include_archived": "maybe"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "include_archived"


def test_added_and_archived_projects() -> None:
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=3)
    org.generate_history(200, days=30)
    org.add_project(PROJ_HIDDEN)
    org.generate_history(50, project=PROJ_HIDDEN, days=20)
    with pytest.raises(ValueError):
        org.add_project(PROJ_A)
    with pytest.raises(ValueError):
        org.add_project("proj_x", api_key=KEY_A)
    archived_at = T0 - 10 * DAY + 3600
    org.archive_project(PROJ_B, at=archived_at)
    with SimulatorServer(org) as srv, admin(srv) as c:
        active = c.get("/organization/projects").json()["data"]
        assert [p["id"] for p in active] == [PROJ_A, PROJ_HIDDEN]
        every = c.get("/organization/projects", params={"include_archived": "true"}).json()["data"]
        b = next(p for p in every if p["id"] == PROJ_B)
        assert b["status"] == "archived" and b["archived_at"] == archived_at
        bks = usage_buckets(c, start_time=T0 - 20 * DAY, limit=31)
        seen = {(r["project_id"], r["batch"]) for b in bks for r in b["results"]}
        # The unconfigured project's batches are in OpenAI's books; an archived project's history stays.
        assert {(PROJ_HIDDEN, True), (PROJ_B, True), (PROJ_B, False)} <= seen
        # Its synchronous traffic stops when it is archived.
        after = [r for b in bks if b["start_time"] >= archived_at for r in b["results"]]
        assert not [r for r in after if r["project_id"] == PROJ_B and r["batch"] is False]
        # A key of the archived project still lists its batches (unchanged batch endpoints).
        assert httpx.get(srv.base_url + "/batches", headers={"Authorization": f"Bearer {KEY_B}"}).status_code == 200


# ---------------------------------------------------------------------------------------------- paging


@pytest.mark.parametrize(
    ("width", "seconds", "limit", "span"),
    [("1d", DAY, 7, 40 * DAY), ("1h", 3600, 24, 3 * DAY + 1800), ("1m", 60, 60, 4 * 3600 + 30)],
)
def test_next_page_returns_every_bucket_exactly_once(
    hist: tuple[SimulatedOrg, SimulatorServer], width: str, seconds: int, limit: int, span: int
) -> None:
    _, srv = hist
    start = T0 - span
    with admin(srv) as c:
        got = pages(c, "/organization/usage/completions", start_time=start, bucket_width=width)
    assert all(len(p["data"]) == limit for p in got[:-1]) and 1 <= len(got[-1]["data"]) <= limit
    starts = [b["start_time"] for p in got for b in p["data"]]
    first = start // seconds * seconds
    # Aligned to the width in UTC, consecutive, no gaps, no repeats, up to the bucket holding now.
    assert starts == list(range(first, T0 + 1, seconds))
    assert all(b["end_time"] == b["start_time"] + seconds for p in got for b in p["data"])
    assert len({p["next_page"] for p in got}) == len(got)


def test_bucket_widths_agree_and_end_time_cuts_the_window(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = hist

    def totals(bks: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
        out: Counter[tuple[Any, ...]] = Counter()
        for b in bks:
            for r in b["results"]:
                for f in ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests"):
                    out[(r["project_id"], r["model"], r["batch"], f)] += r[f]
        return out

    with admin(srv) as c:
        month = usage_buckets(c, start_time=T0 - 30 * DAY, limit=31, batch="true")
        busiest = max(month, key=lambda b: sum(r["input_tokens"] for r in b["results"]))
        day = busiest["start_time"]
        d = usage_buckets(c, start_time=day, end_time=day + DAY)
        h = usage_buckets(c, start_time=day, end_time=day + DAY, bucket_width="1h", limit=24)
        m = usage_buckets(c, start_time=day + 1, end_time=day + DAY, bucket_width="1m", limit=1440)
        assert (len(d), len(h), len(m)) == (1, 24, 1440)
        assert totals(d) == totals(h) == totals(m)
        assert {k[2] for k in totals(d)} == {True, False}
        # end_time in the future: still no bucket after the one holding now.
        late = usage_buckets(c, start_time=T0 - 2 * DAY, end_time=T0 + 10 * DAY)
        assert late[-1]["start_time"] == T0 // DAY * DAY


def test_limits_defaults_and_parameter_errors(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = hist
    long_ago = T0 - 100 * DAY
    with admin(srv) as c:
        usage = "/organization/usage/completions"
        for width, default, maximum in (("1d", 7, 31), ("1h", 24, 168), ("1m", 60, 1440)):
            body = c.get(usage, params={"start_time": long_ago, "bucket_width": width}).json()
            assert len(body["data"]) == default and body["has_more"] is True
            ok = c.get(usage, params={"start_time": long_ago, "bucket_width": width, "limit": maximum})
            assert len(ok.json()["data"]) == maximum
            r = c.get(usage, params={"start_time": long_ago, "bucket_width": width, "limit": maximum + 1})
            assert r.status_code == 400 and r.json()["error"]["code"] == "integer_above_max_value"
        assert len(c.get("/organization/costs", params={"start_time": long_ago}).json()["data"]) == 7
        assert len(c.get("/organization/costs", params={"start_time": long_ago, "limit": 180}).json()["data"]) == 101
        one_h = c.get(usage, params={"start_time": long_ago, "bucket_width": "1h"}).json()["next_page"]

        cases: list[tuple[str, dict[str, Any], str]] = [
            (usage, {}, "start_time"),
            (usage, {"start_time": "yesterday"}, "start_time"),
            (usage, {"start_time": long_ago, "bucket_width": "1w"}, "bucket_width"),
            (usage, {"start_time": long_ago, "limit": 0}, "limit"),
            (usage, {"start_time": long_ago, "end_time": long_ago}, "end_time"),
            (usage, {"start_time": long_ago, "group_by[]": ["project_id", "colour"]}, "group_by"),
            (usage, {"start_time": long_ago, "batch": "perhaps"}, "batch"),
            (usage, {"start_time": long_ago, "page": "page_garbage"}, "page"),
            (usage, {"start_time": long_ago, "page": one_h}, "page"),  # a 1h cursor on a 1d query
            ("/organization/costs", {}, "start_time"),
            ("/organization/costs", {"start_time": long_ago, "bucket_width": "1h"}, "bucket_width"),
            ("/organization/costs", {"start_time": long_ago, "limit": 181}, "limit"),
            ("/organization/costs", {"start_time": long_ago, "group_by": "model"}, "group_by"),
        ]
        for path, params, param in cases:
            r = c.get(path, params=params)
            assert r.status_code == 400, (path, params, r.text)
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
            assert err["param"] == param, err
            assert param in err["message"] or err["message"].startswith("Invalid value: "), err
        for method, path in (("GET", "/organization/usage/weird"), ("POST", "/organization/costs")):
            r = c.request(method, path, params={"start_time": long_ago})
            assert r.status_code == 404 and r.json()["error"]["message"] == f"Invalid URL ({method} /v1{path})"


# ---------------------------------------------------------------------------------------------- auth


def test_admin_key_refused_outside_the_admin_api_and_project_keys_refused_on_it(
    hist: tuple[SimulatedOrg, SimulatorServer],
) -> None:
    org, srv = hist
    assert org.admin_keys == frozenset({ADMIN}) and org.is_admin_key(ADMIN) and not org.is_admin_key(KEY_A)
    with admin(srv) as c:
        some_id = org.batches(PROJ_A)[0]["id"]
        for method, path, scope in (
            ("GET", "/batches", "api.batch.read"),
            ("GET", f"/batches/{some_id}", "api.batch.read"),
            ("POST", "/batches", "api.batch.write"),
            ("GET", "/files", "api.files.read"),
        ):
            r = c.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401, path
            err = r.json()["error"]
            assert err["message"].startswith("You have insufficient permissions for this operation.")
            assert f"Missing scopes: {scope}." in err["message"] and err["code"] is None
            assert some_id not in r.text and ADMIN not in r.text and "openai-project" not in r.headers
    for key in (KEY_A, KEY_B):
        with admin(srv, key) as c:
            for path, scope in (
                ("/organization/usage/completions", "api.usage.read"),
                ("/organization/costs", "api.usage.read"),
                ("/organization/projects", "api.management.read"),
            ):
                r = c.get(path, params={"start_time": T0 - DAY})
                assert r.status_code == 401 and f"Missing scopes: {scope}." in r.json()["error"]["message"]
                assert key not in r.text
    with admin(srv, "sk-admin-not-a-real-one-000") as c:
        r = c.get("/organization/projects")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with admin(srv, None) as c:
        r = c.get("/organization/costs", params={"start_time": T0 - DAY})
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("You didn't provide an API key.")

    # The official SDK sees AuthenticationError both ways.
    with pytest.raises(openai.AuthenticationError):
        sdk(srv, api_key=ADMIN).batches.list()
    with pytest.raises(openai.AuthenticationError):
        sdk(srv, admin_api_key=KEY_A).admin.organization.usage.completions(start_time=T0 - DAY)
    with pytest.raises(ValueError):
        SimulatedOrg(projects={ADMIN: PROJ_A})


def test_faults_can_target_the_admin_api() -> None:
    org = SimulatedOrg(projects={KEY_A: PROJ_A}, clock=SimClock(T0), seed=1)
    with SimulatorServer(org) as srv, admin(srv) as c:
        srv.inject(Fault("429", count=2, path_prefix="/v1/organization/usage"))
        params = {"start_time": T0 - DAY}
        assert c.get("/organization/costs", params=params).status_code == 200
        codes = [c.get("/organization/usage/completions", params=params).status_code for _ in range(3)]
        assert codes == [429, 429, 200]
        # The SDK retries them like any 429.
        srv.inject(Fault("503", count=1, path_prefix="/v1/organization/projects"))
        assert [p.id for p in sdk(srv, max_retries=2).admin.organization.projects.list()] == [PROJ_A]
    assert [(r.path, r.status) for r in srv.requests[-2:]] == [
        ("/v1/organization/projects", 503),
        ("/v1/organization/projects", 200),
    ]


# ---------------------------------------------------------------------------------------------- filters


def test_group_by_filters_and_array_syntaxes(hist: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = hist
    start = T0 - 8 * DAY
    path = "/organization/usage/completions"
    with admin(srv) as c:

        def get(params: Any) -> list[dict[str, Any]]:
            r = c.get(path, params=params)
            assert r.status_code == 200, r.text
            data: list[dict[str, Any]] = r.json()["data"]
            return data

        base = {"start_time": start, "limit": 9}
        full = get({**base, "group_by[]": GROUP_ALL})
        # The three ways to send an array give the same answer.
        assert get([*base.items(), ("group_by", "project_id,model,batch")]) == full
        assert get([*base.items(), *(("group_by", g) for g in GROUP_ALL)]) == full

        def sums(data: list[dict[str, Any]], key: Any) -> Counter[Any]:
            out: Counter[Any] = Counter()
            for b in data:
                for r in b["results"]:
                    out[(b["start_time"], key(r))] += r["input_tokens"]
            return +out

        # Any grouping adds up to the ungrouped totals; ungrouped fields are null.
        total = sums(get(base), lambda r: None)
        assert total and sums(full, lambda r: None) == total
        for group in (["project_id"], ["model"], ["batch"], ["model", "batch"]):
            data = get({**base, "group_by[]": group})
            assert sums(data, lambda r: None) == total
            for r in (r for b in data for r in b["results"]):
                for field in GROUP_ALL:
                    assert (r[field] is None) == (field not in group), (group, r)
        only_a = get({**base, "group_by[]": GROUP_ALL, "project_ids[]": [PROJ_A]})
        assert {r["project_id"] for b in only_a for r in b["results"]} == {PROJ_A}
        a_in_full = {k: v for k, v in sums(full, lambda r: r["project_id"]).items() if k[1] == PROJ_A}
        assert sums(only_a, lambda r: r["project_id"]) == a_in_full
        batch_only = get({**base, "group_by[]": GROUP_ALL, "batch": "true"})
        assert {r["batch"] for b in batch_only for r in b["results"]} == {True}
        sync_only = get({**base, "group_by[]": GROUP_ALL, "batch": "false"})
        assert {r["batch"] for b in sync_only for r in b["results"]} == {False}
        model = full[-2]["results"][0]["model"]
        by_model = get({**base, "group_by[]": ["model"], "models": model})
        assert {r["model"] for b in by_model for r in b["results"]} == {model}
        # No usage is attributed to users or keys: those filters match nothing.
        assert all(b["results"] == [] for b in get({**base, "user_ids[]": ["user-abc"]}))
        tiers = get({**base, "group_by[]": ["service_tier", "api_source"]})
        assert {(r["service_tier"], r["api_source"]) for b in tiers for r in b["results"]} == {("default", "unlabeled")}


# ---------------------------------------------------------------------------------------------- the numbers

# 2025-11-15T00:00Z: every batch below has finished.
T_EXPLICIT = utc(2025, 11, 15)


@pytest.fixture(scope="module")
def explicit() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    """Hand-placed batches whose processing lies within their month, one across a midnight; read-only."""
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T_EXPLICIT), seed=5)

    def batch(project: str, created: int, model: str, **kw: Any) -> str:
        kw.setdefault("outcome", "completed")
        kw.setdefault("validating_seconds", 60)
        kw.setdefault("processing_seconds", 3 * 3600)
        kw.setdefault("finalizing_seconds", 120)
        return org.create_batch(project=project, created_at=created, model=model, **kw)

    batch(PROJ_A, utc(2025, 8, 12, 9), "gpt-4o-mini-2024-07-18", total_requests=400)  # before usage existed
    batch(PROJ_A, utc(2025, 9, 20, 10), "gpt-4o-mini-2024-07-18", total_requests=1200, failed_fraction=0.1)
    batch(PROJ_A, utc(2025, 10, 3, 8), "gpt-5-mini-2025-08-07", total_requests=5000)
    # In progress from 23:00 to 01:00: two days share it, an hour each.
    batch(PROJ_A, utc(2025, 10, 10, 22, 59), "gpt-4o-mini-2024-07-18", total_requests=3000, processing_seconds=7200)
    batch(PROJ_A, utc(2025, 10, 14, 5), "gpt-4o-mini-2024-07-18", endpoint="/v1/responses", total_requests=70)
    batch(PROJ_A, utc(2025, 10, 12, 5), "text-embedding-3-small", endpoint="/v1/embeddings", total_requests=900)
    batch(PROJ_A, utc(2025, 10, 13, 5), "omni-moderation-latest", endpoint="/v1/moderations", total_requests=900)
    batch(PROJ_B, utc(2025, 10, 5, 12), "gpt-4.1-2025-04-14", total_requests=2000, outcome="cancelled")
    batch(PROJ_B, utc(2025, 10, 20, 1), "gpt-4.1-2025-04-14", total_requests=800, outcome="expired")
    batch(PROJ_B, utc(2025, 10, 25, 1), "o4-mini-2025-04-16", total_requests=50, outcome="failed")
    batch(PROJ_B, utc(2025, 11, 2, 14), "gpt-4.1-2025-04-14", total_requests=600)
    batch(PROJ_B, utc(2025, 11, 3, 14), "gpt-3.5-turbo-instruct", endpoint="/v1/completions", total_requests=90)
    with SimulatorServer(org) as srv:
        yield org, srv


def test_month_totals_equal_the_batch_objects_usage(explicit: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = explicit
    with admin(srv) as c:
        got = batch_usage_totals(usage_buckets(c, start_time=utc(2025, 8, 1), limit=31))
    expected: Counter[tuple[Any, ...]] = Counter()
    for project in (PROJ_A, PROJ_B):
        for b in org.batches(project):
            if "usage" in b:
                expected += object_totals([b], project, month_of(b["created_at"]))
    assert {k: v for k, v in got.items() if k[0] >= "2025-09"} == expected
    assert {k[0] for k in expected} == {"2025-09", "2025-10", "2025-11"}
    # Cancelled and expired batches count what they processed; the failed one counts nothing.
    statuses = {b["status"] for b in org.batches(PROJ_B)}
    assert statuses == {"cancelled", "expired", "failed", "completed"}
    assert not [k for k in got if k[2] == "o4-mini-2025-04-16"]
    # Embeddings and moderations batches are not completions usage.
    assert not [k for k in got if k[2] in ("text-embedding-3-small", "omni-moderation-latest")]
    assert got[("2025-11", PROJ_B, "gpt-3.5-turbo-instruct", "input_tokens")] > 0  # legacy /v1/completions counts
    # Before 2025-09-07 the batch object has no usage, yet OpenAI counted its tokens.
    (old,) = [b for b in org.batches(PROJ_A) if b["created_at"] < USAGE_CUTOFF]
    assert "usage" not in old
    assert (
        got[("2025-08", PROJ_A, "gpt-4o-mini-2024-07-18", "num_model_requests")] == old["request_counts"]["completed"]
    )
    assert got[("2025-08", PROJ_A, "gpt-4o-mini-2024-07-18", "input_tokens")] > 0


def test_a_batch_across_midnight_splits_over_two_days(explicit: tuple[SimulatedOrg, SimulatorServer]) -> None:
    org, srv = explicit
    (b,) = [b for b in org.batches(PROJ_A) if b["created_at"] == utc(2025, 10, 10, 22, 59)]
    assert b["in_progress_at"] < utc(2025, 10, 11) < b["finalizing_at"]
    with admin(srv) as c:
        days = usage_buckets(c, start_time=utc(2025, 10, 10), end_time=utc(2025, 10, 12), batch="true")
        hours = usage_buckets(c, start_time=utc(2025, 10, 10, 22), end_time=utc(2025, 10, 11, 3), bucket_width="1h")
    # It is the only batch of those two days.
    per_day = [sum(r["input_tokens"] for r in d["results"]) for d in days]
    assert per_day[0] > 0 and per_day[1] > 0
    assert per_day[0] + per_day[1] == b["usage"]["input_tokens"]
    per_hour = [sum(r["input_tokens"] for r in h["results"] if r["batch"]) for h in hours]
    assert per_hour[0] == 0 and per_hour[1] > 0 and per_hour[2] > 0 and per_hour[3:] == [0, 0]
    assert per_hour[1] + per_hour[2] == b["usage"]["input_tokens"]
    assert abs(per_hour[1] - per_hour[2]) < 0.05 * b["usage"]["input_tokens"]  # even over the two hours


def test_all_buckets_up_to_now_equal_what_the_batches_report_open_ones_included() -> None:
    now = utc(2026, 3, 1, 15, 30)
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(now), seed=9)
    org.generate_history(900, days=70, open_fraction=0.05)
    with SimulatorServer(org) as srv, admin(srv) as c:
        got = batch_usage_totals(usage_buckets(c, start_time=now - 80 * DAY, limit=31), by_month=False)
    expected: Counter[tuple[Any, ...]] = Counter()
    open_batches = 0
    for project in (PROJ_A, PROJ_B):
        batches = org.batches(project)
        open_batches += sum(b["status"] in ("in_progress", "finalizing", "cancelling") for b in batches)
        expected += object_totals(batches, project, None)
    assert open_batches > 5
    assert got == expected


def test_only_work_done_by_now_is_counted() -> None:
    org = SimulatedOrg(projects={KEY_A: PROJ_A}, clock=SimClock(T0), seed=4)
    org.books.set_non_batch_scale(0)
    bid = org.create_batch(
        model="gpt-4o-2024-08-06",
        total_requests=4000,
        validating_seconds=60,
        processing_seconds=7200,
        outcome="completed",
    )
    with SimulatorServer(org) as srv, admin(srv) as c:

        def counted() -> int:
            bks = usage_buckets(c, start_time=T0 - DAY, bucket_width="1h", limit=168)
            assert bks[-1]["start_time"] <= org.clock.now()
            return sum(r["input_tokens"] for b in bks for r in b["results"])

        assert counted() == 0
        seen = []
        for _ in range(3):
            org.advance(3000)
            batch = org.get(bid)
            assert batch is not None
            seen.append(counted())
            assert seen[-1] == batch["usage"]["input_tokens"]
        assert 0 < seen[0] < seen[1] < seen[2] and org.get(bid)["status"] == "completed"  # type: ignore[index]


def test_discrepancy_shows_exactly_where_injected() -> None:
    org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T_EXPLICIT), seed=12)
    org.generate_history(600, days=120)
    with SimulatorServer(org) as srv, admin(srv) as c:

        def books() -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
            usage = usage_buckets(c, start_time=utc(2025, 7, 1), limit=31)
            hourly = usage_buckets(
                c, start_time=utc(2025, 10, 1), end_time=utc(2025, 11, 1), bucket_width="1h", limit=168
            )
            sync: Counter[tuple[Any, ...]] = Counter()
            for b in usage:
                for r in b["results"]:
                    if r["batch"] is False:
                        sync[(b["start_time"], r["project_id"], r["model"])] += r["input_tokens"]
            costs: Counter[tuple[Any, ...]] = Counter()
            for b in buckets(c, "/organization/costs", start_time=utc(2025, 7, 1), limit=180, group_by="project_id"):
                for r in b["results"]:
                    costs[(month_of(b["start_time"]), r["project_id"])] += r["amount"]["value"]
            monthly = batch_usage_totals(usage)
            assert {k[1:]: v for k, v in monthly.items() if k[0] == "2025-10"} == {
                k[1:]: v for k, v in batch_usage_totals(hourly).items()
            }
            return monthly, sync, costs

        before, sync_before, costs_before = books()
        org.set_usage_discrepancy(PROJ_A, "2025-10", 1.1)
        after, sync_after, costs_after = books()
        changed = {k for k in set(before) | set(after) if before[k] != after[k]}
        assert changed and {(k[0], k[1]) for k in changed} == {("2025-10", PROJ_A)}
        assert {k[3] for k in changed} <= {"input_tokens", "input_cached_tokens", "output_tokens"}
        for k in changed:
            assert after[k] == pytest.approx(1.1 * before[k], rel=1e-3)
        assert sync_after == sync_before
        cost_changed = {k for k in costs_before if costs_after[k] != pytest.approx(costs_before[k], rel=1e-12)}
        assert cost_changed == {("2025-10", PROJ_A)}
        assert costs_after[("2025-10", PROJ_A)] > costs_before[("2025-10", PROJ_A)]

        org.set_usage_discrepancy(PROJ_A, "2025-10", 1)
        assert books()[0] == before
        org.set_usage_discrepancy(PROJ_B, "2025-09", 0.5, model="gpt-4o-mini-2024-07-18")
        changed = {k for k, v in books()[0].items() if before[k] != v}
        assert changed and {k[:3] for k in changed} == {("2025-09", PROJ_B, "gpt-4o-mini-2024-07-18")}
    with pytest.raises(ValueError):
        org.set_usage_discrepancy(PROJ_A, "2025-13", 1.2)
    with pytest.raises(ValueError):
        org.set_usage_discrepancy("proj_nope", "2025-10", 1.2)


# ---------------------------------------------------------------------------------------------- costs

# Independent of the simulator's table: USD per 1M tokens (input, cached input, output).
LIST_PRICES = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.60),
    "gpt-4o-2024-08-06": (2.50, 1.25, 10.00),
    "gpt-4.1-mini-2025-04-14": (0.40, 0.10, 1.60),
    "gpt-4.1-2025-04-14": (2.00, 0.50, 8.00),
    "gpt-5-mini-2025-08-07": (0.25, 0.025, 2.00),
    "o4-mini-2025-04-16": (1.10, 0.275, 4.40),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
}


def test_costs_per_day_project_and_line_item(explicit: tuple[SimulatedOrg, SimulatorServer]) -> None:
    _, srv = explicit
    october = {"start_time": utc(2025, 10, 1), "end_time": utc(2025, 11, 1), "limit": 31}
    with admin(srv) as c:
        grouped = {"group_by[]": ["project_id", "line_item"], "project_ids[]": [PROJ_A]}
        lines = buckets(c, "/organization/costs", **october, **grouped)
        totals = buckets(c, "/organization/costs", **october)
        usage = usage_buckets(c, **october)
        one_item = "gpt-5-mini-2025-08-07, batch_output_tokens"
        only = buckets(c, "/organization/costs", **october, **grouped, line_items=one_item)
    assert len(lines) == 31
    amounts: dict[str, float] = defaultdict(float)
    quantity: Counter[str] = Counter()
    for b in lines:
        for r in b["results"]:
            assert r["project_id"] == PROJ_A and r["quantity_unit"] == "tokens"
            amounts[r["line_item"]] += r["amount"]["value"]
            quantity[r["line_item"]] += int(r["quantity"])
            model, kind = r["line_item"].split(", ")
            column = kind.removeprefix("batch_")
            price = LIST_PRICES[model][("input_tokens", "cached_input_tokens", "output_tokens").index(column)]
            factor = 0.5 if kind.startswith("batch_") else 1.0
            assert r["amount"]["value"] == pytest.approx(r["quantity"] * price / 1e6 * factor, rel=1e-12)
    assert {r["line_item"] for b in only for r in b["results"]} == {one_item}
    # Both kinds of traffic are billed; embeddings batches too; moderation is free.
    assert any(not i.split(", ")[1].startswith("batch_") for i in amounts)
    assert "text-embedding-3-small, batch_input_tokens" in amounts
    assert not [i for i in amounts if i.startswith("omni-moderation")]
    # The quantities are the Usage API's tokens: uncached input, cached input, output.
    used = batch_usage_totals(usage, by_month=False)
    for model in ("gpt-4o-mini-2024-07-18", "gpt-5-mini-2025-08-07"):
        inp, cached = used[(None, PROJ_A, model, "input_tokens")], used[(None, PROJ_A, model, "input_cached_tokens")]
        assert quantity[f"{model}, batch_input_tokens"] == inp - cached > 0
        assert quantity[f"{model}, batch_cached_input_tokens"] == cached
        assert quantity[f"{model}, batch_output_tokens"] == used[(None, PROJ_A, model, "output_tokens")]
    # Ungrouped, a day has one result: every project's line items together.
    for b in totals:
        assert len(b["results"]) == 1
        r = b["results"][0]
        assert r["line_item"] is None and r["project_id"] is None and r["quantity"] is None
    assert sum(r["amount"]["value"] for b in totals for r in b["results"]) > sum(amounts.values())


def test_deterministic_for_a_seed_and_clock() -> None:
    def books(seed: int) -> tuple[bytes, bytes, bytes]:
        org = SimulatedOrg(projects={KEY_A: PROJ_A, KEY_B: PROJ_B}, clock=SimClock(T0), seed=seed)
        org.generate_history(300, days=20)
        with SimulatorServer(org) as srv, admin(srv) as c:
            params = {"start_time": T0 - 21 * DAY, "limit": 31}
            return (
                c.get("/organization/usage/completions", params={**params, "group_by[]": GROUP_ALL}).content,
                c.get("/organization/costs", params={**params, "group_by[]": ["project_id", "line_item"]}).content,
                c.get("/organization/projects").content,
            )

    assert books(1) == books(1)
    assert books(1)[0] != books(2)[0]


def test_simulate_prints_the_admin_key() -> None:
    with simulate_command("--batches", "30") as (_, lines):
        (base_url,) = printed(lines, "OPENAI_BASE_URL")
        (admin_key,) = printed(lines, "OPENAI_ADMIN_KEY")
        r = httpx.get(base_url + "/organization/projects", headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 200 and [p["id"] for p in r.json()["data"]] == ["proj_default"]


def test_openais_admin_api_knows_nothing_of_the_projects_served_as_groq_or_azure() -> None:
    """A project whose keys are Groq's (`gsk_...`) or Azure's is served by the simulator as that provider's
    (flavors.py): OpenAI's books neither list it nor count its batches' tokens, which Groq and Azure bill."""
    groq_key, azure_key = "gsk_" + "g" * 52, "0123456789abcdef" * 2
    org = SimulatedOrg(
        projects={KEY_A: PROJ_A, groq_key: "proj_groq", azure_key: "proj_azure"}, clock=SimClock(T0), seed=5
    )
    for project in (PROJ_A, "proj_groq", "proj_azure"):
        org.generate_history(40, project=project, days=20)
    org.advance(3 * DAY)
    with SimulatorServer(org) as srv, admin(srv) as c:
        listed = c.get("/organization/projects", params={"limit": 100}).json()["data"]
        assert [p["id"] for p in listed] == [PROJ_A]
        found = usage_buckets(c, start_time=T0 - 25 * DAY, bucket_width="1d", limit=31)
    totals = batch_usage_totals(found, by_month=False)
    assert {key[1] for key in totals} == {PROJ_A}, totals  # the other two have batches of the same kinds
