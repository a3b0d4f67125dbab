"""The files API of the simulator: `GET /v1/files/{id}` and `/v1/files/{id}/content` for every batch's
input, output and error files, plus the ground truth of every request for tests.

Nothing is stored: a file id leads back to its batch's row through a lazily built index of hashed ids,
and the content is rendered on the fly (jsonl.py) from the batch's request plan (batch_requests.py).
A file exists while the batch object names it and it has not expired (output and error files 30 days
after they are written, or the batch's `output_expires_after`; input files 30 days after the upload);
otherwise the API answers 404 like the real one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .batch_requests import INPUT_RETENTION_S, TERMINAL_WITH_FILES, BatchSource, RequestPlan
from .jsonl import FileRenderer, RequestTruth

if TYPE_CHECKING:
    from .org import SimulatedOrg

FILES_PREFIX = "/v1/files"
_FILE_ID = re.compile(r"^file-[0-9A-Za-z]{22}$")
TAG_OF_KIND = {"input": 1, "output": 2, "error": 3}
_KIND_OF_TAG = {v: k for k, v in TAG_OF_KIND.items()}
_FIELD = {"input": "input_file_id", "output": "output_file_id", "error": "error_file_id"}
_INPUT_NAMES = ("batch_input.jsonl", "batchinput.jsonl", "requests.jsonl", "batch_requests_{date}.jsonl")
_SIZE_CACHE_MAX = 200_000


@dataclass(frozen=True)
class FileInfo:
    """One file of a batch as the files API describes it (``gone``: past its expiry at ``now``)."""

    kind: str  # input, output or error
    file_id: str
    batch_id: str
    project: str
    bytes: int
    lines: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    gone: bool

    def api_object(self) -> dict[str, Any]:
        """The `file` object, keys in the real API's order."""
        return {
            "object": "file",
            "id": self.file_id,
            "purpose": self.purpose,
            "filename": self.filename,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class Streamed:
    """A response body produced in chunks: exactly ``length`` bytes in all."""

    length: int
    chunks: Iterator[bytes]
    filename: str


def not_found(file_id: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"No such File object: {file_id}",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }
    }


