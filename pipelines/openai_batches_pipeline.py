"""Load every OpenAI Batch API job of a project with the `openai_batches` dlt source, into DuckDB or
any other dlt destination.

    python pipelines/openai_batches_pipeline.py              # DuckDB: ./openai_batches_pipeline.duckdb
    python pipelines/openai_batches_pipeline.py postgres     # any dlt destination, configured the dlt way,
                                                             # e.g. DESTINATION__POSTGRES__CREDENTIALS=...

The key comes from OPENAI_API_KEY (or `api_key` under `[sources.openai_batches]` in .dlt/secrets.toml),
the API root from OPENAI_BASE_URL (point it at `openai-batches simulate` to try it without a key). The
first run loads the whole history in one call, however long; every later run only what is new and
what was still open. This is the source on its own: `openai-batches load` adds locking, several
projects, progress, a run log and the report views around the same source.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dlt

from openai_batches import openai_batches


def load_batches(destination: str = "duckdb", dataset_name: str = "openai_batches") -> Any:
    """Load (or bring up to date) one project's batches into `destination`; returns dlt's load info."""
    pipeline = dlt.pipeline(
        pipeline_name="openai_batches_pipeline",
        destination=destination,
        dataset_name=dataset_name,
    )
    source = openai_batches(
        # dlt.secrets.value: resolved the dlt way (secrets.toml, SOURCES__OPENAI_BATCHES__API_KEY) when the
        # SDK's variable is not set.
        api_key=os.environ.get("OPENAI_API_KEY") or dlt.secrets.value,
        base_url=os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
    )
    if destination in ("duckdb", "ducklake", "motherduck"):
        # Parquet: DuckDB loads it 15-35x faster than dlt's default insert statements.
        return pipeline.run(source, loader_file_format="parquet")
    return pipeline.run(source)  # each destination's own default (PostgreSQL: insert statements)


if __name__ == "__main__":
    print(load_batches(*sys.argv[1:2]))
