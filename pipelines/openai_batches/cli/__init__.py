"""The `openai-batches` command: argument parsing and commands (`main.py`), output, progress, status,
the demo. The only layer that prints for a person and decides exit codes.

May import: everything. Nothing imports `cli` but the entry point (and the simulator's argument types).
Imports here stay light: `openai-batches --help` imports no dlt, pyarrow or duckdb.
"""
