"""`make bench`: the load pipeline against the simulator, as a user runs it, and the numbers of issue 5.

Every measured run is the real `openai-batches load` (or a baseline script) in its own process, with
its own empty DLT_PROJECT_DIR, DLT_DATA_DIR, HOME and database file, pointed at a simulator that runs in
another process (so the simulator's memory and CPU are not the loader's). Peak RSS is the child's own
`ru_maxrss` from wait4(); requests are what the simulator served to the run.

Prints the table and writes bench/RESULTS.md. `--quick` runs fewer repetitions and no million-batch
history, for development;
`--only latency,throughput,incremental,memory,reports,ducklake,help,ledger,ledger-scale,anthropic,providers` picks
sections
(their rows then replace the same sections' rows in bench/RESULTS.md; the rest stays as measured); a provider's
name (`--only groq,mistral`) picks that provider's rows of the providers section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "openai-batches")
PY = sys.executable
KEY = "sk-sim-default"  # the simulator's default project key: not a secret
ANTHROPIC_KEY = "sk-ant-api03-sim-default"  # the simulator's Anthropic workspace key: not a secret
PAGE = 100  # the API's maximum page size, which the pipeline uses
ANTHROPIC_PAGE = 1000  # Anthropic's maximum page size, which the pipeline uses
SETTLE_S = 3 * 86_400  # after this much simulated time every generated batch is terminal

# Targets of issue 5.
LATENCY_RATIO_MAX = 1.15
SPEEDUP_VS_NAIVE_MIN = 5.0
FLOOR_RATIO_MAX = 2.0
RSS_MAX_MB = 400.0
QUERIES_MAX_S = 1.0  # issue 20, item 2 (issue 5 had 2 s)
STARTUP_MAX_S = 2.0
HELP_MAX_S = 0.3  # issue 9
# Targets of issue 10 (the request ledger).
LEDGER_MB_S_MIN = 100.0
LEDGER_RSS_MAX_MB = 300.0
# Issue 20, item 1: the ledger at a large organisation's scale (bench/ledger_history.py grows the history).
SCALE_HISTORIES = (10_000_000, 50_000_000)
SCALE_RSS_MAX_MB = 400.0  # `load --requests` on top of the largest history
SCALE_RSS_GROWTH_MAX = 0.10  # from the smallest history to the largest
SCALE_QUERY_MAX_S = 3.0  # each ledger query and each full read of `request_costs`, `ledger_check`
# Targets of issue 18 (Anthropic): the backfill against the bare paging loop at a network's latency (as OpenAI's
# latency section); on the local simulator with no latency the same ratio is a figure (what the loader's own CPU,
# writing and committing 100k rows, adds to a loop that discards its pages, on the simulator's 2 shared cores).
ANTHROPIC_BARE_RATIO_MAX = 1.1
# Issue 20, item 5: paging costs what the network costs (OpenAI, the latency section's backfill, same run).
LATENCY_BARE_RATIO_MAX = 1.03
# Issue 19: the other providers, each against its own bare paging loop (bench/bare_providers.py), in the order
# measured. Each history is modest (20k batches, ~1 min a provider with its repetitions): the rows compare requests
# and wall time with the bare loop's, which scale alike with the history.
OTHER_PROVIDERS = ("azure", "groq", "openai-compatible", "together", "mistral", "openrouter")
OTHER_BATCHES = 20_000
# Mistral's smaller: the simulator renders and sorts the account's whole list for every page-numbered page (a cost of
# the simulator, paid alike by the bare loop), ~1.5 s a page at 20k on this machine, minutes a run.
OTHER_BATCHES_OF = {"mistral": 5_000}
# Requests a run with nothing new costs, by provider: one list request wherever the list can say "nothing newer"
# (Mistral's from `created_after`, Together's whole array). Groq's list has no has_more: the head page and the one
# after it (empty when `after` is honoured), unless the loader can tell the head page ends the list.
NOCHANGE_REQUESTS = {"azure": 1, "openai-compatible": 1, "together": 1, "mistral": 1, "openrouter": 1}

# Environment that would let the caller's own configuration leak into a measured run.
_LEAKY_PREFIXES = (
    "OPENAI_",
    "ANTHROPIC_",
    "DLT_",
    "SOURCES__",
    "DESTINATION__",
    "NORMALIZE__",
    "LOAD__",
    "EXTRACT__",
    "DATA_WRITER__",
    "RUNTIME__",
    "PIPELINES__",
    "GROQ_",
    "AZURE_",
    "TOGETHER_",
    "MISTRAL_",
    "OPENROUTER_",
    "BARE_",
)


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class Run:
    label: str
    wall_s: float
    peak_rss_mb: float
    requests: int
    returncode: int
    output: str

    def check(self) -> Run:
        if self.returncode != 0:
            raise RuntimeError(f"{self.label} exited {self.returncode}:\n{self.output[-3000:]}")
        return self


class Simulator:
    """`openai-batches simulate --admin` in its own process; `/_sim/*` drives its clock and counts requests."""

    def __init__(
        self, batches: int, latency_ms: float = 0.0, anthropic_batches: int = 0, extra: Sequence[str] = ()
    ) -> None:
        self.batches = batches
        self.latency_ms = latency_ms
        self.anthropic_batches = anthropic_batches
        self.extra = tuple(extra)  # more `simulate` options (the other providers' histories)
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.anthropic_base_url = ""
        self.printed: dict[str, str] = {}  # every NAME=value line it printed (the providers' SDK variables)

    def __enter__(self) -> Simulator:
        cmd = [CLI, "simulate", "--port", "0", "--batches", str(self.batches), "--admin", "--seed", "0"]
        cmd += ["--anthropic-batches", str(self.anthropic_batches), *self.extra]
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env())
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if re.match(r"[A-Z_]+=", line):
                name, value = line.split("  #")[0].strip().split("=", 1)
                self.printed[name] = value
            if line.startswith("OPENAI_BASE_URL="):
                self.base_url = line.split("=", 1)[1].strip()
            elif line.startswith("ANTHROPIC_BASE_URL="):
                self.anthropic_base_url = line.split("=", 1)[1].strip()
            if line.startswith("Simulator keys only"):
                break
        if not self.base_url:
            self.proc.kill()
            raise RuntimeError("simulator did not start:\n" + "".join(seen))
        # Everything generated is settled (terminal): a no-change run then really has nothing to re-read.
        self.admin("POST", "advance", seconds=SETTLE_S)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin(self, method: str, action: str, **query: Any) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        request = urllib.request.Request(f"{root}/_sim/{action}" + (f"?{qs}" if qs else ""), method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def served(self) -> int:
        return int(self.admin("GET", "stats")["requests"])

    def create(self, count: int) -> None:
        self.admin("POST", "create", count=count)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}


class Workspace:
    """A fresh directory per pipeline instance: empty .dlt project dir, own data dir, HOME and database."""

    def __init__(
        self, root: Path, name: str, *, anthropic: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        self.anthropic = anthropic  # the workspace's key is Anthropic's (and no OpenAI key is set)
        self.settings = settings  # the environment that configures it instead of OPENAI_API_KEY (another provider)
        self.dir = root / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "project").mkdir(parents=True)
        (self.dir / "data").mkdir()
        self.db = str(self.dir / "batches.duckdb")

    def env(self, sim: Simulator) -> dict[str, str]:
        env = _clean_env()
        env.update(
            DLT_PROJECT_DIR=str(self.dir / "project"),
            DLT_DATA_DIR=str(self.dir / "data"),
            HOME=str(self.dir),
        )
        if self.settings is not None:
            env.update(self.settings)
        elif self.anthropic:
            env.update(ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=sim.anthropic_base_url)
        else:
            env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=sim.base_url)
        return env


def measure(label: str, cmd: Sequence[str], ws: Workspace, sim: Simulator) -> Run:
    """Run one command to completion; wall time, the child's peak RSS and the requests it made."""
    before = sim.served()
    log_path = ws.dir / "last-run.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=ws.dir, env=ws.env(sim), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        label=label,
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        requests=sim.served() - before,
        returncode=proc.returncode,
        output=log_path.read_text(errors="replace"),
    )