class _ProjectIndex:
    """File id -> (row idb, tag) of one project, for ids whose hash cannot be inverted.

    Keyed by the first 8 chars of the id (as a uint64, sorted for binary search); a hit is confirmed by
    recomputing the full id. Rows are only ever added to a project, so new ones are found by idb.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.idbs = np.empty(0, dtype=np.uint64)
        self.tags = np.empty(0, dtype=np.uint8)
        self.known = np.empty(0, dtype=np.uint64)  # sorted idbs already indexed

    def update(self, org: SimulatedOrg, project: str) -> None:
        if org.count(project) == len(self.known):
            return
        new = np.setdiff1d(org.idb_column(project), self.known)
        keys = np.empty(3 * len(new), dtype=np.uint64)
        tags = np.tile(np.array([1, 2, 3], dtype=np.uint8), len(new))
        at = 0
        for idb in new.tolist():
            for tag in (1, 2, 3):
                keys[at] = _key(org.file_id_for(idb, tag))
                at += 1
        all_keys = np.concatenate([self.keys, keys])
        order = np.argsort(all_keys, kind="stable")
        self.keys = all_keys[order]
        self.idbs = np.concatenate([self.idbs, np.repeat(new, 3)])[order]
        self.tags = np.concatenate([self.tags, tags])[order]
        self.known = np.union1d(self.known, new)

    def candidates(self, file_id: str) -> list[tuple[int, int]]:
        k = np.uint64(_key(file_id))
        lo = int(np.searchsorted(self.keys, k, "left"))
        hi = int(np.searchsorted(self.keys, k, "right"))
        return list(zip(self.idbs[lo:hi].tolist(), self.tags[lo:hi].tolist(), strict=True))


def _key(file_id: str) -> int:
    return int.from_bytes(file_id[5:13].encode(), "big")


class FileStore:
    """The files of one simulated org. Thread safe; holds only an id index and a cache of sizes."""

    def __init__(self, org: SimulatedOrg) -> None:
        self._org = org
        self._lock = threading.Lock()
        self._index: dict[str, _ProjectIndex] = {}
        self._sizes: dict[tuple[str, str], tuple[int, int]] = {}

    # ------------------------------------------------------------------ lookups
    def locate(self, file_id: str, project: str) -> tuple[BatchSource, str] | None:
        """The batch and kind of a file the batch object names now (expired or not), or None."""
        if not file_id:
            return None
        for bid in self._org.batches_with_input_file(file_id):
            src = self._org.batch_source(bid, project)
            if src is not None and src.batch["input_file_id"] == file_id:
                return src, "input"
        if not _FILE_ID.match(file_id):
            return None
        with self._lock:
            index = self._index.setdefault(project, _ProjectIndex())
            index.update(self._org, project)
            candidates = index.candidates(file_id)
        for idb, tag in candidates:
            if self._org.file_id_for(idb, tag) != file_id:
                continue
            src = self._org.batch_source_at(project, idb)
            kind = _KIND_OF_TAG[tag]
            if src is not None and src.batch[_FIELD[kind]] == file_id:
                return src, kind
        return None

    def describe(self, src: BatchSource, kind: str, plan: RequestPlan | None = None) -> FileInfo:
        file_id = str(src.batch[_FIELD[kind]])
        plan = plan or RequestPlan(src)
        size, lines = self._size(src, kind, plan)
        if kind == "input":
            created = plan.input_uploaded_at
            expires = created + INPUT_RETENTION_S
            date = f"{np.datetime64(created, 's').astype('datetime64[D]')}".replace("-", "")
            filename = _INPUT_NAMES[src.idb % len(_INPUT_NAMES)].format(date=date)
            purpose = "batch"
        else:
            created = plan.written_at
            expires = created + plan.retention_s
            filename = f"batch_{src.batch_id.removeprefix('batch_')}_{kind}.jsonl"
            purpose = "batch_output"
        gone = self._org.now_int() >= expires
        return FileInfo(
            kind, file_id, src.batch_id, src.project, size, lines, created, expires, filename, purpose, gone
        )  # fmt: skip

    def _size(self, src: BatchSource, kind: str, plan: RequestPlan) -> tuple[int, int]:
        key = (src.batch_id, kind)
        with self._lock:
            hit = self._sizes.get(key)
        if hit is not None:
            return hit
        renderer = FileRenderer(plan, kind)
        value = (renderer.size(), renderer.lines)
        with self._lock:
            if len(self._sizes) >= _SIZE_CACHE_MAX:
                self._sizes.pop(next(iter(self._sizes)))
            self._sizes[key] = value
        return value

    def batch_files(self, batch_id: str) -> list[FileInfo]:
        """The files a batch names now, expired ones included (``gone``)."""
        src = self._org.batch_source(batch_id)
        if src is None:
            raise KeyError(batch_id)
        plan = RequestPlan(src)
        return [self.describe(src, kind, plan) for kind in ("input", "output", "error") if src.batch[_FIELD[kind]]]

    # ------------------------------------------------------------------ HTTP
    def route(self, method: str, rest: list[str], project: str) -> tuple[int, dict[str, Any] | Streamed] | None:
        """Answer `/v1/files/...` (``rest``: the path segments after it); None: not a files URL we serve."""
        if method != "GET" or not rest or not rest[0] or len(rest) > 2 or (len(rest) == 2 and rest[1] != "content"):
            return None
        file_id = rest[0]
        found = self.locate(file_id, project)
        if found is None:
            return 404, not_found(file_id)
        src, kind = found
        plan = RequestPlan(src)
        info = self.describe(src, kind, plan)
        if info.gone:
            return 404, not_found(file_id)
        if len(rest) == 1:
            return 200, info.api_object()
        return 200, Streamed(info.bytes, FileRenderer(plan, kind).chunks(), info.filename)

    def result_rows(self, batch_id: str, project: str) -> list[dict[str, Any]] | None:
        """A finished batch's results as rows (OpenRouter's `GET /batches/{id}/results`: others.py): the lines of
        its output file, then of its error file, each parsed (an OpenAI-shaped line is a result row). None when
        the batch is unknown to `project` or still open, or its files are gone (expired)."""
        src = self._org.batch_source(batch_id, project)
        if src is None or src.status not in TERMINAL_WITH_FILES:
            return None
        plan = RequestPlan(src)
        rows: list[dict[str, Any]] = []
        for kind in ("output", "error"):
            if not src.batch[_FIELD[kind]]:
                continue
            if self.describe(src, kind, plan).gone:
                return None
            text = b"".join(FileRenderer(plan, kind).chunks())
            rows.extend(orjson.loads(line) for line in text.splitlines() if line.strip())
        return rows

    # ------------------------------------------------------------------ ground truth
    def request_truth(self, batch_id: str) -> Iterator[RequestTruth]:
        """Every request of a finished batch: its output-file lines, then its error-file lines, then the
        requests in neither file (``file == "missing"``), each with the outcome a ledger should record.

        Empty for a batch that failed validation (no request ran). Raises KeyError for an unknown batch
        and ValueError for one still open (its files do not exist yet).
        """
        src = self._org.batch_source(batch_id)
        if src is None:
            raise KeyError(batch_id)
        if src.status == "failed":
            return iter(())
        if src.status not in TERMINAL_WITH_FILES:
            raise ValueError(f"batch {batch_id} is {src.status}: its files do not exist yet")
        return self._truth(RequestPlan(src))

    def _truth(self, plan: RequestPlan) -> Iterator[RequestTruth]:
        if plan.src.batch["output_file_id"]:
            yield from FileRenderer(plan, "output").truth()
        if plan.src.batch["error_file_id"]:
            yield from FileRenderer(plan, "error").truth()
        roles = plan.roles
        for r in plan.missing.tolist():
            # Requests the counts call completed (MISSING), or that never ran and have no error file (UNRUN).
            yield RequestTruth("missing", plan.custom_id(r), int(roles[r]))


__all__ = ["FILES_PREFIX", "FileInfo", "FileStore", "RequestTruth", "Streamed"]
