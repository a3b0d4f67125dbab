"""HTTP only: the clients of OpenAI's APIs (batches and files, the Admin API), their one retry budget,
total-time bound, paging, errors and what may be shown of a server's text.

May import: the standard library, httpx/httpcore/tenacity, numpy (`seen.py`: ids seen, 8 bytes each),
`openai_batches.settings`. Never dlt, pyarrow or
any other part of the package: a client is usable without a pipeline.
"""