def load(ws: Workspace, sim: Simulator, label: str = "load") -> Run:
    return measure(label, [CLI, "load", "--db", ws.db], ws, sim).check()


def naive(ws: Workspace, sim: Simulator, label: str = "naive") -> Run:
    return measure(label, [PY, str(BENCH / "naive_rest_api.py"), ws.db], ws, sim).check()


def floor(ws: Workspace, sim: Simulator, label: str = "floor", fetch_only: bool = False) -> Run:
    Path(ws.db).unlink(missing_ok=True)
    cmd = [PY, str(BENCH / "floor.py"), ws.db] + (["--fetch-only"] if fetch_only else [])
    cmd += ["--anthropic"] if ws.anthropic else []
    return measure(label, cmd, ws, sim).check()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Row:
    section: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(section, metric, value, target, ok))
        mark = "" if ok is None else (" ok" if ok else " MISSED")
        say(f"  {metric}: {value}" + (f"  (target {target}{mark})" if target else ""))


def _runs(runs: Sequence[Run]) -> str:
    return ", ".join(f"{r.wall_s:.2f}" for r in runs)


# ---------------------------------------------------------------------------------------------- sections
def bench_latency(tmp: Path, res: Results, reps: int, batches: int = 20_000, latency_ms: float = 100.0) -> None:
    say(f"[1] backfill of {batches:,} batches at {latency_ms:.0f} ms per request, {reps} runs")
    pages = math.ceil(batches / PAGE)
    floor_s = pages * latency_ms / 1000
    with Simulator(batches, latency_ms) as sim:
        bare = [floor(Workspace(tmp, f"bare-{i}"), sim, "bare paging", fetch_only=True) for i in range(2)]
        runs = [load(Workspace(tmp, f"latency-{i}"), sim) for i in range(reps)]
    wall = median([r.wall_s for r in runs])
    ratio = wall / floor_s
    requests = sorted({r.requests for r in runs})
    res.add("1 latency", f"{batches:,} batches, {latency_ms:.0f} ms/request: requests", "/".join(map(str, requests)))
    res.add("1 latency", "latency floor (pages x latency)", f"{floor_s:.2f} s ({pages} pages)")
    bare_wall = median([r.wall_s for r in bare])
    res.add(
        "1 latency",
        "bare paging loop (httpx + json, nothing else)",
        f"{bare_wall:.2f} s = {bare_wall / floor_s:.3f} x floor (runs: {_runs(bare)})",
    )
    res.add("1 latency", "`openai-batches load`, median", f"{wall:.2f} s (runs: {_runs(runs)})")
    res.add("1 latency", "wall / floor", f"{ratio:.3f}", f"<= {LATENCY_RATIO_MAX}", ratio <= LATENCY_RATIO_MAX)
    bare_ratio = wall / bare_wall
    res.add(
        "1 latency",
        "wall / bare paging loop (issue 20)",
        f"{bare_ratio:.3f}",
        f"<= {LATENCY_BARE_RATIO_MAX}",
        bare_ratio <= LATENCY_BARE_RATIO_MAX,
    )


@dataclass
class History:
    batches: int
    ours_backfill: list[Run] = field(default_factory=list)
    ours_nochange: list[Run] = field(default_factory=list)
    ours_changed: Run | None = None
    naive_backfill: list[Run] = field(default_factory=list)
    naive_nochange: Run | None = None
    naive_changed: Run | None = None
    floor: list[Run] = field(default_factory=list)


