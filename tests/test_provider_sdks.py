"""The official SDKs of Groq, Mistral and Together against the simulator's rendering of their APIs (issue 19): each
reads what the simulator serves as its provider's API where it can (so the simulator is faithful to the clients
people use), and where a generic client goes wrong on a provider's quirk (a list cut short, a page-numbered list that
shifts under it, a bare array) the loader loads every batch exactly once. `openai.AzureOpenAI` is in
tests/test_compatible_providers.py. Every SDK loop is bounded: a client that would loop stops at a small maximum."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer
from openai_batches.simulator import others as sim

from .support.workload import NOW

GROQ_KEY = "gsk_simsdkgroq000000000000000000000000000000000000000000"
MISTRAL_KEY = "MistralSdkSimKey0123456789abcdefAB"
TOGETHER_KEY = "tgp_v1_sdksim0123456789abcdef0123456789"
GROQ, MISTRAL, TOGETHER = "proj_groq_sdk", "proj_mistral_sdk", "proj_together_sdk"
# The most pages any SDK loop here may read: far more than the lists have, so a loop is told from a long list.
MAX_PAGES = 20


@pytest.fixture
def org() -> SimulatedOrg:
    org = SimulatedOrg(projects={GROQ_KEY: GROQ, MISTRAL_KEY: MISTRAL, TOGETHER_KEY: TOGETHER}, clock=SimClock(NOW))
    for project in (GROQ, MISTRAL, TOGETHER):
        org.generate_history(70, project=project, days=5, open_fraction=0.1)
    return org


def root(server: SimulatorServer) -> str:
    return server.base_url.removesuffix("/v1")


def ids_in(db: str, table: str) -> list[str]:
    with duckdb.connect(db, read_only=True) as con:
        return [r[0] for r in con.execute(f"SELECT id FROM openai_batches.{table}").fetchall()]


def load(db: str, provider: str, key: str, base_url: str) -> None:
    project = ProjectConfig(name=provider, api_key=key, base_url=base_url, provider=provider)
    result = run_load(db, RunConfig(projects=(project,)))
    assert result.ok, [o.error for o in result.outcomes]


def listed(server: SimulatorServer, path: str) -> int:
    return sum(1 for r in server.requests if r.path == path)


# --- Groq ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paging", ["honours", "ignores"])
def test_groqs_sdk_reads_one_list_request_which_is_everything_only_if_groq_does_not_page(
    db: str, org: SimulatedOrg, paging: str
) -> None:
    """`groq.Groq().batches.list()` sends one request with no parameters and has no way to ask for more (the envelope
    has no has_more). If Groq's list ignores paging, that is every batch; if it pages (as OpenAI's, 20 by default), the
    SDK silently returns the first 20. The loader reads every batch either way."""
    groq = pytest.importorskip("groq")
    with SimulatorServer(org, groq_paging=paging) as server:
        client = groq.Groq(api_key=GROQ_KEY, base_url=root(server), max_retries=0, timeout=10)
        page = client.batches.list()
        sdk_ids = [b.id for b in page.data]
        assert listed(server, "/openai/v1/batches") == 1
        assert server.requests[-1].query == {} and server.requests[-1].headers["authorization"] == f"Bearer {GROQ_KEY}"
        truth = [b["id"] for b in org.batches(GROQ)]
        if paging == "ignores":
            assert sdk_ids == truth
            # the SDK's types take the simulator's objects as they are (statuses, counts, times)
            first = page.data[0]
            assert (first.status, first.request_counts.total) == (
                org.batches(GROQ)[0]["status"],
                org.batches(GROQ)[0]["request_counts"]["total"],
            )
        else:
            assert sdk_ids == truth[:20] and len(truth) == 70  # cut short, and nothing says so

        load(db, "groq", GROQ_KEY, root(server) + "/openai/v1")
        assert sorted(ids_in(db, "groq_batches")) == sorted(truth)


# --- Mistral ------------------------------------------------------------------------------------------------------
def test_mistrals_sdk_pages_the_batch_jobs_list_by_page_number(org: SimulatedOrg) -> None:
    """`Mistral().batch.jobs.list(page=...)` (its types strict: every field the simulator sends must fit them) pages
    the whole list, newest first by default, and `total` says when to stop."""
    mistralai = pytest.importorskip("mistralai.client")
    with SimulatorServer(org) as server:
        client = mistralai.Mistral(api_key=MISTRAL_KEY, server_url=root(server) + "/mistral")
        seen: list[Any] = []
        for number in range(MAX_PAGES):
            page = client.batch.jobs.list(page=number, page_size=25)
            seen.extend(page.data)
            if (number + 1) * 25 >= page.total:
                break
        assert page.total == 70 and listed(server, "/mistral/v1/batch/jobs") == 3
        truth = {(r := sim.mistral_job(b, server._other_ids))["id"]: r for b in org.batches(MISTRAL)}
        assert [j.id for j in seen] == list(truth)  # newest first, each once
        for job in seen:
            want = truth[job.id]
            assert (job.status, job.total_requests, job.succeeded_requests, job.created_at) == (
                want["status"],
                want["total_requests"],
                want["succeeded_requests"],
                want["created_at"],
            )
        one = client.batch.jobs.get(job_id=seen[0].id)
        assert one.id == seen[0].id and one.status == seen[0].status


def test_paging_mistrals_newest_first_list_by_page_number_while_jobs_arrive_doubles_jobs_the_loader_does_not(
    db: str, org: SimulatedOrg
) -> None:
    """New jobs arrive while a client pages (`mistral_arrivals`: 5 after each page): the SDK's default paging (page
    numbers over `-created`) sees jobs it already had pushed onto the next page, and ends without some of the jobs
    that exist; the loader pages oldest first from `created_after` and holds every job once."""
    mistralai = pytest.importorskip("mistralai.client")
    with SimulatorServer(org, mistral_arrivals=5) as server:
        client = mistralai.Mistral(api_key=MISTRAL_KEY, server_url=root(server) + "/mistral")
        seen: list[str] = []
        for number in range(MAX_PAGES):
            page = client.batch.jobs.list(page=number, page_size=25)
            seen.extend(j.id for j in page.data)
            if not page.data or (number + 1) * 25 >= page.total:
                break
        doubled = [i for i, n in Counter(seen).items() if n > 1]
        there = {sim.mistral_job(b, server._other_ids)["id"] for b in org.batches(MISTRAL)}
        assert doubled and there - set(seen)  # some jobs twice, some never

        load(db, "mistral", MISTRAL_KEY, root(server) + sim.PREFIXES["mistral"])
        loaded = ids_in(db, "mistral_batches")
        assert len(loaded) == len(set(loaded))
        # every job there when the load began is loaded (jobs arriving during it may wait for the next run)
        assert set(seen) | (there - set(seen)) <= set(loaded)


# --- Together -----------------------------------------------------------------------------------------------------
def test_togethers_sdk_reads_the_bare_array_and_the_openai_sdk_fails_on_it(db: str, org: SimulatedOrg) -> None:
    """Together's list is a bare JSON array: `together.Together().batches.list()` reads it (one request, every job,
    its upper-case statuses and RFC 3339 times); the official `openai` SDK pointed at the same endpoint cannot (it
    expects OpenAI's envelope) and raises; the loader loads every job."""
    together = pytest.importorskip("together")
    openai = pytest.importorskip("openai")
    with SimulatorServer(org, together_order="shuffled") as server:
        base = root(server) + sim.PREFIXES["together"]
        # together 3.x takes the API's root (TOGETHER_BASE_URL, default https://api.together.ai) and adds /v1 itself
        sdk_root = base.removesuffix("/v1")
        jobs = together.Together(api_key=TOGETHER_KEY, base_url=sdk_root, max_retries=0, timeout=10).batches.list()
        truth = {(r := sim.together_batch(b, server._other_ids))["id"]: r for b in org.batches(TOGETHER)}
        assert sorted(j.id for j in jobs) == sorted(truth)
        for job in jobs:
            assert job.status == truth[job.id]["status"] and job.status.isupper()
            assert job.created_at is not None and job.created_at.isoformat().startswith(
                truth[job.id]["created_at"][:19]
            )
        assert listed(server, "/together/v1/batches") == 1

        generic = openai.OpenAI(api_key=TOGETHER_KEY, base_url=base, max_retries=0, timeout=10)
        with pytest.raises(Exception) as failed:  # noqa: PT011 - whatever the SDK raises: it cannot read the list
            list(itertools.islice(generic.batches.list(), MAX_PAGES * 20))
        assert not isinstance(failed.value, openai.APIStatusError)  # the answer was a 200: the shape defeats it

        load(db, "together", TOGETHER_KEY, base)
        assert sorted(ids_in(db, "together_batches")) == sorted(truth)
