"""The dlt sources: `batches` (with its incremental plan and the project run every provider shares),
`anthropic` (Anthropic's message batches on that run), the request `ledger` read from the batch files, and
`admin` (the Admin API's projects, usage and costs); the result types and progress they report.

May import: dlt, `client`, `tables`, `settings`. Never `storage`, `load`, `cli` or `analysis`: a source
runs in anyone's pipeline.
"""