def bench_history(tmp: Path, n: int, *, nochange_reps: int, throughput_reps: int) -> History:
    """One simulator with `n` settled batches: backfills, no-change runs, then 50 new + 20 open.

    With `throughput_reps` > 0 the backfills of ours, the naive baseline and the floor are repeated
    for the throughput comparison; every repetition gets a fresh workspace."""
    h = History(n)
    with Simulator(n) as sim:
        naive_ws = Workspace(tmp, f"naive-{n}")
        h.naive_backfill.append(naive(naive_ws, sim, "naive backfill"))
        h.naive_nochange = naive(naive_ws, sim, "naive no-change")
        for i in range(1, max(1, throughput_reps)):
            h.naive_backfill.append(naive(Workspace(tmp, f"naive-{n}-{i}"), sim, "naive backfill"))
        for i in range(throughput_reps):
            h.floor.append(floor(Workspace(tmp, f"floor-{n}-{i}"), sim))
        for i in range(1, max(1, throughput_reps)):
            h.ours_backfill.append(load(Workspace(tmp, f"ours-{n}-{i}"), sim, "backfill"))
        ws = Workspace(tmp, f"ours-{n}")
        h.ours_backfill.insert(0, load(ws, sim, "backfill"))
        h.ours_nochange = [load(ws, sim, "no-change") for _ in range(nochange_reps)]
        # 20 batches submitted now are open at the next run; then 50 more arrive before the measured one.
        sim.create(20)
        load(ws, sim, "picks up 20 open")
        sim.create(50)
        h.ours_changed = load(ws, sim, "50 new + 20 open")
        h.naive_changed = naive(naive_ws, sim, "naive 50 new + 20 open")
    return h


def bench_incremental(
    tmp: Path, res: Results, histories: Sequence[int], nochange_reps: int, throughput_reps: int, throughput_at: int
) -> dict[int, History]:
    results: dict[int, History] = {}
    for n in histories:
        reps = throughput_reps if n == throughput_at else 0
        say(f"[2/3] history of {n:,} batches" + (f" (+ throughput, {reps} runs each)" if reps else ""))
        results[n] = bench_history(tmp, n, nochange_reps=nochange_reps, throughput_reps=reps)
    if throughput_at in results:
        h = results[throughput_at]
        n = h.batches
        ours = n / median([r.wall_s for r in h.ours_backfill])
        naive_rate = n / median([r.wall_s for r in h.naive_backfill])
        floor_rate = n / median([r.wall_s for r in h.floor])
        res.add(
            "2 throughput", f"ours: {n:,}-batch backfill", f"{ours:,.0f} batches/s (runs: {_runs(h.ours_backfill)} s)"
        )
        res.add(
            "2 throughput",
            "naive dlt rest_api",
            f"{naive_rate:,.0f} batches/s (runs: {_runs(h.naive_backfill)} s)",
        )
        res.add("2 throughput", "hand-written floor", f"{floor_rate:,.0f} batches/s (runs: {_runs(h.floor)} s)")
        speedup = ours / naive_rate
        res.add("2 throughput", "ours / naive", f"{speedup:.1f}x", f">= {SPEEDUP_VS_NAIVE_MIN:g}x", speedup >= 5)
        behind = floor_rate / ours
        res.add("2 throughput", "floor / ours", f"{behind:.2f}x", f"<= {FLOOR_RATIO_MAX:g}x", behind <= FLOOR_RATIO_MAX)
    for n, h in results.items():
        nochange = sorted({r.requests for r in h.ours_nochange})
        assert h.ours_changed is not None and h.naive_nochange is not None and h.naive_changed is not None
        res.add(
            "3 incremental",
            f"history {n:>9,}: requests no-change / 50 new + 20 open",
            f"ours {'/'.join(map(str, nochange))} / {h.ours_changed.requests}; "
            f"naive {h.naive_nochange.requests} / {h.naive_changed.requests}",
            "1 / constant",
            nochange == [1],
        )
    changed = {h.ours_changed.requests for h in results.values() if h.ours_changed is not None}
    res.add(
        "3 incremental",
        "ours constant in history",
        "yes" if len(changed) == 1 else f"no: {sorted(changed)}",
        "constant",
        len(changed) == 1,
    )
    for n, h in results.items():
        wall = median([r.wall_s for r in h.ours_nochange])
        res.add(
            "6 start-up",
            f"history {n:>9,}: `load` with nothing to do, median",
            f"{wall:.2f} s (runs: {_runs(h.ours_nochange)})",
            f"< {STARTUP_MAX_S:g} s",
            wall < STARTUP_MAX_S,
        )
    return results


