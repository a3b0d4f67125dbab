"""`openai-batches`: load, demo, simulate (and run, which picks load or demo)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import LoadResult

# Exit codes: 0 success, 1 a load failed (API, database), 2 bad usage or configuration.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # dlt logs through its own runtime config; keep it quiet unless asked.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO" if verbose else "WARNING")


def _print_summary(result: LoadResult, label: str = "load") -> None:
    for o in result.outcomes:
        c = o.stats.counts
        status = "FAILED: " + o.error if o.error else "ok"
        print(
            f"{label} [{o.name}] {status}: {o.stats.requests} requests, {c.new} new, "
            f"{c.updated} updated, {c.still_open} still open" + (f", {c.gone} gone" if c.gone else "")
        )
    total_new = sum(o.stats.counts.new for o in result.outcomes)
    total_upd = sum(o.stats.counts.updated for o in result.outcomes)
    total_open = sum(o.stats.counts.still_open for o in result.outcomes)
    print(
        f"{label}: {result.requests} requests, {total_new} new, {total_upd} updated, {total_open} still open, "
        f"{result.elapsed:.1f}s -> {result.db_path}"
    )
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    for o in result.outcomes:
        if o.error:
            print(f"error: project {o.name}: {o.error}", file=sys.stderr)


def cmd_load(args: argparse.Namespace) -> int:
    from .config import ConfigError, database_path, run_config
    from .progress import make_progress
    from .runner import run_load

    try:
        db_path = database_path(args.db)
        config = run_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if not config.projects:
        print(
            "error: no API key configured: set OPENAI_API_KEY, or api_key under [sources.openai_batches] "
            "in .dlt/secrets.toml (see .dlt/secrets.toml.example); `openai-batches demo` runs without one",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    progress = make_progress()
    try:
        result = run_load(db_path, config, full_refresh=args.full_refresh, progress=progress)
    finally:
        getattr(progress, "close", lambda: None)()
    _print_summary(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(db_path=args.db, batches=args.batches, seed=args.seed)


def cmd_simulate(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from .simulator import serve

    return serve(list(rest))


def cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError, configured_projects

    try:
        has_key = bool(configured_projects())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if has_key:
        return cmd_load(args)
    print("No API key configured: running the demo on the built-in simulator.")
    return cmd_demo(argparse.Namespace(db=args.db, batches=None, seed=0))


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import report_command

    return report_command(
        db=args.db, since=args.since, fmt=args.format, html=args.html, only=args.only, prices=args.prices
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-batches",
        description="Load every OpenAI Batch API job into DuckDB, incrementally.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline does")
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="load new and changed batches into the database")
    load.add_argument("--db", help="DuckDB file (default: db_path in .dlt, else ./openai_batches.duckdb)")
    load.add_argument("--full-refresh", action="store_true", help="re-read every batch, not only what changed")
    load.set_defaults(func=cmd_load)

    demo = sub.add_parser("demo", help="load a simulated organisation into a demo database")
    demo.add_argument("--db", help="demo DuckDB file (default ./openai_batches_demo.duckdb; recreated)")
    demo.add_argument("--batches", type=int, default=None, help="batches in the simulated history")
    demo.add_argument("--seed", type=int, default=0, help="seed of the simulated workload")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="`load` when an API key is configured, otherwise `demo`")
    run.add_argument("--db", help="DuckDB file")
    run.add_argument("--full-refresh", action="store_true", help="re-read every batch")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="cost and throughput reports (the SQL in queries/), or an HTML page")
    report.add_argument("--db", help="DuckDB file (default as for load; the demo database if only that exists)")
    report.add_argument("--since", metavar="DATE", help="only batches created on or after this UTC date")
    report.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    report.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with charts instead")
    report.add_argument("--only", action="append", metavar="NAME", help="only this report (repeatable)")
    report.add_argument("--prices", metavar="FILE", help="price overrides (default .dlt/prices.toml)")
    report.set_defaults(func=cmd_report)

    sim = sub.add_parser("simulate", help="serve the API simulator (see `simulate --help`)", add_help=False)
    sim.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `simulate` owns its arguments; pass everything after it through untouched.
    if "simulate" in argv:
        i = argv.index("simulate")
        args = parser.parse_args(argv[: i + 1])
        _setup_logging(args.verbose)
        return cmd_simulate(args, argv[i + 1 :])
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
