"""`openai-batches report` in every format and as an HTML page, through the real CLI."""

from __future__ import annotations

import ast
import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from openai_batches.analysis import print_terminal_report
from openai_batches.analysis.queries import load_queries
from openai_batches.cli import main as cli
from openai_batches.load.runner import run_load
from openai_batches.settings import DEMO_DB_PATH
from openai_batches.simulator import SimClock, SimulatedOrg, SimulatorServer

from .support.analysis import load_batches, odd_batches
from .support.assertions import table
from .support.cli import cli_env, run_cli
from .support.workload import KEY_A, KEY_B, NOW, PROJECT_A, PROJECT_B, config_for, load

REPO = Path(__file__).resolve().parents[1]
REPORT_NAMES = [q.name for q in load_queries()]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A history on both sides of the September 2025 usage cutoff, so some batches are unpriced."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLT_DATA_DIR", str(root / "dlt"))
        mp.setenv("DLT_PROJECT_DIR", str(root / "project"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        (root / "project").mkdir()
        org = SimulatedOrg(projects={KEY_A: PROJECT_A, KEY_B: PROJECT_B}, clock=SimClock(start=NOW), seed=5)
        org.generate_history(400, days=450, open_fraction=0.02)
        org.create_batch(project=PROJECT_A, created_at=NOW - 86_400, outcome="completed", model="acme-llm-7b")
        db = str(root / "report.duckdb")
        with SimulatorServer(org) as server:
            # With the request ledger: every format shows its reports too.
            assert run_load(db, config_for(server.base_url, KEY_A, KEY_B, requests=True)).ok
        yield db


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_format_prints_every_report(report_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", report_db)
    assert code == 0, err
    for name in REPORT_NAMES:
        assert f"{name}:" in out, name
    assert "unpriced" in out
    assert "more rows: openai-batches report --only" in out  # long reports are cut on a terminal


def test_json_is_one_object_keyed_by_report_name(report_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", report_db, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == REPORT_NAMES
    summary = doc["cost_summary"][0]
    assert summary["batches"] == 401 and summary["unpriced_batches"] > 0 and summary["cost_usd"] > 0
    unpriced = {(r["reason"], r["model"]) for r in doc["unpriced_usage"]}
    assert ("no usage reported", "(not reported)") in unpriced and ("no price for model", "acme-llm-7b") in unpriced
    assert all(isinstance(r["day"], str) for r in doc["cost_by_day_model"])


def test_csv_one_report_is_plain_csv_and_several_are_labelled(
    report_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(capsys, "--db", report_db, "--format", "csv", "--only", "cost_by_project")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["project"] for r in rows} == {PROJECT_A, PROJECT_B}
    assert sum(int(r["batches"]) for r in rows) == 401
    code, out, _ = report(capsys, "--db", report_db, "--format", "csv")
    assert code == 0
    assert [line.split(":")[0][2:] for line in out.splitlines() if line.startswith("# ")] == REPORT_NAMES


def test_markdown_has_a_section_and_table_per_report(report_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--db", report_db, "--format", "markdown")
    assert code == 0, err
    for name in REPORT_NAMES:
        assert f"## {name}\n" in out
    assert "| batches | priced_batches | unpriced_batches |" in out
    # A model without a price shows "unpriced" in its cost cells, not an empty cell or 0.
    section = out.split("## cache_savings\n")[1].split("\n## ")[0]
    (row,) = [line for line in section.splitlines() if line.startswith("| acme-llm-7b |")]
    assert row.endswith("| unpriced | unpriced |")


def test_since_limits_the_reports(report_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with duckdb.connect(report_db, read_only=True) as con:
        expected = con.execute(
            "SELECT count(*) FROM openai_batches.batches WHERE created_at >= TIMESTAMPTZ '2026-10-01 00:00:00+00'"
        ).fetchone()
    code, out, err = report(capsys, "--db", report_db, "--format", "json", "--since", "2026-10-01")
    assert code == 0, err
    assert (json.loads(out)["cost_summary"][0]["batches"],) == expected


def test_the_installed_command(report_db: str) -> None:
    exe = Path(sys.executable).parent / "openai-batches"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "openai_batches.cli.main"]
    # A machine far from UTC: times in the report are still UTC.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")} | {"TZ": "Asia/Tokyo"}
    done = subprocess.run(
        [
            *command,
            "report",
            "--db",
            report_db,
            "--format",
            "json",
            "--only",
            "cost_summary",
            "--only",
            "top_expensive_batches",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["cost_summary"][0]["batches"] == 401
    assert all(r["created_at"].endswith("+00:00") for r in doc["top_expensive_batches"])


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "data")]


def test_html_page_is_self_contained_with_its_charts(
    report_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    code, out, err = report(capsys, "--db", report_db, "--html", str(page))
    assert code == 0, err
    assert f"wrote {page}" in out
    text = page.read_text()
    parser = _Page()
    parser.feed(text)
    assert parser.tags.count("svg") == 4  # cost per day, throughput, turnaround, failure rates
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert not [u for u in parser.urls if not u.startswith("#")], parser.urls
    assert not re.search(r"url\(\s*['\"]?https?:|@import", text)
    assert "could not be priced" in text
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # four inline SVGs must not share element ids
    for name in REPORT_NAMES:
        assert f'<h2 id="{name}">' in text


# Run inside the rendered page (a copy of it; the page itself has no script): every chart laid out with marks
# drawn, the caveats callout visible, and any error or console.error the page caused. The verdict is written
# into the DOM, which Chromium prints with --dump-dom.
_PAGE_PROBE = """<script>
const problems = [];
window.addEventListener("error", e => problems.push("error: " + e.message));
const consoleError = console.error;
console.error = (...args) => { problems.push("console.error: " + args.join(" ")); consoleError(...args); };
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("svg")].map(svg => {
    const box = svg.getBoundingClientRect();
    return {width: box.width, height: box.height, marks: svg.querySelectorAll("path, rect, line").length};
  });
  const caveats = document.querySelector(".caveats");
  const verdict = {charts, caveatsShown: !!caveats && caveats.offsetHeight > 0 && caveats.innerText.length > 0,
                   problems};
  const out = document.createElement("pre");
  out.id = "probe-verdict";
  out.textContent = JSON.stringify(verdict);
  document.body.appendChild(out);
});
</script>"""

# What Chromium needs to run here: no sandbox (root in a container), no GPU, nothing fetched in the
# background, and a profile of its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no headless browser installed")
def test_html_page_renders_in_a_headless_browser(tmp_path: Path) -> None:
    # odd values the API sends (a batch completed before it was created, usage missing, ...): caveats to show
    db, page, probed = str(tmp_path / "odd.duckdb"), tmp_path / "report.html", tmp_path / "probed.html"
    load_batches(db, list(odd_batches().values()))
    assert cli.main(["report", "--db", db, "--html", str(page)]) == 0
    probed.write_text(page.read_text().replace("<head>", "<head>" + _PAGE_PROBE, 1))
    done = subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1200,4000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r'<pre id="probe-verdict">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    verdict = json.loads(html.unescape(found.group(1)))
    assert verdict["problems"] == []
    assert len(verdict["charts"]) == 4  # cost per day, throughput, turnaround, failure rates
    for chart in verdict["charts"]:
        assert chart["width"] > 100 and chart["height"] > 100 and chart["marks"] > 10, chart
    assert verdict["caveatsShown"]


def test_terminal_report_for_make_run(report_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    print_terminal_report(report_db)
    out = capsys.readouterr().out
    assert "cost_summary:" in out and "open_batches:" in out


def test_errors_are_one_line_and_exit_codes(report_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "--db", str(tmp_path / "missing.duckdb"))
    assert code == 2 and "no database at" in err
    code, _, err = report(capsys, "--db", report_db, "--since", "last week")
    assert code == 2 and "--since" in err
    code, _, err = report(capsys, "--db", report_db, "--only", "no_such_report")
    assert code == 2 and "unknown report" in err
    bad = tmp_path / "prices.toml"
    bad.write_text("[[prices]]\nmodel = 'x'\n")
    code, _, err = report(capsys, "--db", report_db, "--prices", str(bad))
    assert code == 2 and "input" in err
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    code, _, err = report(capsys, "--db", str(empty))
    assert code == 1 and "nothing has been loaded" in err
    print_terminal_report(str(empty))  # after a load of an empty organisation: a message, not a crash
    assert "No batches loaded yet" in capsys.readouterr().err


def test_report_waits_for_a_running_load_then_says_busy(
    report_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from openai_batches import settings
    from openai_batches.storage.lock import database_lock

    monkeypatch.setattr(settings, "DEFAULT_LOCK_WAIT_S", 0.3)
    with database_lock(report_db, wait=0):  # as a load holds it
        code, _, err = report(capsys, "--db", report_db, "--only", "cost_summary")
    assert code == 75 and "gave up after waiting" in err


def test_without_a_database_configured_the_demo_one_is_used(
    report_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(report_db, tmp_path / DEMO_DB_PATH)
    code, out, err = report(capsys, "--format", "json", "--only", "cost_summary")
    assert code == 0, err
    assert "demo database" in err
    assert json.loads(out)["cost_summary"][0]["batches"] == 401


# --- nothing a user does to the database fails a load; reading needs no write access -----------------------
def test_a_user_table_named_like_a_view_never_fails_a_committed_load(tmp_path: Path) -> None:
    from .support.cli import error_lines
    from .support.fake_api import ScriptedApi, newest_first, serve_all

    batches = newest_first(3)
    route = [serve_all(batches[1:])]
    db = str(tmp_path / "user.duckdb")
    with ScriptedApi(lambda path, query, n: route[0](path, query, n)) as api:
        env = cli_env(OPENAI_API_KEY="sk-test-user-table-0123456789", OPENAI_BASE_URL=api.base_url)
        first = run_cli("load", "--db", db, env=env)
        assert first.returncode == 0, first.stderr
        with duckdb.connect(db) as con:  # a user's own table, named like one of the report views
            con.execute("DROP VIEW openai_batches.batch_costs")
            con.execute("CREATE TABLE openai_batches.batch_costs AS SELECT 42 AS mine")
        route[0] = serve_all(batches)
        second = run_cli("load", "--db", db, env=env)
    assert second.returncode == 0, second.stderr
    assert not error_lines(second.stderr) and "Traceback" not in second.stderr
    warnings = [line for line in second.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, second.stderr
    assert "openai_batches.batch_costs" in warnings[0] and "RENAME" in warnings[0]
    assert "1 new" in second.stdout
    assert table(db, "SELECT count(*) FROM openai_batches.batches") == [(3,)]
    assert table(db, "SELECT * FROM openai_batches.batch_costs") == [(42,)]  # the user's table is untouched
    done = run_cli("report", "--db", db, "--format", "json", "--only", "cost_summary", env=cli_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cost_summary"][0]["batches"] == 3


def test_html_into_a_directory_is_a_usage_error(
    report_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for target, message in ((tmp_path, "is a directory"), (tmp_path / "no" / "such" / "report.html", "does not exist")):
        code, out, err = report(capsys, "--db", report_db, "--html", str(target))
        assert code == 2, (out, err)
        assert "unexpected" not in err and "Traceback" not in err
        (error,) = [line for line in err.splitlines() if line.startswith("error:")]
        assert "--html" in error and message in error


def _without_write_permission(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user who may read but not write: root without the capabilities that bypass file
    permissions (setpriv), or the current user when it is not root."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv to drop the right to write anywhere")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "openai_batches.cli.main", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=120,
    )


def test_report_reads_a_database_in_a_read_only_directory(report_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    db = folder / "copy.duckdb"
    shutil.copy(report_db, db)
    page = tmp_path / "page.html"
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        done = _without_write_permission("report", "--db", str(db), "--format", "json", cwd=REPO)
        page_done = _without_write_permission("report", "--db", str(db), "--html", str(page), cwd=REPO)
        listing = sorted(p.name for p in folder.iterdir())
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cost_summary"][0]["batches"] == 401
    assert page_done.returncode == 0, page_done.stderr
    assert "could not be priced" in page.read_text()
    assert listing == ["copy.duckdb"]  # no lock file, no WAL, nothing written


def _stored_views(db: str) -> int:
    return table(db, "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'openai_batches'")[0][0]


def test_report_never_writes_and_run_refreshes_only_under_the_exclusive_lock(
    db: str,
    org: SimulatedOrg,
    server: SimulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from openai_batches import settings
    from openai_batches.storage.lock import database_lock

    org.generate_history(60, project=PROJECT_A, days=30)
    assert load(db, server).ok
    assert _stored_views(db) == 0  # loaded by the runner alone: nothing stored for direct SQL yet
    before = hashlib.sha256(Path(db).read_bytes()).hexdigest()
    code, out, err = report(capsys, "--db", db, "--format", "json")
    assert code == 0, err
    code, _, err = report(capsys, "--db", db, "--html", str(tmp_path / "page.html"))
    assert code == 0, err
    assert hashlib.sha256(Path(db).read_bytes()).hexdigest() == before
    # `run`'s report stores what is missing, but only holding the lock a load holds: with a reader in
    # the way it cannot take it, says so, and still prints the reports.
    monkeypatch.setattr(settings, "DEFAULT_LOCK_WAIT_S", 0.3)
    with database_lock(db, wait=0, shared=True):
        print_terminal_report(db)
    out, err = capsys.readouterr()
    assert "cost_summary:" in out and "not refreshed" in err
    assert _stored_views(db) == 0
    print_terminal_report(db)
    out, err = capsys.readouterr()
    assert "cost_summary:" in out and "stored the current report views" in err
    assert _stored_views(db) >= 9
    print_terminal_report(db)  # now current: nothing to store
    assert "stored" not in capsys.readouterr().err


# --- structure ----------------------------------------------------------------------------------------------
def _declared_distributions() -> set[str]:
    import tomllib

    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0] for dep in doc["project"]["dependencies"]]
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def test_every_imported_package_is_declared() -> None:
    from importlib.metadata import packages_distributions

    imported: set[str] = set()
    for path in (REPO / "pipelines").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"openai_batches", "__future__"}
    owners = packages_distributions()
    declared = _declared_distributions()
    undeclared = {
        module: owners.get(module, ["?"])
        for module in third_party
        if not any(re.sub(r"[-_.]+", "-", d).lower() in declared for d in owners.get(module, []))
    }
    assert not undeclared, undeclared


def test_the_wheel_ships_the_queries_and_report_runs_outside_the_repository(report_db: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("pipelines", "queries"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name for n in archive.namelist() if n.endswith(".sql")}
    assert shipped == {p.name for p in (REPO / "queries").glob("*.sql")}
    # A fresh environment with only the wheel installed; its dependencies come from this one.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python*/site-packages")
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "dependencies.pth").write_text(f"{deps}\n")
    installed = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for exe in (venv / "bin" / "openai-batches", Path(sys.executable).parent / "openai-batches"):  # wheel, editable
        if not exe.exists():
            continue
        done = subprocess.run(
            [str(exe), "report", "--db", report_db, "--format", "json"],
            capture_output=True,
            text=True,
            env=cli_env(),
            cwd=elsewhere,
            timeout=120,
        )
        assert done.returncode == 0, (exe, done.stderr)
        assert list(json.loads(done.stdout)) == REPORT_NAMES, exe