def bench_memory(
    tmp: Path,
    res: Results,
    big: int,
    reps: int,
    histories: dict[int, History],
    run_reports: bool,
    middle: int = 0,
) -> None:
    peaks: dict[int, list[float]] = {n: [r.peak_rss_mb for r in h.ours_backfill] for n, h in histories.items()}
    big_runs: list[Run] = []
    nochange: list[Run] = []
    db_for_reports: str | None = None
    if middle:
        # A history of several load packages (settings.LOAD_CHUNK_ROWS is 100k), to compare with `big`.
        say(f"[4] backfill of {middle:,} batches")
        with Simulator(middle) as sim:
            peaks[middle] = [load(Workspace(tmp, "middle"), sim, "backfill").peak_rss_mb]
    if big:
        say(f"[4] backfill of {big:,} batches, {reps} run(s)")
        with Simulator(big) as sim:
            for i in range(reps):
                ws = Workspace(tmp, f"big-{i}")
                big_runs.append(load(ws, sim, "big backfill"))
                db_for_reports = ws.db
            nochange.append(load(ws, sim, "no-change"))
        peaks[big] = [r.peak_rss_mb for r in big_runs]
        wall = median([r.wall_s for r in big_runs])
        res.add("4 memory", f"{big:,}-batch backfill: wall, median", f"{wall:.1f} s = {big / wall:,.0f} batches/s")
    for n in sorted(peaks):
        peak = max(peaks[n])
        res.add(
            "4 memory",
            f"backfill of {n:>9,}: peak RSS",
            f"{peak:.0f} MB",
            f"< {RSS_MAX_MB:g} MB" if n == big else "",
            peak < RSS_MAX_MB if n == big else None,
        )
    if big and middle:
        # Up to one load package (settings.LOAD_CHUNK_ROWS = 100k) memory grows with the backfill, and a
        # second package (merging into a non-empty table) adds a step; beyond that every package is alike.
        growth = max(peaks[big]) - max(peaks[middle])
        res.add(
            "4 memory",
            f"growth {middle:,} -> {big:,} batches",
            f"{growth:+.0f} MB",
            "~0 (bounded)",
            growth < 0.05 * RSS_MAX_MB,
        )
    if nochange:
        res.add(
            "6 start-up",
            f"history {big:>9,}: `load` with nothing to do",
            f"{nochange[0].wall_s:.2f} s, {nochange[0].requests} request(s)",
            f"< {STARTUP_MAX_S:g} s",
            nochange[0].wall_s < STARTUP_MAX_S,
        )
    if run_reports and db_for_reports:
        bench_reports(res, db_for_reports, big)


def bench_ducklake(tmp: Path, res: Results, n: int = 100_000) -> None:
    """Issues 9 and 20: the same backfill, and then a run with nothing new, into a DuckDB file, a DuckLake on a
    PostgreSQL catalog (a throwaway cluster of Debian's PostgreSQL, as the tests use) with its files in a folder,
    and the same lake with its files on S3 (moto's server, as the tests use), in one run, as ratios and
    differences against the file."""
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import PostgresUnavailable, throwaway_postgres

    say(f"[7] backfill of {n:,} batches and a run with nothing new: DuckDB file vs DuckLake (PostgreSQL catalog)")
    lakes: dict[str, tuple[Run, Run]] = {}
    try:
        with throwaway_postgres() as pg, Simulator(n) as sim, contextlib.ExitStack() as stack:
            ws_file = Workspace(tmp, "file-100k")
            on_file = load(ws_file, sim, "file backfill")
            file_nochange = load(ws_file, sim, "file no-change").check()
            places = {"PostgreSQL catalog, files in a folder": {}}
            s3 = _moto(stack, tmp)
            if s3 is not None:
                places["PostgreSQL catalog, files on S3 (moto)"] = {
                    **s3.env(),
                    "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE": s3.url("bench-lake"),
                }
            for i, (where, extra) in enumerate(places.items()):
                ws_lake = Workspace(tmp, f"lake-100k-{i}")
                lake_env = {
                    "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG": pg.create_database(f"lake{i}"),
                    "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE": str(ws_lake.dir / "lake-files"),
                    **extra,
                }
                cmd = [CLI, "load", "--destination", "ducklake"]
                lakes[where] = (
                    measure_with("lake backfill", cmd, ws_lake, sim, lake_env).check(),
                    measure_with("lake no-change", cmd, ws_lake, sim, lake_env).check(),
                )
    except PostgresUnavailable as e:
        res.add("7 ducklake", "DuckLake backfill", f"skipped: {e}")
        return
    res.add(
        "7 ducklake",
        f"{n:,}-batch backfill into a DuckDB file; then nothing new",
        f"{on_file.wall_s:.1f} s, {on_file.peak_rss_mb:.0f} MB; {file_nochange.wall_s:.2f} s",
    )
    for where, (backfill, nochange) in lakes.items():
        # Issue 20, item 4 sets targets for the lake with its files in a folder and asks the same figures for
        # S3: moto, on the same 2 cores, pays for its own PUTs, which a real object store does not.
        targets = "S3" not in where
        ratio = backfill.wall_s / on_file.wall_s
        more = nochange.wall_s - file_nochange.wall_s
        rows = (
            (
                f"{n:,}-batch backfill into a DuckLake ({where}) / the file",
                f"{ratio:.2f}x ({backfill.wall_s:.1f} s)",
                "<= 1.1x",
                ratio <= 1.1,
            ),
            (
                f"backfill into a DuckLake ({where}): peak RSS",
                f"{backfill.peak_rss_mb:.0f} MB",
                "< 400 MB",
                backfill.peak_rss_mb < 400,
            ),
            (
                f"DuckLake ({where}) `load` with nothing to do, more than the file",
                f"{more:+.2f} s ({nochange.wall_s:.2f} s, {nochange.requests} request(s))",
                "<= +0.5 s",
                more <= 0.5,
            ),
        )
        for metric, value, target, ok in rows:
            if targets:
                res.add("7 ducklake", metric, value, target, ok)
            else:
                res.add("7 ducklake", metric, value)


def _moto(stack: contextlib.ExitStack, tmp: Path) -> Any:
    """moto's S3 server for the bench's S3 lake (stopped with `stack`), None where moto is not installed."""
    try:
        import moto  # noqa: F401
    except ImportError:
        say("  moto is not installed: no S3 lake")
        return None
    from tests.support.s3 import moto_s3

    return stack.enter_context(moto_s3(tmp / "moto"))


# Results off: the 100k history's results are ~24 million request lines; the listing is what this row measures.
_NO_RESULTS = {"SOURCES__OPENAI_BATCHES__REQUESTS": "false"}


