"""What the tables are: column lists, table names, arrow schemas and the conversion of API objects to rows.
Read by the sources (to write the tables) and by storage and analysis (to read them).

May import: pyarrow, `openai_batches.settings`, and `client/redact.py` (what of a server's text may be
stored: pure text, no HTTP). Never dlt, the clients' HTTP, the sources or anything above them.
"""
