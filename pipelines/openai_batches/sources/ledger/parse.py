"""Reading a batch's JSONL files as they stream: what happened to each request, never what it said.

Each line is parsed as soon as its last byte arrives and only the ledger's fields are kept (custom id,
status, ids, the body's model, token counts, the error's code and message); the prompt, the answer, the
vectors and the scores are dropped with the parsed line. A file is never held whole: at most one chunk
and one partial line. Formats: the "Batch files" section of the API reference; an Anthropic batch's results
(`results_url`): the Message Batches reference and the `anthropic` SDK's `MessageBatchIndividualResponse`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from ... import settings
from ...client.errors import ApiError
from ...client.redact import Redacted
from ...tables.batches import exact_int
from ...tables.ledger import POOL

# The kind of an Anthropic batch's results (its `results_url`), next to OpenAI's output, error and input files.
RESULTS = "results"
# Error-file codes of requests that never ran, and the outcome each one means.
NEVER_RAN = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
_NO_TOKENS: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)
_loads = orjson.loads


class DownloadStopped(Exception):
    """The run is stopping (interrupted, or failed elsewhere): a download in progress gives up at once."""


RESULT_FIELDS = (
    "custom_id",
    "outcome",
    "status_code",
    "request_id",
    "response_id",
    "model",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "error_code",
    "error_message",
    # Anthropic's (NULL on OpenAI rows: never appended there, filled with nulls by ParsedFile.to_arrow)
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "service_tier",
    # Which of the row's columns hold a masked configured key (JSON list), not a field of the file: see
    # `ledger_columns.REQUEST_COLUMNS`.
    "redacted_fields",
)
RESULT_TYPES = {
    name: pa.int64() if name == "status_code" or name.endswith("_tokens") else pa.string() for name in RESULT_FIELDS
}
# Rows kept as Python values before they become arrow arrays: a batch of 50,000 requests held as Python
# objects is ~25 MB, as arrow ~8 MB, and up to DOWNLOADS_AT_ONCE batches are read at once.
ARROW_EVERY_ROWS = 4096


class ParsedFile:
    """The ledger's fields of one output or error file, one row per custom id: arrow arrays per column,
    built every ARROW_EVERY_ROWS lines."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {name: [] for name in RESULT_FIELDS}
        self.arrays: dict[str, list[pa.Array]] = {name: [] for name in RESULT_FIELDS}
        self.rows = 0
        self.seen: set[str] = set()
        self.bytes = 0
        self.lines = 0
        self.duplicates = 0  # lines of a custom id already read (in this file or an earlier one of the batch)
        self.bad_lines = 0  # lines that are not a JSON object with a custom_id: no row
        self.first_bad: str | None = None  # "line N: why" (never the line's text)

    def bad(self, number: int, why: str) -> None:
        self.bad_lines += 1
        if self.first_bad is None:
            self.first_bad = f"line {number}: {why}"

    def to_arrow(self) -> None:
        """The rows held as Python values become arrow arrays (a column a parser never fills: nulls)."""
        rows = len(self.values["custom_id"])
        if not rows:
            return
        for name, values in self.values.items():
            if values:
                self.arrays[name].append(pa.array(values, RESULT_TYPES[name], memory_pool=POOL))
                values.clear()
            else:
                self.arrays[name].append(pa.nulls(rows, RESULT_TYPES[name], memory_pool=POOL))

    def columns(self) -> dict[str, list[pa.Array]]:
        self.to_arrow()
        return self.arrays


@dataclass
class InputIds:
    """The custom ids of an input file, in file order, each once."""

    custom_ids: list[str] = field(default_factory=list)
    bytes: int = 0
    lines: int = 0
    bad_lines: int = 0
    first_bad: str | None = None


def split_lines(
    chunks: Iterable[bytes], counter: ParsedFile | InputIds, stop: threading.Event | None
) -> Iterator[bytes | None]:
    """The lines of a byte stream (without their `\n`), as soon as each is complete; counts the bytes.
    A line longer than `settings.LEDGER_MAX_LINE_BYTES` is dropped as it arrives and yielded as None.
    A UTF-8 byte-order mark at the start (editors and Windows tools write one) is not part of the first
    line: left there, it made that line no JSON and its request `missing`."""
    limit = settings.LEDGER_MAX_LINE_BYTES
    partial: list[bytes] = []  # pieces of a line that spans chunks (joined once, not re-copied per chunk)
    held = 0  # their bytes
    too_long = False  # the line in progress is past the limit: its bytes are dropped, not held
    head: bytes | None = b""  # the first bytes while they may still be a byte-order mark; None once decided
    for chunk in chunks:
        if stop is not None and stop.is_set():
            raise DownloadStopped
        counter.bytes += len(chunk)
        if head is not None:
            head += chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                continue
            chunk, head = head.removeprefix(_BOM), None
        parts: list[bytes | None] = list(chunk.split(b"\n"))
        if len(parts) == 1:
            held += len(chunk)
            if held > limit:
                partial, too_long = [], True
            elif not too_long:
                partial.append(chunk)
            continue
        first = parts[0]
        assert first is not None
        if too_long or held + len(first) > limit:
            parts[0] = None
        elif partial:
            partial.append(first)
            parts[0] = b"".join(partial)
        partial, held, too_long = [], 0, False
        last = parts.pop()
        if last:
            partial.append(last)
            held = len(last)
        yield from parts
    if head:
        partial.append(head)  # a file of one or two bytes that begin like a byte-order mark
    if too_long:
        yield None
    elif partial:
        yield b"".join(partial)  # a last line without its newline


