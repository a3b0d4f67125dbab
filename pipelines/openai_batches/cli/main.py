"""`openai-batches`: load, demo, simulate (and run, which picks load or demo)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .. import settings
from ..client.errors import error_line
from ..load.interrupt import Terminated, install_signal_handlers, report_stop, stop_requested
from ..settings import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from .argtypes import number_in
from .summary import print_summary

if TYPE_CHECKING:
    from ..load.head_start import HeadStart
    from ..storage.store import Store


class _NoDltTracebacks(logging.Filter):
    """Without -v, a failure is one `error:` line: dlt's own error records (a failed load job logs the
    whole traceback, several times) are dropped, and so are its warnings that carry a traceback in their
    text (a retried load job's); other warnings lose their tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return False
        if "Traceback (most recent call last)" in record.getMessage():
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _setup_process(verbose: bool, *, signals: bool = True) -> Callable[[], None]:
    """What every command needs before anything runs: logging, privacy, no telemetry, signals.
    Returns what restores the previous signal handlers."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # dlt logs through its own runtime config; keep it quiet unless asked.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        logging.getLogger("dlt").addFilter(_NoDltTracebacks())
    # dlt's anonymous telemetry reports to dlt's host: a cron job run from any directory must not phone
    # home (.dlt/config.toml says so too, but only when run from the project directory). An explicit
    # RUNTIME__DLTHUB_TELEMETRY still wins.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Databases, dlt's working directory (its traces hold error messages) and lock files are this
    # user's alone: nothing the program writes is readable by other users.
    os.umask(0o077)
    return install_signal_handlers() if signals else lambda: None


def cmd_load(args: argparse.Namespace) -> int:
    from ..load.head_start import begin
    from ..storage.store import preload_lake_extensions

    # Before dlt is imported (by what follows): the first requests leave while the rest starts, and a lake's
    # extensions load.
    head = begin(args.db, args.destination)
    if args.db is None:
        preload_lake_extensions(args.destination)
    try:
        return _load(args, head)
    finally:
        if head is not None:
            head.discard()


def _load(args: argparse.Namespace, head: HeadStart | None) -> int:
    from ..config import ConfigError, configured_store, run_config
    from ..load.runner import run_load
    from ..storage.extensions import ExtensionUnavailable
    from ..storage.foreign import ForeignDatabase
    from ..storage.lock import DatabaseUnavailable
    from .progress import make_progress

    try:
        store = configured_store(args.db, args.destination)
        config = run_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if getattr(args, "requests", False):
        config = dataclasses.replace(config, requests=True)
    if not config.projects:
        admin_only = (
            " (an admin key is configured, but it cannot list batches: the Admin API tables are loaded next to "
            "a project's batches)"
            if config.admin is not None
            else ""
        )
        print(
            "error: no API key configured: set OPENAI_API_KEY (or ANTHROPIC_API_KEY), or api_key under "
            "[sources.openai_batches] "
            f"in .dlt/secrets.toml (see .dlt/secrets.toml.example){admin_only}; `openai-batches demo` runs without one",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if problem := store.problem():
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if head is not None and not head.matches(config, store):
        head.discard()
        head = None
    for warning in store.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if head is not None:  # a backfill into a new database: it ends building the report views
        from ..analysis.prices import preload_genai_prices

        preload_genai_prices()
    try:
        with head.locked() if head is not None else store.locked(wait=args.wait):
            progress = make_progress()
            try:
                # A DuckDB shell may open the file between our wait for it and the load's open: same wait.
                result = run_load(
                    store,
                    config,
                    full_refresh=args.full_refresh,
                    progress=progress,
                    wait=args.wait,
                    head_start=head,
                    after_load=lambda loaded: _refresh_analysis(store, wait=args.wait) if loaded.changed else None,
                )
            finally:
                getattr(progress, "close", lambda: None)()
    except DatabaseUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (ForeignDatabase, ExtensionUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    print_summary(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import duckdb

    from ..config import ConfigError, configured_store
    from ..storage.extensions import ExtensionUnavailable
    from ..storage.lock import DatabaseUnavailable
    from .status import read_status, render

    try:
        store = configured_store(args.db, args.destination)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if not store.exists():
        print(f"error: no database at {store.shown()}: no load has succeeded there yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        with store.locked(wait=args.wait, shared=True):
            report = read_status(store)
    except DatabaseUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except ExtensionUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except duckdb.Error as e:
        print(f"error: cannot read {store.shown()}: {error_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    now = datetime.now(UTC)
    for line in render(report, now):
        print(line)
    stale = report.stale(args.max_age, now) if args.max_age is not None else []
    for reason in stale:
        print(f"stale: {reason}", file=sys.stderr)
    return EXIT_FAILED if stale else EXIT_OK


_seconds = number_in(float, 0.0, unit="seconds")


# The demo builds its history in memory (~0.4 GB per million batches) and loads all of it: a million
# is what `make bench` loads; a typo with more zeros would only exhaust memory or patience.
DEMO_MAX_BATCHES = 1_000_000
# The simulator seeds numpy generators, which take non-negative integers only.
MAX_SEED = 2**63 - 1


def _duration(text: str) -> timedelta:
    from .status import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(db_path=args.db, batches=args.batches, seed=args.seed)


def cmd_simulate(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from ..simulator import serve

    return serve(list(rest))


def cmd_run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, configured_projects, configured_store
    from ..storage.store import DuckDBFile
    from .demo import demo_db_path

    try:
        has_key = bool(configured_projects())
        store = configured_store(args.db, args.destination) if has_key else DuckDBFile(demo_db_path(args.db))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if has_key:
        code = cmd_load(args)
    else:
        print("No API key configured: running the demo on the built-in simulator.")
        code = cmd_demo(argparse.Namespace(db=args.db, batches=None, seed=0))
    if code == EXIT_OK:
        from ..analysis import print_terminal_report

        print()
        print_terminal_report(store)
    return code


def _refresh_analysis(db_path: Store | str, *, wait: float) -> None:
    """Keep prices and the report views in the database current, so `queries/` run in any DuckDB
    client right after a load. Only after a load that changed something: a no-change cron run stays
    one request and about a second. A bad price file must not fail a good load: it is reported."""
    from ..analysis import refresh_after_load

    for warning in refresh_after_load(db_path, wait=wait):
        print(f"warning: {warning}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import report_command

    return report_command(
        db=args.db,
        destination=args.destination,
        since=args.since,
        fmt=args.format,
        html=args.html,
        only=args.only,
        prices=args.prices,
    )


def cmd_sql_setup(args: argparse.Namespace) -> int:
    from ..config import ConfigError, configured_store
    from ..storage.extensions import ExtensionUnavailable

    try:
        print(configured_store(args.db, args.destination).setup_sql())
    except (ConfigError, ExtensionUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def _destination_option() -> dict[str, Any]:
    return {
        "choices": settings.DESTINATIONS,
        "help": "where the data lives: a DuckDB file (default), a DuckLake or MotherDuck, configured the dlt way "
        "(default: OPENAI_BATCHES_DESTINATION, else destination under [openai_batches] in .dlt/config.toml)",
    }


def _wait_option(default: float, holder: str) -> dict[str, Any]:
    return {
        "type": _seconds,
        "default": default,
        "metavar": "SECONDS",
        "help": (
            f"how long to wait for {holder} holding the database before exiting {settings.EXIT_BUSY} "
            f"(default {default:g})"
        ),
    }


_REQUESTS_HELP = (
    "also read the request ledger: every request of each finished batch from its files, never their content "
    "(or requests = true in .dlt)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-batches",
        description="Load every OpenAI Batch API job into DuckDB, incrementally.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline does")
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="load new and changed batches into the database")
    load.add_argument("--db", help="DuckDB file (default: db_path in .dlt, else ./openai-batches.duckdb)")
    load.add_argument("--destination", **_destination_option())
    load.add_argument("--full-refresh", action="store_true", help="re-read every batch, not only what changed")
    load.add_argument("--wait", **_wait_option(settings.DEFAULT_LOCK_WAIT_S, "another load"))
    load.add_argument("--requests", action="store_true", help=_REQUESTS_HELP)
    load.set_defaults(func=cmd_load)

    status = sub.add_parser("status", help="last successful load, open batches; non-zero when stale")
    status.add_argument("--db", help="DuckDB file (default as for load)")
    status.add_argument("--destination", **_destination_option())
    status.add_argument(
        "--max-age",
        type=_duration,
        metavar="DURATION",
        help="exit 1 when a project's last successful load is older than this (e.g. 90m, 2h, 1d)",
    )
    status.add_argument("--wait", **_wait_option(settings.DEFAULT_STATUS_WAIT_S, "a running load"))
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="load a simulated organisation into a demo database")
    demo.add_argument("--db", help="demo DuckDB file (default ./openai_batches_demo.duckdb; recreated)")
    demo.add_argument(
        "--batches", type=number_in(int, 1, DEMO_MAX_BATCHES), default=None, help="batches in the simulated history"
    )
    demo.add_argument("--seed", type=number_in(int, 0, MAX_SEED), default=0, help="seed of the simulated workload")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="`load` when an API key is configured, otherwise `demo`")
    run.add_argument("--db", help="DuckDB file")
    run.add_argument("--destination", **_destination_option())
    run.add_argument("--full-refresh", action="store_true", help="re-read every batch")
    run.add_argument("--wait", **_wait_option(settings.DEFAULT_LOCK_WAIT_S, "another load"))
    run.add_argument("--requests", action="store_true", help=_REQUESTS_HELP)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="cost and throughput reports (the SQL in queries/), or an HTML page")
    report.add_argument("--db", help="DuckDB file (default as for load; the demo database if only that exists)")
    report.add_argument("--destination", **_destination_option())
    report.add_argument("--since", metavar="DATE", help="only batches created on or after this UTC date")
    report.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    report.add_argument("--html", metavar="FILE", help="write one self-contained HTML page with charts instead")
    report.add_argument("--only", action="append", metavar="NAME", help="only this report (repeatable)")
    report.add_argument("--prices", metavar="FILE", help="price overrides (default .dlt/prices.toml)")
    report.set_defaults(func=cmd_report)

    sql = sub.add_parser(
        "sql-setup",
        help='print the statements that open the data in the DuckDB CLI: duckdb -cmd "$(openai-batches sql-setup)"',
    )
    sql.add_argument("--db", help="DuckDB file (default as for load)")
    sql.add_argument("--destination", **_destination_option())
    sql.set_defaults(func=cmd_sql_setup)

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
        _setup_process(args.verbose, signals=False)  # the simulator stops cleanly on Ctrl-C by itself
        return cmd_simulate(args, argv[i + 1 :])
    args = parser.parse_args(argv)
    restore_signal_handlers = _setup_process(args.verbose)
    try:
        return _run_command(args)
    finally:
        restore_signal_handlers()


def _run_command(args: argparse.Namespace) -> int:
    """The command's exit code, whatever happens: one `error:` line for anything it did not handle."""
    try:
        code = int(args.func(args))
    except (KeyboardInterrupt, Terminated) as e:
        signum = stop_requested() or (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
        report_stop(signum)
        return 128 + signum
    except BrokenPipeError:
        # `openai-batches status | head -1`: the reader has all it wanted. Quiet, with the status a
        # process killed by SIGPIPE has in a shell, as other command-line tools do; whatever the
        # command committed before printing stays committed.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush into the closed pipe at exit
        return 128 + signal.SIGPIPE
    except Exception as e:
        # Last line of defence: whatever escaped the commands' own handling is still one line for the
        # cron log; -v adds the traceback for whoever debugs it.
        if args.verbose:
            traceback.print_exc()
        code = EXIT_FAILED
        if stop_requested() is None:
            print(f"error: unexpected {type(e).__name__}: {error_line(e)}", file=sys.stderr)
    # A signal wins over whatever the command made of it (dlt can swallow the exception it raised).
    if (stopped_by := stop_requested()) is not None:
        report_stop(stopped_by)
        return 128 + stopped_by
    return code


def entry() -> None:
    """The `openai-batches` console script: `main()`, then exit without the interpreter's teardown.

    Freeing every module and object of dlt, pyarrow and duckdb at exit takes ~0.25 s, a fifth of a
    cron run that has nothing to load, and buys a finished process nothing. The process exits the
    ordinary way (`sys.exit`: other non-daemon threads are waited for, then the exit handlers run,
    dlt's among them) up to the last exit handler, which is ours (`_skip_teardown`, registered before
    `main` so it runs after every handler registered since): it flushes logging and output and ends
    the process with `main`'s code before the teardown starts."""
    finished: list[int] = []
    atexit.register(_skip_teardown, finished)
    code = main()
    finished.append(code)
    sys.exit(code)


def _skip_teardown(finished: list[int]) -> None:
    """The last exit handler of `entry`: end the process now with `main`'s code. Handlers registered
    before `entry` would run after this one; of those only logging's matters, and it is run here.
    Nothing when `main` did not return (an exception on its way out: the ordinary exit reports it)."""
    if not finished:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(finished[0])


if __name__ == "__main__":
    # As the console script (`entry`), exit included. With `sys.exit(main())` a run stopped by a Ctrl-C that landed
    # while dlt was being imported sometimes (1 in ~7) died by SIGINT during the interpreter's teardown, after it had
    # handled the stop and printed its line: the status was "killed by SIGINT", not 130.
    entry()