def bench_anthropic(
    tmp: Path, res: Results, reps: int, n: int = 100_000, with_results: int = 1_000, latency_ms: float = 100.0
) -> None:
    """Issue 18: an Anthropic workspace's backfill against the bare paging loop (pages of 1000 after `last_id`)
    in the same run, on the local simulator as it answers and at `latency_ms` per request (as the latency
    section does for OpenAI); a run with nothing new; a smaller history's backfill with its results read."""
    say(f"[8] Anthropic: backfill of {n:,} message batches, {reps} runs; {with_results:,} with results")
    walls: dict[float, tuple[list[Run], list[Run]]] = {}
    for latency in (0.0, latency_ms):
        with Simulator(0, latency_ms=latency, anthropic_batches=n) as sim:
            bare = [floor(Workspace(tmp, f"a-bare-{i}", anthropic=True), sim, "bare paging", True) for i in range(2)]
            runs = []
            for i in range(reps):
                ws = Workspace(tmp, f"a-ours-{i}", anthropic=True)
                runs.append(measure_with("backfill", [CLI, "load", "--db", ws.db], ws, sim, _NO_RESULTS).check())
            if not latency:
                nochange = measure_with("no-change", [CLI, "load", "--db", ws.db], ws, sim, _NO_RESULTS).check()
        walls[latency] = (bare, runs)
    with Simulator(0, anthropic_batches=with_results) as sim:
        ws = Workspace(tmp, "a-results", anthropic=True)
        results = load(ws, sim, "backfill with results")
        results_nochange = load(ws, sim, "no-change with results")
    pages = math.ceil(n / ANTHROPIC_PAGE)
    requests = sorted({r.requests for _, runs in walls.values() for r in runs})
    res.add(
        "8 anthropic",
        f"{n:,} message batches: requests (pages of {ANTHROPIC_PAGE})",
        "/".join(map(str, requests)),
        f"{pages}",
        requests == [pages],
    )
    for latency, (bare, runs) in walls.items():
        where = f"at {latency:.0f} ms/request" if latency else "local simulator, no added latency"
        bare_wall, wall = median([r.wall_s for r in bare]), median([r.wall_s for r in runs])
        res.add("8 anthropic", f"bare paging loop, {where}", f"{bare_wall:.2f} s (runs: {_runs(bare)})")
        res.add(
            "8 anthropic",
            f"`openai-batches load` backfill, {where}, median",
            f"{wall:.2f} s = {n / wall:,.0f} batches/s, peak {max(r.peak_rss_mb for r in runs):.0f} MB "
            f"(runs: {_runs(runs)})",
        )
        ratio = wall / bare_wall
        if not latency:  # a figure: see ANTHROPIC_BARE_RATIO_MAX
            res.add("8 anthropic", f"backfill wall / bare paging loop, {where}", f"{ratio:.3f}")
            continue
        res.add(
            "8 anthropic",
            f"backfill wall / bare paging loop, {where}",
            f"{ratio:.3f}",
            f"<= {ANTHROPIC_BARE_RATIO_MAX}",
            ratio <= ANTHROPIC_BARE_RATIO_MAX,
        )
    res.add(
        "8 anthropic",
        "`load` with nothing to do: requests",
        f"{nochange.requests} ({nochange.wall_s:.2f} s)",
        "1",
        nochange.requests == 1,
    )
    res.add(
        "8 anthropic",
        f"{with_results:,} message batches with their results: backfill",
        f"{results.wall_s:.1f} s, {results.requests} requests, peak {results.peak_rss_mb:.0f} MB; next run "
        f"{results_nochange.requests} request(s)",
    )


def _provider_workspace(tmp: Path, name: str, provider: str, sim: Simulator) -> tuple[Workspace, str, str]:
    """A workspace configured for `provider` as its README section says (the SDK's environment names; a `.dlt`
    project for openai-compatible, which has none), the API root the bare loop pages and the key."""
    root = sim.base_url.removesuffix("/v1")
    printed = sim.printed
    if provider == "openai-compatible":  # the OpenAI project's list, read as any OpenAI-compatible endpoint
        ws = Workspace(tmp, name, settings={})
        (ws.dir / "project" / ".dlt").mkdir()
        (ws.dir / "project" / ".dlt" / "secrets.toml").write_text(
            f'[sources.openai_batches.projects.gateway]\nprovider = "openai-compatible"\napi_key = "{KEY}"\n'
            f'base_url = "{sim.base_url}"\n'
        )
        return ws, sim.base_url, KEY
    label = {"azure": "AZURE_OPENAI", "groq": "GROQ"}.get(provider, provider.upper())
    names = [n for n in printed if n.startswith(label + "_")]
    ws = Workspace(tmp, name, settings={n: printed[n] for n in names})
    key = printed[f"{label}_API_KEY"]
    base = root + "/openai/v1" if provider in ("azure", "groq") else printed[f"{label}_BASE_URL"]
    return ws, base, key


