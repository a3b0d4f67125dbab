"""The request ledger (`load --requests`), over real HTTP against the simulator (and a scripted loopback
API for lines no real server sends): equal to the simulator's truth request by request, files read once,
in expiry order within the budget, gone files recorded, failures retried on the next run, and the
requests' content nowhere the pipeline writes."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.analysis import reading, refresh_after_load
from openai_batches.analysis.settings import LEDGER_OFF_NOTE, LEDGER_REPORTS
from openai_batches.cli import main as cli
from openai_batches.load.interrupt import GRACE_S
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.simulator import CONTENT_MARKER, CONTENT_MARKER_NUMBER_TEXT, Fault, SimulatedOrg, SimulatorServer
from openai_batches.simulator.batch_requests import OUTPUT_ERROR, ZERO_STATUS
from openai_batches.storage.destination import remove_duplicates_after_resume

from .support.assertions import table, walk
from .support.cli import cli_env, run_cli, spawn_cli
from .support.fake_api import ScriptedApi, make_batch, serve_all, serve_files
from .support.ledger import FIELDS, file_requests, files, finished, just_finished, ledger, load, truth
from .support.workload import (
    CHAT,
    DAY,
    EMBEDDINGS,
    ENDPOINTS,
    KEY_A,
    MODERATIONS,
    NO_QUIRKS,
    PROJECT_A,
    RESPONSES,
    config_for,
)

QUIRKS = {"missing_requests": 2, "zero_status_requests": 2, "output_error_requests": 2}


def views(db: str, sql: str) -> list[tuple[Any, ...]]:
    """`sql` over the analysis views, built in a read-only session as `report` builds them."""
    with reading(db) as analysis:
        return analysis.con.execute(sql).fetchall()


# ---------------------------------------------------------------------------------------------- truth
@pytest.mark.parametrize("compress", [False, True], ids=["identity", "gzip"])
def test_the_ledger_equals_the_simulators_truth_request_by_request(
    db: str, org: SimulatedOrg, server: SimulatorServer, compress: bool
) -> None:
    server.compress = compress  # every answer gzip-compressed, as Cloudflare in front of the API does
    quirky = {}
    clean = {}
    for endpoint in ENDPOINTS:
        for outcome in ("completed", "expired", "cancelled", "all_failed"):
            common = {"endpoint": endpoint, "outcome": outcome, "total_requests": 120, "failed_fraction": 0.1}
            quirky[finished(org, **common, **QUIRKS)] = (endpoint, outcome)
            clean[finished(org, **common, **NO_QUIRKS)] = (endpoint, outcome)
    # A cancelled batch without failures has no error file: the requests that never ran are in neither file.
    no_error_file = finished(org, endpoint=CHAT, outcome="cancelled", total_requests=150, failed_fraction=0.0)
    failed_validation = finished(org, outcome="failed")
    load(db, server)

    outcomes: Counter[str] = Counter()
    statuses: Counter[Any] = Counter()
    for batch_id in [*quirky, *clean, no_error_file]:
        expected = truth(org, batch_id)
        assert ledger(db, batch_id) == expected, (batch_id, quirky.get(batch_id) or clean.get(batch_id))
        outcomes.update(row[0] for row in expected.values())
        statuses.update((row[0], row[1]) for row in expected.values())
    assert set(outcomes) == {"succeeded", "failed", "expired", "cancelled", "missing"}
    assert statuses[("failed", 0)] > 0  # status_code 0 lines
    assert statuses[("failed", 500)] + statuses[("failed", 503)] > 0  # non-2xx lines in the output file
    roles = Counter(t.role for b in quirky for t in org.request_truth(b))
    assert roles[ZERO_STATUS] and roles[OUTPUT_ERROR]
    assert table(db, f"SELECT count(*) FROM openai_batches.batch_requests WHERE batch_id = '{failed_validation}'") == [
        (0,)
    ]
    assert {r[0] for r in ledger(db, no_error_file).values()} >= {"succeeded", "missing"}

    # The input file is read only where the output and error files do not account for every request (or
    # where there is neither: a batch cancelled before it ran anything).
    def needs_input(batch_id: str) -> bool:
        batch = org.get(batch_id)
        assert batch is not None
        in_files = sum(1 for t in org.request_truth(batch_id) if t.file != "missing")
        neither = not (batch["output_file_id"] or batch["error_file_id"])
        return in_files < batch["request_counts"]["total"] or neither

    inputs = {b for (b,) in table(db, "SELECT batch_id FROM openai_batches.batch_files WHERE kind = 'input'")}
    assert inputs == {b for b in [*quirky, *clean, no_error_file] if needs_input(b)} and no_error_file in inputs

    # ledger_check: clean batches agree with their counts and usage, quirky completed ones do not.
    check = dict(views(db, "SELECT batch_id, consistent FROM openai_batches.ledger_check"))
    assert all(check[b] for b in clean), [clean[b] for b in clean if not check[b]]
    assert not any(check[b] for b, (_, outcome) in quirky.items() if outcome == "completed")
    # Each clean batch's requests cost what the batch costs (the same prices and rules).
    costs = views(
        db,
        """SELECT r.batch_id, sum(r.cost_usd), any_value(c.cost_usd)
           FROM openai_batches.request_costs r JOIN openai_batches.batch_costs c ON c.id = r.batch_id
           WHERE c.priced GROUP BY r.batch_id""",
    )
    compared = [(b, mine, theirs) for b, mine, theirs in costs if b in clean and clean[b][0] != MODERATIONS]
    assert compared and all(mine == pytest.approx(theirs, rel=1e-9, abs=1e-12) for _, mine, theirs in compared)


def test_the_second_run_downloads_nothing(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    for endpoint in ENDPOINTS:
        finished(org, endpoint=endpoint, outcome="completed", total_requests=50, **QUIRKS)
    first = load(db, server)
    assert first.outcomes[0].stats.ledger is not None and first.outcomes[0].stats.ledger.files_read >= 10
    before = table(db, "SELECT * FROM openai_batches.batch_requests ORDER BY batch_id, custom_id")
    server.reset_requests()
    load(db, server)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/batches")]
    assert table(db, "SELECT * FROM openai_batches.batch_requests ORDER BY batch_id, custom_id") == before
    # A batch that finishes later is read by the run that sees it finished, and only its files.
    late = org.create_batch(
        project=PROJECT_A, outcome="completed", total_requests=30, processing_seconds=600, **NO_QUIRKS
    )
    load(db, server)
    assert ledger(db, late) == {}
    org.advance(2 * 3600)
    server.reset_requests()
    load(db, server)
    assert ledger(db, late) == truth(org, late)
    late_batch = org.get(late)
    assert late_batch is not None
    wanted = {late_batch[f"{kind}_file_id"] for kind in ("output", "error")} - {None}
    assert {p.split("/")[3] for p in file_requests(server)} == wanted


# ---------------------------------------------------------------------------------------------- expiry
def test_an_expired_file_is_gone_and_the_load_exits_0(
    db: str,
    org: SimulatedOrg,
    server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    short = just_finished(
        org,
        outcome="completed",
        total_requests=40,
        failed_fraction=0.1,
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    kept = just_finished(org, outcome="completed", total_requests=40, failed_fraction=0.1)
    org.advance(2 * 3600)  # the short-lived batch's files expired an hour ago
    monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    # Its expiry is unknown (the 404 came when it was first described): gone after three runs in a row
    # answered 404, as a batch is; until then it waits, and the load exits 0.
    for _ in range(2):
        assert cli.main(["load", "--db", db, "--requests"]) == 0
        assert {s for s, _, _ in files(db, short).values()} == {"pending"}
    assert cli.main(["load", "--db", db, "--requests"]) == 0
    out = capsys.readouterr().out
    assert "2 files gone (expired or deleted)" in out
    assert files(db, short) == {"output": ("gone", None, None), "error": ("gone", None, None)}
    assert ledger(db, short) == {}  # nothing read, nothing called missing
    assert ledger(db, kept) == truth(org, kept)
    assert {s for s, _, _ in files(db, kept).values()} == {"read"}
    assert views(db, f"SELECT count(*) FROM openai_batches.ledger_check WHERE batch_id = '{short}'") == [(0,)]


def test_the_budget_reads_files_that_expire_first_and_leaves_the_rest_for_the_next_runs(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    def batch(seconds: int, size: int = 700_000) -> str:
        return just_finished(
            org, outcome="completed", output_bytes=size, total_requests=size // 20_000, failed_fraction=0.0,
            output_expires_after={"anchor": "created_at", "seconds": seconds}, **NO_QUIRKS,
        )  # fmt: skip

    late, soon, middle = batch(20 * DAY), batch(2 * 3600), batch(5 * DAY)
    # Each output file is ~700 kB; 1 MB a run reads one batch and leaves the others for the next runs.
    first = load(db, server, requests_max_mb_per_run=1)
    counts = first.outcomes[0].stats.ledger
    assert counts is not None and (counts.batches_read, counts.batches_pending) == (1, 2)
    assert ledger(db, soon) == truth(org, soon)
    size = {f.kind: f.bytes for f in org.files.batch_files(late)}["output"]
    assert files(db, late) == {"output": ("pending", size, None)}
    assert ledger(db, middle) == ledger(db, late) == {}
    load(db, server, requests_max_mb_per_run=1)
    assert ledger(db, middle) == truth(org, middle) and ledger(db, late) == {}
    load(db, server, requests_max_mb_per_run=1)
    assert ledger(db, late) == truth(org, late)
    read_at = dict(table(db, "SELECT batch_id, read_at FROM openai_batches.batch_files"))
    assert read_at[soon] < read_at[middle] < read_at[late]
    # The first batch is always read, however large: a budget below one file does not starve it.
    assert table(db, "SELECT count(*) FROM openai_batches.batch_files WHERE state = 'pending'") == [(0,)]
    big = batch(3 * 3600, size=2_000_000)
    load(db, server, requests_max_mb_per_run=1)
    assert ledger(db, big) == truth(org, big)


def test_a_file_that_expires_while_pending_is_recorded_gone(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    def batch(seconds: int) -> str:
        return just_finished(
            org, outcome="completed", output_bytes=700_000, total_requests=35,
            output_expires_after={"anchor": "created_at", "seconds": seconds}, **NO_QUIRKS,
        )  # fmt: skip

    first, second = batch(3600), batch(2 * 3600)
    load(db, server, requests_max_mb_per_run=1)
    assert ledger(db, first) == truth(org, first) and files(db, second)["output"][0] == "pending"
    org.advance(3 * 3600)  # `second` expires before the next run: its download answers 404
    server.reset_requests()
    result = load(db, server, requests_max_mb_per_run=1)
    assert file_requests(server) == [f"/v1/files/{org.get(second)['output_file_id']}/content"]  # size known: no GET
    assert files(db, second) == {"output": ("gone", None, None)}
    assert result.outcomes[0].stats.ledger is not None and result.outcomes[0].stats.ledger.files_gone == 1


def test_batches_that_finished_longer_ago_than_files_are_kept_are_not_asked_for(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    old = finished(org, days_ago=40, outcome="completed", total_requests=20)
    recent = finished(org, days_ago=20, outcome="completed", total_requests=20)
    result = load(db, server)
    assert ledger(db, recent) == truth(org, recent)
    assert all(org.get(old)["output_file_id"] not in p for p in file_requests(server))
    assert result.outcomes[0].stats.ledger is not None and result.outcomes[0].stats.ledger.too_old == 1


# ---------------------------------------------------------------------------------------------- failures
def test_a_download_cut_halfway_is_read_again_from_the_start(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = finished(org, endpoint=RESPONSES, outcome="completed", total_requests=300, **QUIRKS)
    content = f"/v1/files/{org.get(batch_id)['output_file_id']}/content"
    server.inject(Fault("truncated-json", path_prefix=content))
    load(db, server)
    assert file_requests(server).count(content) == 2
    assert ledger(db, batch_id) == truth(org, batch_id)  # no line twice, none lost


def test_a_file_failing_after_the_retries_leaves_its_batch_pending_until_a_run_reads_it(
    db: str, org: SimulatedOrg, server: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    broken = finished(org, endpoint=CHAT, outcome="completed", total_requests=60, failed_fraction=0.1, **NO_QUIRKS)
    fine = finished(org, endpoint=CHAT, outcome="completed", total_requests=60, failed_fraction=0.1, **NO_QUIRKS)
    content = f"/v1/files/{org.get(broken)['error_file_id']}/content"
    server.inject(Fault("500", count=2, path_prefix=content))
    result = load(db, server, max_attempts=2)
    counts = result.outcomes[0].stats.ledger
    assert counts is not None and (counts.files_failed, counts.batches_pending) == (1, 1)
    assert "left for the next run" in caplog.text and "HTTP 500" in caplog.text
    assert ledger(db, broken) == {} and ledger(db, fine) == truth(org, fine)
    assert {kind: state for kind, (state, *_) in files(db, broken).items()} == {"output": "pending", "error": "pending"}
    load(db, server)
    assert ledger(db, broken) == truth(org, broken)
    assert {state for state, *_ in files(db, broken).values()} == {"read"}


def test_a_key_that_may_not_read_files_fails_the_run_as_for_the_list(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    finished(org, outcome="completed", total_requests=20)
    server.inject(Fault("403", count=10, path_prefix="/v1/files/"))
    result = run_load(db, config_for(server.base_url, KEY_A, requests=True))
    assert not result.ok and "HTTP 403" in str(result.outcomes[0].error)
    assert "/files/" in str(result.outcomes[0].error)


# ---------------------------------------------------------------------------------------------- when
def test_the_ledger_is_off_by_default_and_on_by_flag_config_or_environment(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = finished(org, outcome="completed", total_requests=20)
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    off = run_cli("load", "--db", str(tmp_path / "off.duckdb"), env=env)
    assert off.returncode == 0 and file_requests(server) == [] and "ledger:" not in off.stdout
    on = run_cli("load", "--db", str(tmp_path / "env.duckdb"), env={**env, "SOURCES__OPENAI_BATCHES__REQUESTS": "true"})
    assert on.returncode == 0 and "ledger: 20 requests of 1 batch" in on.stdout, on.stdout + on.stderr
    assert ledger(str(tmp_path / "env.duckdb"), batch_id) == truth(org, batch_id)
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    (project / ".dlt" / "config.toml").write_text(
        "[sources.openai_batches]\nrequests = true\nrequests_max_mb_per_run = 64\n"
    )
    by_config = run_cli("load", "--db", str(tmp_path / "config.duckdb"), env={**env, "DLT_PROJECT_DIR": str(project)})
    assert by_config.returncode == 0 and "ledger: 20 requests" in by_config.stdout
    for bad, message in (
        ('requests = "maybe"', "must be true or false"),
        ("requests_max_mb_per_run = 0", "at least 1"),
    ):
        (project / ".dlt" / "config.toml").write_text(f"[sources.openai_batches]\n{bad}\n")
        refused = run_cli("load", "--db", str(tmp_path / "bad.duckdb"), env={**env, "DLT_PROJECT_DIR": str(project)})
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr


def test_turning_the_ledger_on_later_reads_what_finished_meanwhile_once(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    before = finished(org, outcome="completed", total_requests=30)
    load(db, server, requests=False)
    assert file_requests(server) == []
    while_off = just_finished(org, outcome="completed", total_requests=30)
    load(db, server, requests=False)
    load(db, server)  # the ledger lists the history once and reads what finished while it was off
    assert ledger(db, before) == truth(org, before) and ledger(db, while_off) == truth(org, while_off)
    server.reset_requests()
    load(db, server)
    assert [r.path for r in server.requests] == ["/v1/batches"]


def test_a_full_refresh_does_not_read_files_again(db: str, org: SimulatedOrg, server: SimulatorServer) -> None:
    batch_id = finished(org, outcome="completed", total_requests=30)
    load(db, server)
    new = just_finished(org, outcome="completed", total_requests=30)
    server.reset_requests()
    load(db, server, full_refresh=True)
    read = {p.split("/")[3] for p in file_requests(server)}
    assert org.get(batch_id)["output_file_id"] not in read and org.get(new)["output_file_id"] in read
    assert ledger(db, batch_id) == truth(org, batch_id) and ledger(db, new) == truth(org, new)


# ---------------------------------------------------------------------------------------------- content
def test_the_content_marker_is_nowhere_the_pipeline_writes(
    tmp_path: Path, db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batches = [
        finished(org, endpoint=endpoint, outcome=outcome, total_requests=80, failed_fraction=0.2, **QUIRKS)
        for endpoint in ENDPOINTS
        for outcome in ("completed", "expired", "cancelled")
    ]
    # A download cut halfway (its retry logs a warning) and one that fails for good (a warning, pending).
    server.inject(Fault("truncated-json", path_prefix=f"/v1/files/{org.get(batches[0])['output_file_id']}/content"))
    server.inject(Fault("500", count=2, path_prefix=f"/v1/files/{org.get(batches[1])['error_file_id']}/content"))
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url, SOURCES__OPENAI_BATCHES__MAX_ATTEMPTS="2")
    runs = [run_cli("-v", "load", "--db", db, "--requests", env=env) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "ledger:" in runs[0].stdout and "left for the next run" in runs[0].stderr
    assert table(db, "SELECT count(*) FROM openai_batches.batch_requests")[0][0] == sum(
        len(truth(org, b)) for b in batches
    )
    report = run_cli("report", "--db", db, "--format", "json", env=env)
    html = tmp_path / "report.html"
    page = run_cli("report", "--db", db, "--html", str(html), env=env)
    assert report.returncode == page.returncode == 0
    markers = (CONTENT_MARKER, CONTENT_MARKER_NUMBER_TEXT)
    for run in [*runs, report, page]:
        for marker in markers:
            assert marker not in run.stdout + run.stderr
    written = [p for p in walk(tmp_path) if p.suffix != ".pyc"]
    assert any(p.name == "report.html" for p in written) and any("dlt" in p.parts for p in written)
    for path in written:
        data = path.read_bytes()
        for marker in markers:
            assert marker.encode() not in data, path
    # DuckDB may compress strings on disk: every text value of every table is searched too.
    with duckdb.connect(db, read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON')"
        ).fetchall()
        assert len(columns) > 30
        for schema, name, column in columns:
            found = con.execute(
                f'SELECT count(*) FROM "{schema}"."{name}" WHERE contains("{column}", ?) OR contains("{column}", ?)',
                list(markers),
            ).fetchone()
            assert found == (0,), (name, column)


def test_hostile_lines_are_skipped_or_cleaned_never_shown(db: str, caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-test-hostile-0123456789abcdefXYZ"
    secret_text = "SECRET-PROMPT-TEXT"
    batch = make_batch(1, output_file_id="file-out1", error_file_id="file-err1", input_file_id="file-in1")
    batch["request_counts"] = {"total": 6, "completed": 4, "failed": 2}
    batch["completed_at"] = batch["created_at"] + 120
    usage = {"prompt_tokens": "12", "completion_tokens": 3.0}  # numbers as text and as floats: coerced exactly
    body = {"id": "chatcmpl-1", "model": "m", "choices": [secret_text], "usage": usage}
    ok = {"status_code": 200, "request_id": "req_1", "body": body}
    long_message = f"\x1b[31mbad\x1b[0m {key} " + "x" * 10_000
    output = b"\n".join(
        [
            json.dumps({"id": "l1", "custom_id": "a", "response": ok, "error": None}).encode(),
            b'{"custom_id": "' + secret_text.encode() + b'", "response": ',  # cut: not JSON
            json.dumps({"id": "l3", "response": ok}).encode(),  # no custom_id
            json.dumps({"id": "l4", "custom_id": "a", "response": ok}).encode(),  # the same custom_id again
            json.dumps({"id": "l5", "custom_id": f"b-{key}\x07", "response": ok}).encode(),
        ]
    )  # no newline at the end
    error = json.dumps(
        {
            "custom_id": "c",
            "response": {
                "status_code": 400,
                "request_id": "req_3",
                "body": {"error": {"code": "bad\x1b]0;title\x07", "message": long_message}},
            },
        }  # fmt: skip
    ).encode()
    inputs = b"".join(json.dumps({"custom_id": c, "body": secret_text}).encode() + b"\n" for c in ("a", "c", "d"))
    bodies = {
        "/v1/files/file-out1/content": output,
        "/v1/files/file-err1/content": error,
        "/v1/files/file-in1/content": inputs,
    }
    route = serve_files(bodies, serve_all([batch]))

    with ScriptedApi(route, clock=lambda: batch["created_at"] + DAY) as api:
        result = run_load(db, config_for(api.base_url, key, requests=True))
    assert result.ok, result.outcomes[0].error
    rows = {
        r[0]: r[1:]
        for r in table(
            db,
            "SELECT custom_id, outcome, input_tokens, output_tokens, error_code, error_message "
            "FROM openai_batches.batch_requests",
        )
    }
    assert set(rows) == {"a", "b-***\x07", "c", "d"}, rows  # only the key is taken out of an identifier
    assert rows["a"][:3] == ("succeeded", 12, 3)
    outcome, _, _, code, message = rows["c"]
    assert outcome == "failed" and code == "bad" and len(message) <= 500 and message.startswith("bad ***")
    assert rows["d"][0] == "missing"
    assert "2 line(s) of output file file-out1 could not be read (first: line 2: not JSON)" in caplog.text
    assert "1 line(s) of output file file-out1 repeat a custom_id" in caplog.text
    everything = caplog.text + json.dumps(table(db, "SELECT * FROM openai_batches.batch_requests"), default=str)
    assert secret_text not in everything and key[8:] not in everything and "\x1b" not in everything


def test_a_key_echoed_in_a_custom_id_or_error_message_is_masked_recorded_and_named_in_caveats(tmp_path: Path) -> None:
    """Issue 16 (6): a configured key in a custom_id or an error message was masked silently (the stored
    `***` id no longer matched the user's, and nothing said so). It is masked in the database and every
    report, the row's `redacted_fields` names the column, `caveats` names the batch and the field; an id
    without a run of 8 characters of a key, even one made of shorter pieces of it, is stored byte for byte."""
    key = "sk-proj-EchoedLedgerKey-4Tq8Wm2Zx7Lp9Vb3"
    lookalike = "sk-proj_4Tq8Wm2\tZx7Lp9V  é"  # 7-character pieces of the key, a tab, two spaces: not a key
    batch = make_batch(1, output_file_id="file-out1", error_file_id="file-err1")
    batch["request_counts"] = {"total": 3, "completed": 2, "failed": 1}
    body = {"id": "chatcmpl-1", "model": "m", "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
    ok = {"status_code": 200, "request_id": "req_1", "body": body}
    output = b"".join(
        json.dumps({"custom_id": custom_id, "response": ok}).encode() + b"\n"
        for custom_id in (f"job-{key}-1", lookalike)
    )
    failed = {"status_code": 401, "request_id": "req_2", "body": {"error": {"code": "bad", "message": f"key {key}"}}}
    error = json.dumps({"custom_id": "job-2", "response": failed}).encode() + b"\n"
    bodies = {"/v1/files/file-out1/content": output, "/v1/files/file-err1/content": error}
    route = serve_files(bodies, serve_all([batch]))

    db = tmp_path / "echo.duckdb"
    html = tmp_path / "report.html"
    with ScriptedApi(route, clock=lambda: batch["created_at"] + DAY) as api:
        env = cli_env(OPENAI_API_KEY=key, OPENAI_BASE_URL=api.base_url)
        results = [run_cli("load", "--db", str(db), "--requests", env=env)]
    for fmt in ("table", "csv", "markdown", "json"):
        results.append(run_cli("report", "--db", str(db), "--format", fmt, env=env))
    results.append(run_cli("report", "--db", str(db), "--html", str(html), env=env))
    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
    rows = table(str(db), "SELECT custom_id, error_message, redacted_fields FROM openai_batches.batch_requests")
    stored = {custom_id: (message, json.loads(redacted) if redacted else None) for custom_id, message, redacted in rows}
    assert stored == {
        "job-***-1": (None, ["custom_id"]),
        lookalike: (None, None),
        "job-2": ("key ***", ["error_message"]),
    }
    caveats = json.loads(results[4].stdout)["caveats"]
    named = {r["caveat"]: r["example_id"] for r in caveats if "API key" in r["caveat"]}
    assert named == {
        "a configured API key the server sent back was masked (***) in batch_requests.custom_id": batch["id"],
        "a configured API key the server sent back was masked (***) in batch_requests.error_message": batch["id"],
    }
    shown = "".join(r.stdout + r.stderr for r in results) + html.read_text()
    assert "masked (***) in batch_requests.custom_id" in results[1].stdout and "batch_requests.error_message" in shown
    for needle in (key, key[8:20], key[-12:]):
        assert needle not in shown
        assert [str(p) for p in walk(tmp_path) if needle.encode() in p.read_bytes()] == []


def test_a_file_loaded_before_redacted_fields_existed_keeps_its_views_and_caveats(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """A file an older version loaded has no `redacted_fields` in `batches` or `batch_requests`; a run with
    nothing new writes neither table, so dlt adds no column: the stored views (caveats reads both columns)
    failed to build on every run until one did. They are added, empty, as dlt would add them."""
    finished(org, outcome="completed", total_requests=10)
    load(db, server)
    with duckdb.connect(db) as con:
        for name in ("batches", "batch_requests"):
            con.execute(f"ALTER TABLE openai_batches.{name} DROP COLUMN redacted_fields")
    assert refresh_after_load(db) == []
    load(db, server)  # with nothing new
    finished(org, outcome="completed", total_requests=5)
    load(db, server)  # dlt writes both tables into the columns added
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM openai_batches.caveats").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM openai_batches.batch_requests").fetchone() == (15,)


# ---------------------------------------------------------------------------------------------- reports
def test_reports_show_the_ledger_in_every_format(
    tmp_path: Path,
    db: str,
    org: SimulatedOrg,
    server: SimulatorServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for endpoint in (CHAT, RESPONSES):
        finished(org, endpoint=endpoint, outcome="completed", total_requests=60, failed_fraction=0.1, **QUIRKS)
    off = str(tmp_path / "off.duckdb")
    load(off, server, requests=False)
    capsys.readouterr()
    assert cli.main(["report", "--db", off]) == 0
    terminal = capsys.readouterr().out
    assert " ".join(LEDGER_OFF_NOTE.split()) in " ".join(terminal.split()) and "request_outcomes" not in terminal

    monkeypatch.setenv("OPENAI_API_KEY", KEY_A)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    assert cli.main(["load", "--db", db, "--requests"]) == 0  # as cron runs it: the views are stored too
    assert "ledger: 120 requests of 2 batches" in capsys.readouterr().out
    assert cli.main(["report", "--db", db, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(doc[name] for name in LEDGER_REPORTS if name != "ledger_check") and doc["ledger_check"]
    assert {r["outcome"] for r in doc["failure_reasons"]} == {"failed"}
    assert len(doc["missing_requests"]) == 4 and all(r["custom_id"] for r in doc["missing_requests"])
    outcomes = {(r["endpoint"], r["succeeded"], r["missing"]) for r in doc["request_outcomes"]}
    assert {e for e, _, m in outcomes if m == 2} == {CHAT, RESPONSES}
    assert cli.main(["report", "--db", db, "--format", "json", "--since", "2030-01-01"]) == 0
    scoped = json.loads(capsys.readouterr().out)
    assert all(scoped[name] == [] for name in LEDGER_REPORTS)
    for fmt, needle in (("csv", "# request_outcomes:"), ("markdown", "## cost_by_custom_id_prefix")):
        assert cli.main(["report", "--db", db, "--format", fmt]) == 0
        assert needle in capsys.readouterr().out
    html = tmp_path / "report.html"
    assert cli.main(["report", "--db", db, "--html", str(html)]) == 0
    page = html.read_text()
    assert '<h2 id="requests" class="group">' in page
    for name in LEDGER_REPORTS:
        section = page.split(f'<h2 id="{name}">', 1)[1].split("<h2", 1)[0]
        assert "<tbody><tr>" in section, name
    # A load stores the ledger's views in the file, for SQL run directly on it.
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM openai_batches.request_costs").fetchone() == (120,)
        assert con.execute("SELECT count(*) FROM openai_batches.ledger_check WHERE NOT consistent").fetchone() == (2,)


def test_a_resumed_load_that_staged_the_ledger_twice_keeps_one_row_per_request(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = finished(org, outcome="completed", total_requests=40, failed_fraction=0.1, **NO_QUIRKS)
    load(db, server)
    with duckdb.connect(db) as con:  # what a killed load's copy step, replayed on resume, leaves behind
        for name in ("batch_requests", "batch_files"):
            con.execute(f"INSERT INTO openai_batches.{name} SELECT * FROM openai_batches.{name}")
    pipeline = make_pipeline(db)
    with pipeline.sql_client() as client:
        assert remove_duplicates_after_resume(client) == 40 + 2
    assert ledger(db, batch_id) == truth(org, batch_id)
    assert table(db, "SELECT count(*) FROM openai_batches.batch_files") == [(2,)]


def test_the_ledger_works_in_any_dlt_pipeline(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`openai_batches(requests=True)` in a plain dlt pipeline (dlt's own DuckDB destination, jsonl files):
    the same tables and rows; the setting is also read the dlt way (SOURCES__OPENAI_BATCHES__REQUESTS)."""
    import dlt

    from openai_batches import openai_batches

    batch_id = finished(org, endpoint=EMBEDDINGS, outcome="expired", total_requests=60, failed_fraction=0.1, **QUIRKS)
    db = str(tmp_path / "anywhere.duckdb")
    pipeline = dlt.pipeline(pipeline_name="plain", destination=dlt.destinations.duckdb(db), dataset_name="plain")
    pipeline.run(openai_batches(api_key=KEY_A, base_url=server.base_url, requests=True))
    rows = table(db, f"SELECT custom_id, {', '.join(FIELDS)} FROM plain.batch_requests WHERE batch_id = '{batch_id}'")
    assert {row[0]: tuple(row[1:]) for row in rows} == truth(org, batch_id)
    server.reset_requests()
    pipeline.run(openai_batches(api_key=KEY_A, base_url=server.base_url, requests=True))
    assert [r.path for r in server.requests] == ["/v1/batches"]
    monkeypatch.setenv("SOURCES__OPENAI_BATCHES__REQUESTS", "true")
    other = dlt.pipeline(pipeline_name="by_env", destination=dlt.destinations.duckdb(db), dataset_name="by_env")
    other.run(openai_batches(api_key=KEY_A, base_url=server.base_url))
    assert table(db, f"SELECT count(*) FROM by_env.batch_requests WHERE batch_id = '{batch_id}'") == [(60,)]


def test_a_signal_during_a_download_stops_the_run_at_once_and_the_next_run_reads_the_file(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    batch_id = just_finished(org, outcome="completed", output_bytes=400_000_000, **NO_QUIRKS)
    content = f"/v1/files/{org.get(batch_id)['output_file_id']}/content"
    env = cli_env(OPENAI_API_KEY=KEY_A, OPENAI_BASE_URL=server.base_url)
    proc = spawn_cli("load", "--db", db, "--requests", env=env)
    deadline = time.monotonic() + 60
    while content not in file_requests(server):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    time.sleep(0.2)  # well into the download
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    # Before the watchdog would have ended it (GRACE_S after the signal): the run stopped by itself, mid-download.
    assert proc.returncode == 130 and time.monotonic() - signalled < GRACE_S, err
    assert "error: interrupted (SIGINT)" in err and "Traceback" not in err
    load(db, server)
    assert ledger(db, batch_id) == truth(org, batch_id)


def test_the_ledger_in_a_ducklake_reports_exactly_like_in_a_duckdb_file(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    for endpoint in (CHAT, EMBEDDINGS):
        finished(org, endpoint=endpoint, outcome="expired", total_requests=80, failed_fraction=0.1, **QUIRKS)
    env = cli_env(
        OPENAI_API_KEY=KEY_A,
        OPENAI_BASE_URL=server.base_url,
        DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG=f"duckdb:///{tmp_path / 'catalog'}.duckdb",
        DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE=str(tmp_path / "lake"),
        DLT_DATA_DIR=str(tmp_path / "dlt"),
    )
    reports = []
    for where in (["--destination", "ducklake"], ["--db", str(tmp_path / "file.duckdb")]):
        loaded = run_cli("load", *where, "--requests", env=env)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        only = [arg for name in LEDGER_REPORTS for arg in ("--only", name)]
        report = run_cli("report", *where, *only, "--format", "json", env=env)
        assert report.returncode == 0, report.stderr
        reports.append(json.loads(report.stdout))
    assert reports[0] == reports[1] and reports[0]["request_outcomes"] and reports[0]["missing_requests"]
