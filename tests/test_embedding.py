"""Importing or embedding the source and the runner leaves the process as it was: dlt's configuration, dlt's
logger, read-only connections, exit handlers and httpx's internals (what a program that embeds us relies on)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import dlt
import duckdb
import httpx
import pytest

from openai_batches.client.deadline import Deadline, HttpxInternalsChanged, _DeadlineBackend, bound_total_time
from openai_batches.load.runner import make_pipeline, run_load
from openai_batches.simulator.org import SimulatedOrg
from openai_batches.simulator.server import SimulatorServer
from openai_batches.sources.progress import ProgressSink
from openai_batches.storage.duckdb_file import LoadInProgress, connect
from openai_batches.storage.store import DuckDBFile
from tests.support.cli import REPO
from tests.support.workload import KEY_A, PROJECT_A, config_for

LOAD_KEYS = ("load.delete_completed_jobs", "load.workers", "load.truncate_staging_dataset")


def _set(key: str) -> Any:
    try:
        return dlt.config[key]
    except KeyError:
        return None


def _our_filters() -> list[logging.Filter]:
    return [f for f in logging.getLogger("dlt").filters if type(f).__name__ == "_ExpectedArrowHintOverride"]


def test_a_load_leaves_dlt_config_and_logger_as_it_found_them(
    db: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    org.generate_history(30, project=PROJECT_A, days=2)
    with dlt.config.values({"load.workers": 7}):  # the embedding program's own choice
        seen: list[Any] = []

        class Watch(ProgressSink):
            def page(self, project: str, items: int) -> None:
                seen.append(([_set(k) for k in LOAD_KEYS], len(_our_filters())))

        assert _our_filters() == []  # importing the source added nothing to dlt's logger
        result = run_load(db, config_for(server.base_url, KEY_A), progress=Watch())
        assert result.ok, [o.error for o in result.outcomes]
        # During the run: our load settings, the filter on; after it: the program's values, no filter.
        assert seen and seen[0] == ([True, 1, True], 1)
        assert [_set(k) for k in LOAD_KEYS] == [None, 7, None]
        assert _our_filters() == []


def test_our_pipeline_keeps_signal_handling_to_itself(db: str) -> None:
    ours = make_pipeline(db)
    theirs = dlt.pipeline(pipeline_name="someone_else", destination="duckdb")
    assert ours.runtime_config.intercept_signals is False
    assert theirs.runtime_config.intercept_signals is True


def test_a_read_only_connection_during_a_load_is_refused_unless_the_caller_is_the_load(tmp_path: Any) -> None:
    path = str(tmp_path / "x.duckdb")
    duckdb.connect(path).close()
    store = DuckDBFile(path)
    with store.one_instance():
        with pytest.raises(LoadInProgress, match="being loaded by this process"):
            connect(path, read_only=True)
        with connect(path, read_only=True, in_load=True) as con:  # the load's own step: knows it may write
            assert con.execute("SELECT 1").fetchone() == (1,)
    with connect(path, read_only=True) as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute("CREATE TABLE t (x INT)")


def test_the_console_script_runs_late_exit_handlers_and_keeps_the_exit_code() -> None:
    script = textwrap.dedent(
        """
        import atexit
        import openai_batches.cli.main as cli

        def main():
            atexit.register(lambda: print("handler registered while running ran", flush=True))
            print("main ran")
            return 3

        cli.main = main
        cli.entry()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=os.environ, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["main ran", "handler registered while running ran"]


def test_the_total_time_bound_reaches_every_transport_of_the_installed_httpx() -> None:
    """The one use of httpx internals (client/deadline.py): it must find a pool with a network backend on the
    direct transport and on every proxy's, or say so loudly, on the httpx the lock installs."""
    client = httpx.Client(proxy="http://127.0.0.1:9", mounts={"http://no-proxy.invalid": None})
    bound_total_time(client, Deadline())
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    assert len(transports) == 2
    for transport in transports:
        assert isinstance(transport._pool._network_backend, _DeadlineBackend)  # type: ignore[attr-defined]

    class Bare(httpx.BaseTransport):
        pass

    with pytest.raises(HttpxInternalsChanged, match="total-time bound"):
        bound_total_time(httpx.Client(transport=Bare()), Deadline())