def bench_providers(
    tmp: Path, res: Results, reps: int, providers: Sequence[str] = OTHER_PROVIDERS, n: int = OTHER_BATCHES
) -> None:
    """Issue 19: per provider, a backfill of `n` batches against that provider's bare paging loop in the same run
    (requests and wall time), and the requests of a run with nothing new. One simulator serves all of them."""
    sizes = {p: OTHER_BATCHES_OF.get(p, n) for p in providers}
    say(f"[9] other providers: {', '.join(f'{p} {k:,}' for p, k in sizes.items())} batches: backfills, {reps} runs")
    extra = [f"--{p}-batches={k}" for p, k in sizes.items() if p != "openai-compatible"]
    with Simulator(sizes.get("openai-compatible", 0), extra=extra) as sim:
        for provider, n in sizes.items():
            bare = []
            for i in range(2):
                ws, base, key = _provider_workspace(tmp, f"p-bare-{provider}-{i}", provider, sim)
                ws.settings = {"BARE_API_KEY": key}
                cmd = [PY, str(BENCH / "bare_providers.py"), provider, base]
                bare.append(measure("bare paging", cmd, ws, sim).check())
            runs = []
            for i in range(reps):
                ws, _, _ = _provider_workspace(tmp, f"p-ours-{provider}-{i}", provider, sim)
                runs.append(measure_with("backfill", [CLI, "load", "--db", ws.db], ws, sim, _NO_RESULTS).check())
            nochange = measure_with("no-change", [CLI, "load", "--db", ws.db], ws, sim, _NO_RESULTS).check()
            loaded = re.search(r"ok: \d+ requests, (\d+) new", runs[-1].output)
            if loaded is None or int(loaded.group(1)) != n:
                raise RuntimeError(f"{provider}: the backfill did not load {n} batches:\n{runs[-1].output[-2000:]}")
            bare_wall, wall = median([r.wall_s for r in bare]), median([r.wall_s for r in runs])
            requests = "/".join(map(str, sorted({r.requests for r in runs})))
            bare_requests = "/".join(map(str, sorted({r.requests for r in bare})))
            res.add(
                "9 providers",
                f"{provider}: {n:,}-batch backfill: requests, ours / bare loop",
                f"{requests} / {bare_requests}",
            )
            res.add(
                "9 providers",
                f"{provider}: backfill wall, median: ours / bare loop",
                f"{wall:.2f} s / {bare_wall:.2f} s = {wall / bare_wall:.2f}x (runs: {_runs(runs)}; bare {_runs(bare)})",
            )
            want = NOCHANGE_REQUESTS.get(provider)
            res.add(
                "9 providers",
                f"{provider}: `load` with nothing to do: requests",
                f"{nochange.requests} ({nochange.wall_s:.2f} s)",
                "" if want is None else str(want),
                None if want is None else nochange.requests == want,
            )


def measure_with(label: str, cmd: Sequence[str], ws: Workspace, sim: Simulator, extra: dict[str, str]) -> Run:
    """`measure` with extra environment (a destination's settings)."""
    original = ws.env

    def env(s: Simulator) -> dict[str, str]:
        return {**original(s), **extra}

    ws.env = env  # type: ignore[method-assign]
    try:
        return measure(label, cmd, ws, sim)
    finally:
        ws.env = original  # type: ignore[method-assign]


