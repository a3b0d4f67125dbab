"""Anthropic's Message Batches: what the shared incremental plan reads of a message batch (`shape.py`) and
the dlt resource `anthropic_batches` (`source.py`), which runs the same project run as OpenAI's batches
(sources/batches/source.py `sync_batches`)."""