_BOM = b"\xef\xbb\xbf"


def _too_long() -> str:
    return f"longer than {settings.LEDGER_MAX_LINE_BYTES:,} bytes (skipped unread)"


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(value)


def _count(value: Any) -> int | None:
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else None
    return exact_int(value)


def _inner(usage: dict[str, Any], details: str, key: str) -> Any:
    inner = usage.get(details)
    return inner.get(key) if type(inner) is dict else None


def tokens(usage: dict[str, Any]) -> tuple[int | None, int | None, int | None, int | None]:
    """(input, cached, output, reasoning) of a response's `usage`, the same for every endpoint: the
    Responses API's names, chat and completions' `prompt_tokens`/`completion_tokens`, and embeddings'
    `prompt_tokens` alone (no output: 0). NULL where the endpoint reports none."""
    if "input_tokens" in usage:
        return (
            _count(usage.get("input_tokens")),
            _count(_inner(usage, "input_tokens_details", "cached_tokens")),
            _count(usage.get("output_tokens")),
            _count(_inner(usage, "output_tokens_details", "reasoning_tokens")),
        )
    if "prompt_tokens" in usage:
        prompt = _count(usage.get("prompt_tokens"))
        cached = _count(_inner(usage, "prompt_tokens_details", "cached_tokens"))
        if "completion_tokens" not in usage:
            return prompt, cached, 0, None  # embeddings: input only
        return (
            prompt,
            cached,
            _count(usage.get("completion_tokens")),
            _count(_inner(usage, "completion_tokens_details", "reasoning_tokens")),
        )
    return _NO_TOKENS


def _redacted(code: str | None, message: str | None) -> str | None:
    """`redacted_fields` of a row whose error code and message were cleaned: the ones a key was masked in."""
    if not isinstance(code, Redacted) and not isinstance(message, Redacted):
        return None
    names = [name for name, value in (("error_code", code), ("error_message", message)) if isinstance(value, Redacted)]
    return orjson.dumps(names).decode()


def _requests(
    chunks: Iterable[bytes],
    out: ParsedFile,
    seen_before: set[str],
    stop: threading.Event | None,
    max_lines: int | None = None,
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, custom id, parsed line) of each line of a results file that is a request not read before. Lines
    that are not a JSON object with a custom id, or that repeat one (in this file, or in `seen_before`: an
    earlier file of the batch), are counted in `out` and not yielded. Past `max_lines` lines: ApiError."""
    number = 0
    seen = out.seen
    for line in split_lines(chunks, out, stop):
        number += 1
        if max_lines is not None and number > max_lines:
            raise ApiError(f"the results go on past {max_lines:,} lines, far more than the batch's requests: cut there")
        if line is None:
            out.lines += 1
            out.bad(number, _too_long())
            continue
        if not line.strip():
            continue
        out.lines += 1
        try:
            obj = _loads(line)
        except orjson.JSONDecodeError:
            out.bad(number, "not JSON")
            continue
        if type(obj) is not dict:
            out.bad(number, "not a JSON object")
            continue
        custom_id = _text(obj.get("custom_id"))
        if custom_id is None:
            out.bad(number, "no custom_id")
            continue
        if custom_id in seen or custom_id in seen_before:
            out.duplicates += 1
            continue
        seen.add(custom_id)
        yield number, custom_id, obj


def parse_results(
    chunks: Iterable[bytes],
    kind: str,
    *,
    seen_before: set[str],
    clean_code: Callable[[Any], str | None],
    clean_message: Callable[[Any], str | None],
    stop: threading.Event | None = None,
    max_lines: int | None = None,
    openai_results: bool = False,
) -> ParsedFile:
    """The rows of an output or error file, or of a batch's results (`kind`: RESULTS): Anthropic's, or with
    `openai_results` OpenRouter's (OpenAI's lines, errors inline: a 2xx response succeeded). A custom
    id in `seen_before` (an earlier file of the batch) or seen earlier in this file is counted as a
    duplicate, not read twice. `clean_code` and `clean_message` return a `Redacted` text when they masked a
    key: the row's `redacted_fields` says so. A file of more than `max_lines` lines raises ApiError."""
    out = ParsedFile()
    lines = _requests(chunks, out, seen_before, stop, max_lines)
    if kind == RESULTS and not openai_results:
        _message_results(lines, out, clean_code, clean_message)
    else:
        _openai_lines(lines, out, kind in ("output", RESULTS), clean_code, clean_message)
    out.to_arrow()
    return out