def bench_help(res: Results, reps: int = 7) -> None:
    """Issue 9: `openai-batches --help` (cron and shells start the program often)."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([CLI, "--help"], capture_output=True, env=_clean_env(), check=True)
        times.append(time.perf_counter() - started)
    best, mid = min(times), median(times)
    res.add(
        "6 start-up",
        "`openai-batches --help`: min, median",
        f"{best:.2f} s, {mid:.2f} s",
        f"< {HELP_MAX_S:g} s",
        mid < HELP_MAX_S,
    )


def bench_reports(res: Results, db: str, n: int) -> None:
    say(f"[5] queries/*.sql over {n:,} batches")
    queries = sorted((ROOT / "queries").glob("*.sql"))
    if not queries:
        res.add("5 reports", "queries/*.sql", "none found", f"< {QUERIES_MAX_S:g} s")
        return
    out = subprocess.run(
        [PY, str(BENCH / "report_queries.py"), db], capture_output=True, text=True, env=_clean_env(), cwd=ROOT
    )
    if out.returncode != 0:
        res.add("5 reports", "queries/*.sql", f"failed: {out.stderr.strip().splitlines()[-1:]}", "", False)
        return
    report = json.loads(out.stdout.strip().splitlines()[-1])
    timings: dict[str, float] = report["timings"]
    total = report["queries_s"]
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:3]
    res.add("5 reports", "prepare (prices + views), once per load", f"{report['prepare_s']:.2f} s")
    res.add(
        "5 reports",
        f"every query of queries/ over {n:,} batches, in all",
        f"{total:.2f} s for {len(timings)} (slowest: " + ", ".join(f"{k} {v:.2f}s" for k, v in slowest) + ")",
        f"< {QUERIES_MAX_S:g} s",
        total < QUERIES_MAX_S,
    )


# Finished at once: a batch submitted through `/_sim/create` with these is terminal an hour later.
_QUICK = {"outcome": "completed", "validating_seconds": 1, "processing_seconds": 60, "finalizing_seconds": 1}
_LEDGER_LINE = re.compile(r"ledger: ([\d,]+) requests? of .*\(([\d.]+) (MB|GB) in ([\d.]+)s")


def ledger_figures(run: Run) -> tuple[int, float, float]:
    """(requests, MB, seconds) the ledger reported in a load's summary (the time of its own work: file
    metadata, download and parsing, not start-up or the batch listing)."""
    found = _LEDGER_LINE.search(run.output)
    if found is None:
        raise RuntimeError(f"{run.label}: no ledger line in its output:\n{run.output[-2000:]}")
    size = float(found.group(2)) * (1000 if found.group(3) == "GB" else 1)
    return int(found.group(1).replace(",", "")), size, float(found.group(4))


def ledger_load(ws: Workspace, sim: Simulator, label: str) -> Run:
    return measure(label, [CLI, "load", "--db", ws.db, "--requests"], ws, sim).check()


def bench_ledger(tmp: Path, res: Results, reps: int, big_mb: int = 1000) -> None:
    """The request ledger against `simulate --admin` in its own process: MB/s of JSONL parsed, peak RSS of
    a load that reads a 1 GB output file, a second run, and a load of many request rows."""
    say(f"[7] request ledger: throughput ({reps} runs), a {big_mb} MB output file, 500k request rows")
    with Simulator(0) as sim:
        # Large lines (~20 kB of chat or responses, ~32 kB embedding vectors), as one load reads them.
        sizes = {"/v1/chat/completions": 400, "/v1/responses": 400, "/v1/embeddings": 300}
        for endpoint, mb in sizes.items():
            sim.admin("POST", "create", endpoint=endpoint, output_bytes=mb * 10**6, **_QUICK)
        sim.admin("POST", "advance", seconds=3600)
        runs = [ledger_load(Workspace(tmp, f"ledger-{i}"), sim, "ledger throughput") for i in range(reps)]
    figures = [ledger_figures(r) for r in runs]
    rates = [mb / seconds for _, mb, seconds in figures]
    rate = median(rates)
    res.add(
        "7 ledger",
        f"throughput: {figures[0][1]:,.0f} MB of JSONL (chat, responses, embeddings), {figures[0][0]:,} requests",
        f"{rate:.0f} MB/s (runs: {', '.join(f'{r:.0f}' for r in rates)}; requests {runs[0].requests})",
        f">= {LEDGER_MB_S_MIN:g} MB/s",
        rate >= LEDGER_MB_S_MIN,
    )
    with Simulator(0) as sim:
        sim.admin("POST", "create", endpoint="/v1/chat/completions", output_bytes=big_mb * 10**6, **_QUICK)
        sim.admin("POST", "advance", seconds=3600)
        ws = Workspace(tmp, "ledger-big")
        big = ledger_load(ws, sim, "ledger 1 GB file")
        again = ledger_load(ws, sim, "ledger no-change")
    requests, mb, seconds = ledger_figures(big)
    res.add(
        "7 ledger",
        f"a {mb:,.0f} MB output file ({requests:,} requests): peak RSS",
        f"{big.peak_rss_mb:.0f} MB ({mb / seconds:.0f} MB/s, {big.wall_s:.1f} s in all, {big.requests} requests)",
        f"< {LEDGER_RSS_MAX_MB:g} MB",
        big.peak_rss_mb < LEDGER_RSS_MAX_MB,
    )
    res.add("7 ledger", "the next run: requests", str(again.requests), "1 (no file again)", again.requests == 1)
    with Simulator(0) as sim:
        # Small lines (~1.4 kB moderation results): rows, not bytes, are the work; the merge is by batch.
        for _ in range(10):
            sim.admin("POST", "create", endpoint="/v1/moderations", total_requests=50_000, **_QUICK)
        sim.admin("POST", "advance", seconds=3600)
        rows = ledger_load(Workspace(tmp, "ledger-rows"), sim, "ledger 500k rows")
    requests, mb, seconds = ledger_figures(rows)
    res.add(
        "7 ledger",
        f"{requests:,} request rows of 10 batches ({mb:,.0f} MB of small lines): peak RSS",
        f"{rows.peak_rss_mb:.0f} MB ({mb / seconds:.0f} MB/s, {requests / seconds:,.0f} requests/s, "
        f"{rows.wall_s:.1f} s in all)",
    )


def bench_ledger_scale(tmp: Path, res: Results, histories: Sequence[int] = SCALE_HISTORIES) -> None:
    """The request ledger at a large organisation's scale: one part loaded from the simulator (20 batches of 10,000
    chat requests), grown by copies to each history (bench/ledger_history.py), then at each size a `load --requests`
    of 10 new batches of 10,000 requests (peak RSS, wall), the ledger's queries and views timed, bytes per row."""
    say(f"[10] ledger at scale: histories of {', '.join(f'{h:,}' for h in histories)} request rows")
    grown: list[tuple[int, Run, dict[str, Any]]] = []
    with Simulator(0) as sim:
        ws = Workspace(tmp, "ledger-scale")

        def batches_of_requests(count: int) -> None:
            sim.admin("POST", "create", endpoint="/v1/chat/completions", total_requests=10_000, count=count, **_QUICK)
            sim.admin("POST", "advance", seconds=3600)

        batches_of_requests(20)
        ledger_load(ws, sim, "ledger scale: the part")
        for rows in histories:
            out = subprocess.run(
                [PY, str(BENCH / "ledger_history.py"), "grow", ws.db, str(rows)],
                capture_output=True,
                text=True,
                env=_clean_env(),
                check=True,
            )
            built = json.loads(out.stdout.strip().splitlines()[-1])
            say(f"  grown to {built['rows']:,} rows in {built['seconds']:.0f} s")
            batches_of_requests(10)
            step = ledger_load(ws, sim, f"ledger scale: 100k new requests on {rows:,}")
            out = subprocess.run(
                [PY, str(BENCH / "ledger_history.py"), "time", ws.db],
                capture_output=True,
                text=True,
                env=_clean_env(),
                check=True,
            )
            grown.append((rows, step, json.loads(out.stdout.strip().splitlines()[-1])))
    for rows, step, figures in grown:
        _, mb, seconds = ledger_figures(step)
        res.add(
            "10 ledger scale",
            f"history of {figures['rows']:,} request rows ({figures['batches']:,} batches): "
            "`load --requests` of 100,000 new, peak RSS",
            f"{step.peak_rss_mb:.0f} MB ({step.wall_s:.1f} s in all, ledger {seconds:.1f} s, {step.requests} requests)",
            f"< {SCALE_RSS_MAX_MB:g} MB" if rows == histories[-1] else "",
            step.peak_rss_mb < SCALE_RSS_MAX_MB if rows == histories[-1] else None,
        )
        timings: dict[str, float] = figures["timings"]
        slowest = max(timings, key=lambda k: timings[k])
        res.add(
            "10 ledger scale",
            f"history of {figures['rows']:,}: ledger queries and views, each",
            f"slowest {timings[slowest]:.2f} s ({slowest}); "
            + ", ".join(f"{name.removesuffix('.sql')} {t:.2f}" for name, t in timings.items()),
            f"< {SCALE_QUERY_MAX_S:g} s each",
            all(t < SCALE_QUERY_MAX_S for t in timings.values()),
        )
        res.add(
            "10 ledger scale",
            f"history of {figures['rows']:,}: database size, the ledger's bytes per request row",
            f"{figures['file_bytes'] / 1e9:.2f} GB; {figures['ledger_bytes'] / figures['rows']:.0f} bytes a row",
        )
    first, last = grown[0][1], grown[-1][1]
    growth = last.peak_rss_mb / first.peak_rss_mb - 1
    res.add(
        "10 ledger scale",
        f"`load --requests` peak RSS, history {histories[0]:,} -> {histories[-1]:,} rows",
        f"{growth:+.1%} ({first.peak_rss_mb:.0f} -> {last.peak_rss_mb:.0f} MB)",
        f"< {SCALE_RSS_GROWTH_MAX:.0%}",
        growth < SCALE_RSS_GROWTH_MAX,
    )


