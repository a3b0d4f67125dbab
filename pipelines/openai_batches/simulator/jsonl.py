"""The bytes of a simulated batch's input, output and error files, rendered on the fly in chunks.

A file is never held whole: lines are formatted a block at a time from the batch's ``RequestPlan``
and joined into ~1 MB chunks. Each line is one ``bytes % args`` on a per-file template; content
(prompts, answers, vectors) is sliced from shared precomputed blocks, so a large file costs little
more than a memcpy. The exact size comes from the same code run with the content left out and its
length added instead, so the metadata's ``bytes`` equals the content length without rendering it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
import numpy.typing as npt

from .batch_requests import (
    CONTENT_MARKER,
    CONTENT_MARKER_NUMBER_TEXT,
    FAILED,
    OK,
    UNRUN,
    ZERO_STATUS,
    RequestPlan,
    embedding_dims,
    requested_model,
    snapshot_model,
)
from .line_bodies import (
    OUTPUT_ERRORS,
    UNRUN_ERRORS,
    ZERO_STATUS_ERRORS,
    failed_request_errors,
    json_spaced,
    moderation_results,
    quoted,
)

CHUNK_BYTES = 1 << 20
BLOCK_LINES = 256
KINDS = ("input", "output", "error")
_KIND_STREAM = {"input": 11, "output": 12, "error": 13}
_B62_TABLE = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" * 5, dtype=np.uint8)[:256]

# Content strings start with the marker and a few escapes (so JSON parsers are exercised): that prefix
# is part of each file's line template, and the rest is one slice of an ASCII block that needs no
# escaping (so a slice never cuts an escape in half) -- one copy per line.
_PREFIX = CONTENT_MARKER.encode() + b' \\"sim\\" caf\\u00e9\\n'
_P = len(_PREFIX)
_MARKER_NUMBER = CONTENT_MARKER_NUMBER_TEXT.encode()
_VOCABULARY = (
    "the model answer summary ticket customer order invoice review product quality delivery late refund "
    "policy account login error page search result ranking query document section paragraph table figure "
    "total amount date address shipping return label category sentiment positive negative neutral topic "
    "request response batch token cost price discount support agent reply thanks issue resolved pending "
    "update version release feature bug report test case expected actual value field record entry list "
    "item note comment title description language translate english french german spanish japanese text "
    "extract classify score label output input example context instruction system user assistant data"
)


@cache
def _text_block() -> bytes:
    rng = np.random.default_rng(20250907)
    vocabulary = _VOCABULARY.split()
    words = np.array(vocabulary)[rng.integers(0, len(vocabulary), 180_000)]
    ends = np.where(rng.random(len(words)) < 0.08, ". ", " ")
    return "".join(np.char.add(words, ends).tolist()).encode()[: 1 << 20]


@cache
def _float_block() -> tuple[bytes, npt.NDArray[np.int64]]:
    """6,200 floats as JSON text, each followed by ", ", and the byte offset where each starts."""
    rng = np.random.default_rng(1536)
    vals = (rng.standard_normal(6_200) * 0.03).astype(np.float32)
    parts = [repr(float(v)) for v in vals]  # float32 values printed as float64, as the API does
    offs = np.zeros(len(parts) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(p) + 2 for p in parts])
    return "".join(p + ", " for p in parts).encode(), offs


def _long_text(n: int) -> bytes:
    """``n`` bytes of text for the rare content longer than the block."""
    block = _text_block()
    reps, rem = divmod(n, len(block))
    return block * reps + block[:rem]


def _hex_ids(rng: np.random.Generator, n: int, chars: int) -> list[bytes]:
    """``n`` random lowercase hex ids of ``chars`` chars, split in C."""
    return rng.bytes(n * chars // 2).hex(" ", chars // 2).encode().split()


def _b62_ids(rng: np.random.Generator, n: int, chars: int) -> list[bytes]:
    raw = np.frombuffer(rng.bytes(n * (chars + 1)), dtype=np.uint8).reshape(n, chars + 1)
    out = _B62_TABLE[raw]
    out[:, chars] = 32  # a space after each id, to split on
    return out.tobytes().split()


_HEAD = b'{"id": "batch_req_%s", "custom_id": "%s", "response": {"status_code": 200, "request_id": "req_%s", "body": '
_TAIL = b'}, "error": null}\n'
_STATUS_LINE = (
    b'{"id": "batch_req_%s", "custom_id": "%s", "response": {"status_code": %d, "request_id": "req_%s", '
    b'"body": %s}, "error": null}\n'
)
_UNRUN_LINE = b'{"id": "batch_req_%s", "custom_id": "%s", "response": null, "error": %s}\n'
_EMBEDDING_ITEM = b'{"object": "embedding", "index": %d, "embedding": [' + _MARKER_NUMBER + b", %s]}"


@dataclass(frozen=True)
class RequestTruth:
    """What happened to one request, as a ledger should record it (never its content).

    ``file``: "output" or "error" (the file its line is in) or "missing" (in neither). Tokens are
    normalised across endpoints like the ledger's columns: None where the endpoint reports none.
    """

    file: str
    custom_id: str
    role: int  # batch_requests.OK, MISSING, ZERO_STATUS, OUTPUT_ERROR, FAILED or UNRUN
    line_id: str | None = None  # the line's `id` (batch_req_...)
    status_code: int | None = None
    request_id: str | None = None
    response_id: str | None = None  # the body's `id`
    model: str | None = None  # the body's `model`
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Anthropic's columns of the ledger: never on an OpenAI request.
    cache_write_tokens: None = None
    cache_write_1h_tokens: None = None
    service_tier: None = None

    @property
    def outcome(self) -> str:
        """succeeded, failed, expired, cancelled or missing (the ledger's `outcome`)."""
        if self.file == "missing":
            return "missing"
        if self.error_code in ("batch_expired", "batch_cancelled") and self.status_code is None:
            return self.error_code.removeprefix("batch_")
        if self.file == "output" and self.status_code is not None and 200 <= self.status_code < 300:
            return "succeeded"
        return "failed"


class FileRenderer:
    """One file of a batch (``kind``: input, output or error): its size, its chunks, its lines' truth."""

    def __init__(self, plan: RequestPlan, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.plan = plan
        self.kind = kind
        self.family = plan.kind
        self.model = snapshot_model(plan.src.model)
        if kind == "input":
            self.order = np.arange(plan.n, dtype=np.int64)
        elif kind == "output":
            self.order = plan.output_order
        else:
            self.order = plan.error_order
        self.lines = len(self.order)
        self._k = plan.embedding_inputs if self.family == "embeddings" else 1
        self._dims = embedding_dims(plan.src.model)
        self._bodies_cache: npt.NDArray[np.int64] | None = None

    # ------------------------------------------------------------------ public
    def size(self) -> int:
        return sum(sum(map(len, lines)) + left_out for lines, left_out in self._blocks(False))

    def chunks(self) -> Iterator[bytes]:
        buf: list[bytes] = []
        held = 0
        for lines, _ in self._blocks(True):
            buf.extend(lines)
            held += sum(map(len, lines))
            if held >= CHUNK_BYTES:
                yield b"".join(buf)
                buf, held = [], 0
        if buf:
            yield b"".join(buf)

    def truth(self) -> Iterator[RequestTruth]:
        if self.kind == "input":
            raise ValueError("the input file has no outcomes")
        for cols in self._columns():
            yield from self._truth_of(cols)

    # ------------------------------------------------------------------ per-block columns
    def _columns(self) -> Iterator[_Block]:
        plan = self.plan
        start, end = plan.processing_span()
        lines = self.lines
        text_room = len(_text_block()) + 1
        # Only the ids this file's lines carry are drawn (the sequence is fixed per file, so deterministic).
        lines_have_ids = self.kind != "input"
        wants_oid = self.kind == "output" and self.family in ("responses", "moderations")
        wants_b62 = self.kind == "output" and self.family in ("chat", "completions")
        for b, p0 in enumerate(range(0, lines, BLOCK_LINES)):
            p1 = min(lines, p0 + BLOCK_LINES)
            n = p1 - p0
            r = self.order[p0:p1]
            rl = r.tolist()
            rng = plan.src.rng(_KIND_STREAM[self.kind], b)
            kinds = plan.kinds[r]
            bodies = self._bodies[r]
            blk = _Block(
                n=n,
                r=rl,
                cid=[plan.custom_id(x).encode() for x in rl],
                lid=_hex_ids(rng, n, 32) if lines_have_ids else [],
                req=_hex_ids(rng, n, 32) if lines_have_ids else [],
                oid=_hex_ids(rng, n, 48) if wants_oid else [],
                oid2=_hex_ids(rng, n, 48) if wants_oid else [],
                b62=_b62_ids(rng, n, 29) if wants_b62 else [],
                kind=kinds.tolist(),
                body=bodies.tolist(),
                start=(kinds % np.maximum(1, text_room - bodies)).tolist(),
            )
            if self.kind != "input":
                pos = np.arange(p0 + 1, p1 + 1, dtype=np.int64)
                blk.created = (start + (end - start) * pos // max(lines, 1)).tolist()
                blk.role = plan.roles[r].tolist()
                blk.tok = tuple(t[r].tolist() for t in plan.tokens)
            yield blk

    # ------------------------------------------------------------------ content lengths
    @property
    def _bodies(self) -> npt.NDArray[np.int64]:
        """Bytes of each request's content after the marker prefix (>= 1)."""
        if self._bodies_cache is None:
            self._bodies_cache = self._content_bodies()
        return self._bodies_cache

    def _content_bodies(self) -> npt.NDArray[np.int64]:
        plan = self.plan
        if self.kind == "input":
            return plan.prompt_chars
        _, _, out, reas = plan.tokens
        natural = (4 * np.maximum(out - reas, 1)).astype(np.int64)  # ~4 bytes a visible token
        target = plan.src.options.output_bytes
        if target is None or self.kind != "output" or self.family not in ("chat", "completions", "responses"):
            return natural
        ok = self.order[plan.roles[self.order] == OK]
        if len(ok) == 0:
            return natural
        # Measure the lines with empty answers, then share what is left of the target among them.
        self._bodies_cache = np.zeros(plan.n, dtype=np.int64)
        q, rem = divmod(max(0, target - self.size()), len(ok))
        bodies = np.ones(plan.n, dtype=np.int64)
        if q >= 1:
            bodies[ok] = q
            bodies[ok[:rem]] += 1
        return bodies

    # ------------------------------------------------------------------ rendering
    def _blocks(self, content: bool) -> Iterator[tuple[list[bytes], int]]:
        """Per block: its lines, and the bytes left out of them (the content, when ``content`` is False)."""
        render = {"input": self._input_lines, "output": self._output_lines, "error": self._error_lines}[self.kind]
        for blk in self._columns():
            yield render(blk, content)

    def _input_lines(self, blk: _Block, content: bool) -> tuple[list[bytes], int]:
        tmpl = self._input_template
        k = self._k
        if not content:
            empty = b"".join(b'", "' + _PREFIX for _ in range(k - 1))  # the template holds the first prefix
            return [tmpl % (cid, empty) for cid in blk.cid], k * sum(blk.body)
        block = _text_block()
        out = []
        for cid, s, n, kind in zip(blk.cid, blk.start, blk.body, blk.kind, strict=True):
            text = block[s : s + n] if n < len(block) else _long_text(n)
            if k > 1:  # one prompt per vector asked for, each with the marker
                more = [_PREFIX + _text_at(kind + 977 * i, n) for i in range(1, k)]
                text = b'", "'.join([text, *more])
            out.append(tmpl % (cid, text))
        return out, 0

    @cached_property
    def _input_template(self) -> bytes:
        src = self.plan.src
        head = b'{"custom_id": "%s", "method": "POST", "url": ' + quoted(src.endpoint)
        head += b', "body": {"model": ' + quoted(requested_model(src.model))
        text = b'"' + _PREFIX + b'%s"'
        fam = self.family
        if fam == "chat":
            body = (
                b', "messages": [{"role": "system", "content": "You are a careful assistant."}, '
                b'{"role": "user", "content": ' + text + b'}], "max_tokens": 2048}}\n'
            )
        elif fam == "embeddings":
            body = b', "input": ' + (b"[" + text + b"]" if self._k > 1 else text) + b', "encoding_format": "float"}}\n'
        elif fam == "moderations":
            body = b', "input": ' + text + b"}}\n"
        elif fam == "completions":
            body = b', "prompt": ' + text + b', "max_tokens": 1024}}\n'
        else:
            body = b', "input": ' + text + b', "max_output_tokens": 4096}}\n'
        return head + body

    @cached_property
    def _ok_template(self) -> bytes:
        model = quoted(self.model)
        fam = self.family
        src = self.plan.src
        fp = b'"fp_' + src.rng(21).bytes(5).hex().encode() + b'"'
        text = b'"' + _PREFIX + b'%s"'
        if fam == "chat":
            body = (
                b'{"id": "chatcmpl-%s", "object": "chat.completion", "created": %d, "model": ' + model + b", "
                b'"choices": [{"index": 0, "message": {"role": "assistant", "content": ' + text + b', "refusal": null, '
                b'"annotations": []}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": %d, '
                b'"completion_tokens": %d, "total_tokens": %d, "prompt_tokens_details": {"cached_tokens": %d, '
                b'"audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": %d, "audio_tokens": 0, '
                b'"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}, "service_tier": "default", '
                b'"system_fingerprint": ' + fp + b"}"
            )
        elif fam == "completions":
            body = (
                b'{"id": "cmpl-%s", "object": "text_completion", "created": %d, "model": ' + model + b", "
                b'"choices": [{"text": ' + text + b', "index": 0, "logprobs": null, "finish_reason": "stop"}], '
                b'"usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d, '
                b'"prompt_tokens_details": {"cached_tokens": %d}, "completion_tokens_details": '
                b'{"reasoning_tokens": %d}}, "system_fingerprint": ' + fp + b"}"
            )
        elif fam == "responses":
            # Reasoning models put a reasoning item before the message.
            reasoning = b'{"id": "rs_%s", "type": "reasoning", "summary": []}, ' if src.reasoning else b""
            effort = b'"medium"' if src.reasoning else b"null"
            body = (
                b'{"id": "resp_%s", "object": "response", "created_at": %d, "status": "completed", '
                b'"background": false, "completed_at": %d, "error": null, "incomplete_details": null, '
                b'"instructions": null, "max_output_tokens": 4096, "model": '
                + model
                + b', "output": ['
                + reasoning
                + b'{"id": "msg_%s", "type": "message", "status": "completed", "content": [{"type": "output_text", '
                b'"annotations": [], "logprobs": [], "text": ' + text + b'}], "role": "assistant"}], '
                b'"parallel_tool_calls": true, "previous_response_id": null, "reasoning": {"effort": '
                + effort
                + b', "summary": null}, "service_tier": "default", "store": true, "temperature": 1.0, '
                b'"text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [], '
                b'"top_p": 1.0, "truncation": "disabled", "usage": {"input_tokens": %d, "input_tokens_details": '
                b'{"cached_tokens": %d}, "output_tokens": %d, "output_tokens_details": {"reasoning_tokens": %d}, '
                b'"total_tokens": %d}, "user": null, "metadata": {}}'
            )
        elif fam == "embeddings":
            body = b'{"object": "list", "data": [' + _EMBEDDING_ITEM.replace(b"%d", b"0") + b'%s], "model": ' + model
            body += b', "usage": {"prompt_tokens": %d, "total_tokens": %d}}'
        else:
            body = b'{"id": "modr-%s", "model": ' + model + b', "results": [%s]}'
        return _HEAD + body + _TAIL

    def _vector(self, seed: int) -> tuple[int, int]:
        """Byte range in the float block of a vector's components after the marker (dims - 1 floats)."""
        _, offs = _float_block()
        s = seed % (len(offs) - self._dims)
        return int(offs[s]), int(offs[s + self._dims - 1]) - 2

    def _more_vectors(self, seed: int, content: bool) -> bytes | int:
        """The `data` items after the first (k > 1), or their length when not ``content``."""
        block, _ = _float_block()
        parts: list[bytes] = []
        size = 0
        for i in range(1, self._k):
            lo, hi = self._vector(seed + 7919 * i)
            if content:
                parts.append(b", " + _EMBEDDING_ITEM % (i, block[lo:hi]))
            else:
                size += 2 + len(_EMBEDDING_ITEM % (i, b"")) + hi - lo
        return b"".join(parts) if content else size

    def _output_lines(self, blk: _Block, content: bool) -> tuple[list[bytes], int]:
        tmpl = self._ok_template
        fam = self.family
        reasoning = self.plan.src.reasoning
        block = _text_block() if fam != "embeddings" else _float_block()[0]
        inp, cached, outt, reas = blk.tok
        out = []
        left_out = 0
        rows = zip(blk.lid, blk.cid, blk.req, blk.role, blk.kind, strict=True)
        for j, (lid, cid, req, role, kind) in enumerate(rows):
            if role != OK:
                err = (ZERO_STATUS_ERRORS if role == ZERO_STATUS else OUTPUT_ERRORS)[kind % 2]
                out.append(_STATUS_LINE % (lid, cid, err.status, req, err.body))
                continue
            i, o = inp[j], outt[j]
            if fam == "embeddings":
                lo, hi = self._vector(kind)
                more = self._more_vectors(kind, content) if self._k > 1 else b""
                if content:
                    out.append(tmpl % (lid, cid, req, block[lo:hi], more, i, i))
                else:
                    out.append(tmpl % (lid, cid, req, b"", b"", i, i))
                    left_out += hi - lo + (more if isinstance(more, int) else 0)
                continue
            if fam == "moderations":
                out.append(tmpl % (lid, cid, req, blk.oid[j][:32], moderation_results()[kind % 4]))
                continue
            n = blk.body[j]
            if content:
                s = blk.start[j]
                text = block[s : s + n] if n < len(block) else _long_text(n)
            else:
                text = b""
                left_out += n
            if fam == "responses":
                t = blk.created[j]
                rs_id = (blk.oid2[j],) if reasoning else ()
                args = (lid, cid, req, blk.oid[j], t - 1 - kind % 30, t, *rs_id, blk.oid2[j][::-1], text)
                out.append(tmpl % (*args, i, cached[j], o, reas[j], i + o))
            else:
                out.append(tmpl % (lid, cid, req, blk.b62[j], blk.created[j], text, i, o, i + o, cached[j], reas[j]))
        return out, left_out

    def _error_lines(self, blk: _Block, content: bool) -> tuple[list[bytes], int]:
        failures = failed_request_errors(self.family)
        unrun = UNRUN_ERRORS.get(self.plan.src.status)
        unrun_body = json_spaced({"code": unrun[0], "message": unrun[1]}) if unrun else b"null"
        out = []
        for lid, cid, req, role, kind in zip(blk.lid, blk.cid, blk.req, blk.role, blk.kind, strict=True):
            if role == UNRUN:
                out.append(_UNRUN_LINE % (lid, cid, unrun_body))
            else:
                err = failures[kind % 100]
                out.append(_STATUS_LINE % (lid, cid, err.status, req, err.body))
        return out, 0

    # ------------------------------------------------------------------ truth
    def _truth_of(self, blk: _Block) -> Iterator[RequestTruth]:
        fam = self.family
        failures = failed_request_errors(fam)
        unrun = UNRUN_ERRORS.get(self.plan.src.status)
        for j in range(blk.n):
            role, kind = blk.role[j], blk.kind[j]
            cid, line_id = blk.cid[j].decode(), "batch_req_" + blk.lid[j].decode()
            request_id = "req_" + blk.req[j].decode()
            if role == OK:
                i, c, o, rs = (t[j] for t in blk.tok)
                tokens: tuple[int | None, ...] = (i, c, o, rs)
                if fam == "chat":
                    rid: str | None = "chatcmpl-" + blk.b62[j].decode()
                elif fam == "completions":
                    rid = "cmpl-" + blk.b62[j].decode()
                elif fam == "responses":
                    rid = "resp_" + blk.oid[j].decode()
                elif fam == "embeddings":
                    rid, tokens = None, (i, None, 0, None)
                else:
                    rid, tokens = "modr-" + blk.oid[j][:32].decode(), (None, None, None, None)
                yield RequestTruth(
                    self.kind,
                    cid,
                    role,
                    line_id,
                    status_code=200,
                    request_id=request_id,
                    response_id=rid,
                    model=self.model,
                    input_tokens=tokens[0],
                    cached_tokens=tokens[1],
                    output_tokens=tokens[2],
                    reasoning_tokens=tokens[3],
                )
            elif role == UNRUN and unrun is not None:
                yield RequestTruth(self.kind, cid, role, line_id, error_code=unrun[0], error_message=unrun[1])
            else:
                if role == FAILED:
                    err = failures[kind % 100]
                else:
                    err = (ZERO_STATUS_ERRORS if role == ZERO_STATUS else OUTPUT_ERRORS)[kind % 2]
                yield RequestTruth(
                    self.kind,
                    cid,
                    role,
                    line_id,
                    status_code=err.status,
                    request_id=request_id,
                    error_code=err.code,
                    error_message=err.message,
                )


@dataclass
class _Block:
    """Up to BLOCK_LINES consecutive lines of a file, as per-line lists (``r``: input index)."""

    n: int
    r: list[int]
    cid: list[bytes]
    lid: list[bytes]
    req: list[bytes]
    oid: list[bytes]
    oid2: list[bytes]
    b62: list[bytes]
    kind: list[int]
    body: list[int]
    start: list[int]
    created: list[int] = field(default_factory=list)
    role: list[int] = field(default_factory=list)
    tok: tuple[list[int], ...] = ()


def _text_at(seed: int, n: int) -> bytes:
    block = _text_block()
    if n >= len(block):
        return _long_text(n)
    s = seed % (len(block) - n + 1)
    return block[s : s + n]
