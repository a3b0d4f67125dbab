"""Baseline: the dlt `rest_api` configuration a user would write for `GET /v1/batches`.

Cursor paginator on `last_id` -> `after` that stops on `has_more`, merge on `id`, dlt's defaults for
everything else (nested `errors.data` as a child table, `metadata` flattened, the duckdb default loader
`insert_values`). No incremental: the list has no server-side filter, and an incremental on `created_at`
would never see the updates of batches that were open at the last run, so re-reading everything is the
only configuration that stays correct. Usage: `python bench/naive_rest_api.py DB_PATH` with
OPENAI_API_KEY and OPENAI_BASE_URL set.
"""

from __future__ import annotations

import os
import sys

import dlt
from dlt.sources.rest_api import rest_api_source


def main(db_path: str) -> int:
    source = rest_api_source(
        {
            "client": {
                "base_url": os.environ["OPENAI_BASE_URL"].rstrip("/") + "/",
                "auth": {"type": "bearer", "token": os.environ["OPENAI_API_KEY"]},
            },
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "batches",
                    "endpoint": {
                        "path": "batches",
                        "params": {"limit": 100},
                        "data_selector": "data",
                        "paginator": {
                            "type": "cursor",
                            "cursor_path": "last_id",
                            "cursor_param": "after",
                            "has_more_path": "has_more",
                        },
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="naive_openai_batches",
        destination=dlt.destinations.duckdb(db_path),
        dataset_name="naive_openai_batches",
    )
    info = pipeline.run(source)
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("batches", 0)
    print(f"naive rest_api: {rows} batches loaded, {len(info.loads_ids)} load package(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
