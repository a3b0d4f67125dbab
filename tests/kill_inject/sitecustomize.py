"""Put on PYTHONPATH of a CLI run with KILL_AT=<point>:<table> to end the process (SIGKILL-like, os._exit) at a
moment of dlt's load step no outside trigger hits reliably. Points: after_copy (a file's rows committed, the job not
yet recorded done), before_merge, after_merge (the merge follow-up's SQL)."""

from __future__ import annotations

import os

_AT = os.environ.get("KILL_AT")
if _AT:
    point, _, table = _AT.partition(":")
    from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
    from dlt.destinations.job_client_impl import SqlLoadJob

    _copy, _sql = DuckDbCopyJob.run, SqlLoadJob.run

    def copy_run(self):
        _copy(self)
        if point == "after_copy" and self.load_table_name == table:
            os._exit(9)

    def sql_run(self):
        if point == "before_merge" and self.load_table_name == table:
            os._exit(9)
        _sql(self)
        if point == "after_merge" and self.load_table_name == table:
            os._exit(9)

    DuckDbCopyJob.run, SqlLoadJob.run = copy_run, sql_run
