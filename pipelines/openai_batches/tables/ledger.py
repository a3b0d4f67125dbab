"""The one column list of the request ledger's tables (`batch_requests`, `batch_files`), and their arrow form.

Like `tables/batches.py`: every column is declared up front with its type, so both tables have all their
columns from the first load, even while a column has no value yet (tokens of a batch that only failed).
Only these fields are ever taken from a batch's files: never a prompt, an answer, a vector or a score.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..client.redact import Redacted, Redactor
from .batches import TIMESTAMP, Column, _col, _hints, _int, _text, _ts

# Where the ledger's arrow arrays live: the C library's heap, which `memory.release_free_memory` hands
# back to the system before the load step. Arrow's default pool (mimalloc) keeps freed pages instead:
# the load of a 1 GB output file peaked ~30 MB higher with it, one of 500,000 requests ~70 MB higher.
POOL = pa.system_memory_pool()

# Where users encode their jobs in custom ids (`job-17-req-00042`, `ticket:123`, `acme:doc-4411-3`): the part before
# the last `-`, `_` or `:`; an id without any (or with nothing before it) is its own job. One pattern for the loader,
# which stores the prefix with each row (arrow's RE2), and the views, which compute it for rows stored before
# (DuckDB's RE2): the same engine, the same result (tests/test_custom_id_prefix.py compares them on odd ids). Stored
# because it is the costliest part of `request_costs`: the regex over 50M custom ids took ~6 s of every query.
# `(?s)`: a newline is part of the job like any other character (without it `.` stops at one, and `line1\nline2-7`
# was its own job instead of `line1\nline2`; tests/test_hostile_s26.py).
CUSTOM_ID_PREFIX_PATTERN = "(?s)^(.*)[-_:][^-_:]*$"
NO_PREFIX = "(no prefix)"
# Every value of `batch_requests.outcome`, in the order the reports show them: `ledger_check` has a count per value
# (built from this), and so has queries/19_request_outcomes.sql, a file users read and edit (its columns are checked
# against this in tests/test_hostile_s26.py).
OUTCOMES = ("succeeded", "failed", "expired", "cancelled", "missing")

REQUEST_COLUMNS: tuple[Column, ...] = (
    _text("batch_id", "The batch (`batches.id`) the request belongs to."),
    _text("custom_id", "The request's `custom_id`; unique within its batch."),
    _text("project", "Configured project name, as in `batches.project`."),
    _text(
        "outcome",
        "`succeeded` (a 2xx line in the output file; Anthropic: result `succeeded`); `failed` (any other status "
        "there, or an error-file line; Anthropic: `errored`); `expired` / `cancelled` (error-file lines "
        "`batch_expired` / `batch_cancelled`; Anthropic: `expired` / `canceled`); `missing` (in the input file, in "
        "neither of the others; OpenAI only).",
    ),
    _int("status_code", "HTTP status of the request's response; NULL for a request that never ran (and on Anthropic)."),
    _text(
        "request_id",
        "The response's `request_id` (`req_...`), to quote to support (Anthropic: an errored result's "
        "`error.request_id`).",
    ),
    _text("response_id", "The response body's `id` (`chatcmpl-...`, `resp_...`, Anthropic `msg_...`); NULL when none."),
    _text("model", "The model the response body names (the snapshot that answered)."),
    _int(
        "input_tokens",
        "Input tokens, cached included (`prompt_tokens` or `input_tokens`; Anthropic: `input_tokens` + "
        "`cache_read_input_tokens` + `cache_creation_input_tokens`, cache reads and writes included); NULL when the "
        "endpoint reports none.",
    ),
    _int(
        "cached_tokens",
        "Input tokens served from the prompt cache (Anthropic: `cache_read_input_tokens`); NULL when none reported.",
    ),
    _int(
        "output_tokens",
        "Output tokens, reasoning included (`completion_tokens` or `output_tokens`; 0 for embeddings); NULL when "
        "the endpoint reports none.",
    ),
    _int(
        "reasoning_tokens",
        "Reasoning tokens within output tokens (Anthropic: `output_tokens_details.thinking_tokens`); NULL when the "
        "endpoint reports none.",
    ),
    _text(
        "error_code",
        "Error code of a request that did not succeed (`context_length_exceeded`, `batch_expired`; Anthropic: the "
        "error's `type`, `invalid_request_error`).",
    ),
    _text("error_message", "The API's error message, at most 500 characters (never the request's content)."),
    # Anthropic's prompt-cache writes and tier (NULL on OpenAI rows): priced apart from other input tokens.
    _int(
        "cache_write_tokens",
        "Anthropic: input tokens written to the prompt cache (`cache_creation_input_tokens`, 5-minute and 1-hour "
        "writes), within `input_tokens`; NULL on OpenAI rows.",
    ),
    _int(
        "cache_write_1h_tokens",
        "Anthropic: the 1-hour cache writes within `cache_write_tokens` "
        "(`cache_creation.ephemeral_1h_input_tokens`; the 5-minute ones are the difference); NULL on OpenAI rows.",
    ),
    _text("service_tier", "Anthropic: the tier `usage.service_tier` names, as sent (`batch`); NULL on OpenAI rows."),
    # Last: filled after the identifiers are scrubbed (`requests_to_arrow`).
    _col(
        "redacted_fields",
        pa.string(),
        "json",
        "Columns of the row in which a configured API key the server sent back was masked (***), as a JSON list "
        "(`custom_id`, `error_message`); their stored values are not the ones the API sent. NULL when none.",
    ),
    # After the columns a load reads: computed from the stored `custom_id` (`requests_to_arrow`).
    _text(
        "custom_id_prefix",
        "The job the `custom_id` names: its part before the last `-`, `_` or `:` (`job-17-req` of "
        f"`job-17-req-00042`), `{NO_PREFIX}` when it has none. Computed when the row is written; NULL in rows an "
        "older version wrote (the views compute it for those).",
    ),
)

FILE_COLUMNS: tuple[Column, ...] = (
    _text("batch_id", "The batch (`batches.id`) the file belongs to."),
    _text("project", "Configured project name, as in `batches.project`: with `batch_id`, the batch the file is of."),
    _text(
        "kind",
        "`output`, `error`, or `input` (read only when the other two do not account for every request); "
        "`results` for an Anthropic batch's results (its `results_url`).",
    ),
    _text("file_id", "The file's id (`file-...`); NULL for Anthropic results, which are no file."),
    _text(
        "state",
        "`read`; `gone` (the API answered 404 on 3 runs in a row, or past the file's expiry: expired or "
        "deleted; Anthropic results: archived, 29 days after the batch was created); `pending` (left for a later "
        "run by the per-run budget, a failure or a 404 not yet taken as gone).",
    ),
    _int(
        "bytes",
        "Size in bytes: as downloaded when read, as the API describes it while pending (NULL for Anthropic results, "
        "whose size is known only once read).",
    ),
    _int(
        "lines",
        "Lines read (`read` files only). Anthropic results: fewer than the batch's request counts add up to means "
        "requests the results do not account for.",
    ),
    _ts("read_at", "When the file was read, or found gone; NULL while pending."),
)

REQUEST_COLUMN_NAMES = tuple(c.name for c in REQUEST_COLUMNS)
# Columns holding identifiers a server sent: stored as sent (control characters too: reports escape them
# when shown) unless they carry part of a configured key or are absurdly long (see `scrub`, `identifier`).
IDENTIFIER_COLUMNS = ("custom_id", "request_id", "response_id", "model", "service_tier")


def _schema(columns: Sequence[Column], key: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.name != key) for c in columns])


def requests_arrow_schema() -> pa.Schema:
    return _schema(REQUEST_COLUMNS, "batch_id")


def files_arrow_schema() -> pa.Schema:
    return _schema(FILE_COLUMNS, "batch_id")


# The ledger's merge key: a batch's rows are written, and replaced, as a whole, per project. Batch ids are unique
# only within a provider (a gateway in front of OpenAI, `openai-compatible`, lists OpenAI's own ids): on `batch_id`
# alone one project's ledger of a batch deleted another's.
LEDGER_KEY = ("project", "batch_id")


def requests_column_hints() -> dict[str, dict[str, Any]]:
    """dlt hints of `batch_requests`: merge key (`project`, `batch_id`) (LEDGER_KEY; (project, batch_id,
    custom_id) is unique by construction), custom_id never NULL."""
    hints = _hints(REQUEST_COLUMNS, "batch_id")
    for name in LEDGER_KEY:
        hints[name]["merge_key"] = True
    hints["custom_id"]["nullable"] = False
    return hints


def files_column_hints() -> dict[str, dict[str, Any]]:
    """dlt hints of `batch_files`: merge key (`project`, `batch_id`) (a batch's file rows are replaced as a whole)."""
    hints = _hints(FILE_COLUMNS, "batch_id")
    for name in LEDGER_KEY:
        hints[name]["merge_key"] = True
    for name in ("kind", "state"):  # file_id: NULL on Anthropic rows
        hints[name]["nullable"] = False
    return hints


def ledger_owners() -> list[tuple[str, str]]:
    """(table, column of the batch id) of the tables that name a project for a batch id: the ledger's requests,
    then every provider's batches (`file_project_updates`)."""
    from .. import settings

    return [(settings.REQUESTS_TABLE, "batch_id"), *((t, "id") for t in settings.BATCH_TABLES.values())]


def file_project_updates(files: str, owners: Mapping[str, str]) -> list[str]:
    """The UPDATEs that give the rows of `batch_files` an older version wrote (no `project` column then: added
    NULL) the project whose ledger wrote them: that version kept one project's rows of a batch id, the project of
    the batch's requests, else of its row in a provider's table. `files`: the table's qualified name; `owners`:
    qualified table -> the column holding the batch id (`batch_requests` first)."""
    return [
        f"UPDATE {files} AS f SET project = (SELECT min(o.project) FROM {table} AS o WHERE o.{key} = f.batch_id) "
        "WHERE project IS NULL"
        for table, key in owners.items()
    ]


def identifier(redactor: Redactor) -> Callable[[str], str]:
    """What becomes of an identifier `scrub` flags: a configured key masked (a `Redacted`), nothing else
    changed, so a custom id without a key still matches the user's; one longer than IDENTIFIER_MAX_CHARS
    is cut (and cleaned to one line)."""
    from .. import settings

    def cleaned(text: str) -> str:
        if len(text) > settings.IDENTIFIER_MAX_CHARS:
            return redactor.clean(text, settings.IDENTIFIER_MAX_CHARS)
        return redactor.mask(text)

    return cleaned


def scrub(array: pa.Array, suspicious: str | None, clean: Callable[[str], str]) -> tuple[pa.Array, list[int]]:
    """`array` with every value that matches the regex `suspicious` (a run of a configured key) or is too
    long passed through `clean`, and the positions where `clean` masked a key (it returned a
    `Redacted`). Checked vectorised: almost no value ever needs cleaning; any other is kept byte for byte."""
    from .. import settings

    flags = pc.greater(pc.utf8_length(array), settings.IDENTIFIER_MAX_CHARS)
    if suspicious:
        flags = pc.or_(flags, pc.match_substring_regex(array, suspicious))
    flags = pc.fill_null(flags, False)
    if not pc.any(flags).as_py():
        return array, []
    values = array.to_pylist()
    masked = []
    for i in pc.indices_nonzero(flags).to_pylist():
        values[i] = clean(values[i])
        if isinstance(values[i], Redacted):
            masked.append(i)
    return pa.array(values, pa.string(), memory_pool=POOL), masked


def requests_to_arrow(
    columns: Mapping[str, Sequence[pa.Array]], suspicious: str | None, clean: Callable[[str], str]
) -> pa.Table:
    """Rows of `batch_requests` from arrow arrays per column (every name of REQUEST_COLUMNS but `custom_id_prefix`,
    computed here), kept as the chunks they are (no copy of a batch's columns into one array). An identifier in
    which `clean` masked a key is named in its row's `redacted_fields` (next to the error columns the parse named)."""
    schema = requests_arrow_schema()
    columns_out: list[pa.ChunkedArray] = []
    masked: dict[int, list[str]] = {}  # row -> identifier columns in which a key was masked
    for field in schema:
        if field.name == "custom_id_prefix":  # of the custom ids as stored (scrubbed above)
            columns_out.append(custom_id_prefix(columns_out[schema.get_field_index("custom_id")]))
            continue
        chunks = [c if c.type == field.type else c.cast(field.type, memory_pool=POOL) for c in columns[field.name]]
        if field.name in IDENTIFIER_COLUMNS:
            chunks = _scrubbed(chunks, field.name, suspicious, clean, masked)
        column = pa.chunked_array(chunks, field.type)
        if field.name == "redacted_fields" and masked:
            column = _with_masked(column, masked)
        columns_out.append(column)
    return pa.Table.from_arrays(columns_out, schema=schema)


def custom_id_prefix(custom_ids: pa.ChunkedArray) -> pa.ChunkedArray:
    """The `custom_id_prefix` of each custom id (CUSTOM_ID_PREFIX_PATTERN), as `custom_id_prefix_sql` computes it."""
    pattern = CUSTOM_ID_PREFIX_PATTERN.replace("(.*)", "(?P<prefix>.*)", 1)
    out = []
    for chunk in custom_ids.chunks:
        prefix = pc.struct_field(pc.extract_regex(chunk, pattern, memory_pool=POOL), "prefix")
        prefix = pc.if_else(pc.equal(prefix, ""), None, prefix, memory_pool=POOL)
        out.append(pc.fill_null(prefix, NO_PREFIX))
    return pa.chunked_array(out, pa.string())


def custom_id_prefix_sql(alias: str) -> str:
    """SQL of the `custom_id_prefix` of row ``alias`` of `batch_requests`: the stored one, else (a row an older version
    wrote) computed by the same pattern as `custom_id_prefix`."""
    extracted = f"regexp_extract({alias}.custom_id, '{CUSTOM_ID_PREFIX_PATTERN}', 1)"
    computed = f"coalesce(nullif({extracted}, ''), '{NO_PREFIX}')"
    # CASE, not coalesce: DuckDB evaluates every argument of coalesce on every row (the regex over 50M custom ids:
    # 4.1 s against 0.3 s), a CASE branch only on the rows that take it.
    return f"CASE WHEN {alias}.custom_id_prefix IS NULL THEN {computed} ELSE {alias}.custom_id_prefix END"


def _scrubbed(
    chunks: list[pa.Array],
    name: str,
    suspicious: str | None,
    clean: Callable[[str], str],
    masked: dict[int, list[str]],
) -> list[pa.Array]:
    out, offset = [], 0
    for chunk in chunks:
        cleaned, rows = scrub(chunk, suspicious, clean)
        for row in rows:
            masked.setdefault(offset + row, []).append(name)
        out.append(cleaned)
        offset += len(chunk)
    return out


def _with_masked(column: pa.ChunkedArray, masked: dict[int, list[str]]) -> pa.ChunkedArray:
    """`redacted_fields` with the identifier columns masked per row added (a rare path: Python values)."""
    values = column.to_pylist()
    for row, names in masked.items():
        values[row] = json.dumps([*names, *json.loads(values[row] or "[]")])
    return pa.chunked_array([pa.array(values, pa.string(), memory_pool=POOL)], pa.string())


def files_to_arrow(
    rows: Sequence[tuple[str, str, str | None, str, int | None, int | None, float | None]], project: str
) -> pa.Table:
    """Rows of `batch_files` of `project` from (batch_id, kind, file_id, state, bytes, lines, read_at epoch
    seconds)."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in range(7)]
    batch_ids, *texts, size, lines, read_at = columns
    texts = [batch_ids, [project] * len(batch_ids), *texts]
    micros = [None if t is None else int(t * 1_000_000) for t in read_at]
    arrays = [pa.array(list(values), pa.string()) for values in texts]
    arrays += [pa.array(list(size), pa.int64()), pa.array(list(lines), pa.int64())]
    arrays.append(pa.array(micros, pa.int64()).cast(TIMESTAMP))
    return pa.Table.from_arrays(arrays, schema=files_arrow_schema())


__all__ = [
    "CUSTOM_ID_PREFIX_PATTERN",
    "FILE_COLUMNS",
    "IDENTIFIER_COLUMNS",
    "LEDGER_KEY",
    "NO_PREFIX",
    "POOL",
    "REQUEST_COLUMNS",
    "REQUEST_COLUMN_NAMES",
    "custom_id_prefix",
    "custom_id_prefix_sql",
    "files_column_hints",
    "file_project_updates",
    "files_to_arrow",
    "identifier",
    "ledger_owners",
    "requests_column_hints",
    "requests_to_arrow",
    "scrub",
]