def _openai_lines(  # noqa: PLR0915 -- the ledger's per-line loop, inlined for speed (make bench: ledger MB/s)
    lines: Iterator[tuple[int, str, dict[str, Any]]],
    out: ParsedFile,
    in_output: bool,
    clean_code: Callable[[Any], str | None],
    clean_message: Callable[[Any], str | None],
) -> None:
    """The rows of OpenAI's output or error file lines ("Batch files" in the API reference)."""
    models: dict[str, str] = {}
    v = out.values  # bound appends: the loop runs once per request
    add_custom_id, add_outcome, add_status = v["custom_id"].append, v["outcome"].append, v["status_code"].append
    add_request_id, add_response_id, add_model = v["request_id"].append, v["response_id"].append, v["model"].append
    add_input, add_cached = v["input_tokens"].append, v["cached_tokens"].append
    add_output, add_reasoning = v["output_tokens"].append, v["reasoning_tokens"].append
    add_code, add_message = v["error_code"].append, v["error_message"].append
    add_redacted = v["redacted_fields"].append
    for _, custom_id, obj in lines:
        status = request_id = response_id = model = None
        usage = _NO_TOKENS
        error = None
        response = obj.get("response")
        if type(response) is dict:
            status = _count(response.get("status_code"))
            request_id = _text(response.get("request_id"))
            body = response.get("body")
            if type(body) is dict:
                response_id = _text(body.get("id"))
                model = _text(body.get("model"))
                found = body.get("usage")
                if type(found) is dict:
                    usage = tokens(found)
                found = body.get("error")
                if type(found) is dict:
                    error = found
        if error is None:
            found = obj.get("error")
            if type(found) is dict:
                error = found
        code = error.get("code") if error is not None else None
        if in_output and status is not None and 200 <= status < 300:
            outcome = "succeeded"
        elif status is None and code in NEVER_RAN:
            outcome = NEVER_RAN[code]
        else:
            outcome = "failed"
        add_custom_id(custom_id)
        add_outcome(outcome)
        add_status(status)
        add_request_id(request_id)
        add_response_id(response_id)
        add_model(models.setdefault(model, model) if model is not None else None)  # one copy of each name
        add_input(usage[0])
        add_cached(usage[1])
        add_output(usage[2])
        add_reasoning(usage[3])
        if error is not None:
            error_code, message = clean_code(code), clean_message(error.get("message"))
            add_code(error_code)
            add_message(message)
            add_redacted(_redacted(error_code, message))
        else:
            add_code(None)
            add_message(None)
            add_redacted(None)
        out.rows += 1
        if out.rows % ARROW_EVERY_ROWS == 0:
            out.to_arrow()


# Anthropic's result types and the ledger's outcome of each; any other type is `failed`, its type kept as
# the error code (a type added after this was written is shown, not taken for a success).
MESSAGE_OUTCOMES = {"succeeded": "succeeded", "errored": "failed", "canceled": "cancelled", "expired": "expired"}
_INT64_MAX = 2**63 - 1


def message_tokens(usage: dict[str, Any]) -> tuple[int | None, ...]:
    """(input, cached, cache_write, cache_write_1h, output, reasoning) of an Anthropic message's `usage`.
    Input is all the input, as on OpenAI's side: `input_tokens` (the uncached part) plus the cache reads and
    writes; NULL when `input_tokens` is not a count (or the sum is beyond a BIGINT)."""
    get = usage.get
    uncached, read, written = get("input_tokens"), get("cache_read_input_tokens"), get("cache_creation_input_tokens")
    output = get("output_tokens")
    if not (type(uncached) is int and type(read) is int and type(written) is int and type(output) is int):
        uncached, read, written, output = _count(uncached), _count(read), _count(written), _count(output)
    total = None
    if uncached is not None:
        total = uncached + (read or 0) + (written or 0)
        if not -_INT64_MAX <= total <= _INT64_MAX or not -_INT64_MAX <= uncached <= _INT64_MAX:
            total = None
    split = get("cache_creation")
    details = get("output_tokens_details")
    return (
        total,
        read if read is None or -_INT64_MAX <= read <= _INT64_MAX else None,
        written if written is None or -_INT64_MAX <= written <= _INT64_MAX else None,
        _count(split.get("ephemeral_1h_input_tokens")) if type(split) is dict else None,
        output if output is None or -_INT64_MAX <= output <= _INT64_MAX else None,
        _count(details.get("thinking_tokens")) if type(details) is dict else None,
    )


