"""The `openai_batches` source: paging `GET /v1/batches` with the pure incremental plan (`plan.py`)."""