# ---------------------------------------------------------------------------------------------- output
def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, AttributeError):
        pass
    versions = subprocess.run(
        [PY, "-c", "import dlt, duckdb, pyarrow; print(dlt.__version__, duckdb.__version__, pyarrow.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu or platform.processor(),
        "memory": mem,
        "python": platform.python_version(),
        "os": platform.platform(),
        "dlt / duckdb / pyarrow": " / ".join(versions),
    }


def table(res: Results) -> str:
    lines = ["| | metric | value | target | |", "|---|---|---|---|---|"]
    for r in res.rows:
        ok = "" if r.ok is None else ("ok" if r.ok else "**missed**")
        lines.append(f"| {r.section} | {r.metric} | {r.value} | {r.target} | {ok} |")
    return "\n".join(lines)


def write_results(res: Results, info: dict[str, str], args: argparse.Namespace, elapsed: float) -> Path:
    path = BENCH / "RESULTS.md"
    head = [
        "# Benchmark results (issue 5)",
        "",
        "Written by `make bench` (`bench/run.py`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        table(res),
        "",
    ]
    notes = (BENCH / "NOTES.md").read_text() if (BENCH / "NOTES.md").exists() else ""
    path.write_text("\n".join(head) + ("\n" + notes if notes else ""))
    return path


def merge_results(res: Results, info: dict[str, str]) -> Path:
    """Replace, in bench/RESULTS.md, the rows just measured (`--only`); the others stay as a full run
    wrote them. A row not in the results table yet is added at its end."""
    path = BENCH / "RESULTS.md"
    lines = path.read_text().splitlines()
    header = table(Results()).splitlines()[0]
    first = lines.index(header) + 2  # the results table: after its header and separator
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1

    # A row is its section and metric: a section is shared by several `--only` names (start-up rows come
    # from the history, memory and help runs), so only the rows measured now are replaced, in place.
    def key(line: str) -> tuple[str, str]:
        cells = line.split("|")
        return cells[1].strip(), cells[2].strip()

    new_rows = {key(line): line for line in table(res).splitlines()[2:]}
    rows = [new_rows.pop(key(line), line) for line in lines[first:end]]
    rows += new_rows.values()  # metrics not in the table yet
    sections = ", ".join(sorted({r.section for r in res.rows}))
    note = (
        f"Rows of {sections} measured again on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with "
        f"`bench/run.py --only` (machine: cores {info['cores']}; {info['cpu']})."
    )
    rest = [line for line in lines[end:] if not line.startswith(f"Rows of {sections} measured again")]
    path.write_text("\n".join([*lines[:first], *rows, "", note, *rest]) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, no million-batch history")
    p.add_argument(
        "--only",
        default="",
        help="comma separated: latency, throughput, incremental, memory, reports, ducklake, help, ledger, "
        "ledger-scale, anthropic, "
        f"providers (or some of them: {', '.join(OTHER_PROVIDERS)})",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary workspaces (their path is printed)")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def wanted(name: str) -> bool:
        return not only or name in only

    started = time.perf_counter()
    info = machine()
    say("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    res = Results()
    with _tmpdir(args.keep) as tmp:
        if wanted("latency"):
            bench_latency(tmp, res, reps=2 if args.quick else 3)
        histories: dict[int, History] = {}
        if wanted("incremental") or wanted("throughput") or wanted("memory"):
            histories = bench_incremental(
                tmp,
                res,
                histories=(1_000, 10_000, 100_000) if wanted("incremental") or wanted("memory") else (100_000,),
                nochange_reps=3,
                throughput_reps=2 if args.quick else 3,
                throughput_at=100_000,
            )
        if wanted("memory") or wanted("reports"):
            bench_memory(
                tmp,
                res,
                big=0 if args.quick else 1_000_000,
                reps=1,
                histories=histories,
                run_reports=wanted("reports"),
                middle=0 if args.quick else 300_000,
            )
        if wanted("help"):
            bench_help(res)
        if wanted("ducklake"):
            bench_ducklake(tmp, res, n=20_000 if args.quick else 100_000)
        if wanted("ledger"):
            bench_ledger(tmp, res, reps=2 if args.quick else 3)
        if wanted("ledger-scale"):
            bench_ledger_scale(tmp, res, histories=(2_000_000, 4_000_000) if args.quick else SCALE_HISTORIES)
        if wanted("anthropic"):
            bench_anthropic(tmp, res, reps=2 if args.quick else 3, n=20_000 if args.quick else 100_000)
        chosen = [p for p in OTHER_PROVIDERS if wanted("providers") or p in only]
        if chosen:
            bench_providers(tmp, res, reps=2 if args.quick else 3, providers=chosen)
    elapsed = time.perf_counter() - started
    print(f"\nopenai-batches benchmarks ({info['cores']} cores, {info['cpu']}, {info['memory']})\n")
    print(table(res))
    missed = [r for r in res.rows if r.ok is False]
    print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(r.metric for r in missed) if missed else ""))
    if not only and not args.quick:
        print(f"written to {write_results(res, info, args, elapsed)}")
    elif only and not args.quick and res.rows:
        print(f"rows of {', '.join(sorted(only))} replaced in {merge_results(res, info)}")
    print(f"({elapsed / 60:.1f} min)")
    return 0


@contextmanager
def _tmpdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="openai-batches-bench-"))
    try:
        yield path
    finally:
        if keep:
            say(f"workspaces kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