def _message_results(  # noqa: PLR0915 -- the per-line loop, inlined for speed like _openai_lines
    lines: Iterator[tuple[int, str, dict[str, Any]]],
    out: ParsedFile,
    clean_code: Callable[[Any], str | None],
    clean_message: Callable[[Any], str | None],
) -> None:
    """The rows of an Anthropic batch's results: `{custom_id, result: {type, message | error}}` per line
    (`message` a full Message: its id, model and usage are kept, never its content; `error` the API's error
    envelope `{type: "error", error: {type, message}, request_id}`). A line without a `result` object is
    not a result: counted as a line that could not be read."""
    models: dict[str, str] = {}
    v = out.values  # bound appends: the loop runs once per request
    add_custom_id, add_outcome, add_request_id = v["custom_id"].append, v["outcome"].append, v["request_id"].append
    add_response_id, add_model, add_tier = v["response_id"].append, v["model"].append, v["service_tier"].append
    add_input, add_cached, add_output = v["input_tokens"].append, v["cached_tokens"].append, v["output_tokens"].append
    add_write, add_write_1h = v["cache_write_tokens"].append, v["cache_write_1h_tokens"].append
    add_reasoning, add_code, add_message = (
        v["reasoning_tokens"].append,
        v["error_code"].append,
        v["error_message"].append,
    )
    add_redacted = v["redacted_fields"].append
    no_tokens: tuple[int | None, ...] = (None,) * 6
    for number, custom_id, obj in lines:
        result = obj.get("result")
        if type(result) is not dict:
            out.seen.discard(custom_id)
            out.bad(number, "no result")
            continue
        kind = result.get("type")
        response_id = model = request_id = tier = code = text = None
        usage = no_tokens
        if kind == "succeeded":
            outcome = "succeeded"
            message = result.get("message")
            if type(message) is dict:
                response_id = _text(message.get("id"))
                model = _text(message.get("model"))
                found = message.get("usage")
                if type(found) is dict:
                    usage = message_tokens(found)
                    tier = _text(found.get("service_tier"))
        elif kind == "errored":
            outcome = "failed"
            envelope = result.get("error")
            if type(envelope) is dict:
                request_id = _text(envelope.get("request_id"))
                inner = envelope.get("error")
                if type(inner) is dict:
                    code, text = inner.get("type"), inner.get("message")
        else:
            known = MESSAGE_OUTCOMES.get(kind) if type(kind) is str else None
            outcome = known or "failed"
            if known is None:
                code = kind if kind is not None else "no result type"
        add_custom_id(custom_id)
        add_outcome(outcome)
        add_request_id(request_id)
        add_response_id(response_id)
        add_model(models.setdefault(model, model) if model is not None else None)  # one copy of each name
        add_input(usage[0])
        add_cached(usage[1])
        add_write(usage[2])
        add_write_1h(usage[3])
        add_output(usage[4])
        add_reasoning(usage[5])
        add_tier(tier)
        if code is not None or text is not None:
            error_code, cleaned = clean_code(code), clean_message(text)
            add_code(error_code)
            add_message(cleaned)
            add_redacted(_redacted(error_code, cleaned))
        else:
            add_code(None)
            add_message(None)
            add_redacted(None)
        out.rows += 1
        if out.rows % ARROW_EVERY_ROWS == 0:
            out.to_arrow()


def parse_input(chunks: Iterable[bytes], stop: threading.Event | None = None) -> InputIds:
    """The custom ids of an input file (each line's `custom_id`; the request itself is dropped)."""
    out = InputIds()
    seen: set[str] = set()
    number = 0
    for line in split_lines(chunks, out, stop):
        number += 1
        if line is not None and not line.strip():
            continue
        out.lines += 1
        custom_id = None
        if line is not None:
            try:
                obj = _loads(line)
            except orjson.JSONDecodeError:
                obj = None
            custom_id = _text(obj.get("custom_id")) if type(obj) is dict else None
        if custom_id is None:
            out.bad_lines += 1
            if out.first_bad is None:
                out.first_bad = f"line {number}: " + ("no custom_id" if line is not None else _too_long())
            continue
        if custom_id not in seen:
            seen.add(custom_id)
            out.custom_ids.append(custom_id)
    return out


__all__ = [
    "MESSAGE_OUTCOMES",
    "NEVER_RAN",
    "RESULTS",
    "RESULT_FIELDS",
    "DownloadStopped",
    "InputIds",
    "ParsedFile",
    "message_tokens",
    "parse_input",
    "parse_results",
    "split_lines",
    "tokens",
]
