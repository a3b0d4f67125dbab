"""How fast the simulator serves a batch file: ``python -m openai_batches.simulator.files_throughput``.

Starts ``openai-batches simulate --admin`` in its own process (so the client's CPU is not the
server's), creates one finished batch per endpoint through ``/_sim/create`` (``output_bytes`` for a
large file, ``total_requests`` for natural-size lines), and downloads each output file with a lean
``http.client`` reader into one reused buffer. Prints MB/s per file: the server's rate, near enough,
since the reader does no work.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
import urllib.parse
from typing import Any

KEY = "sk-sim-default"  # the simulator's default key: not a secret


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """A plain connection to the server at `url` (no client library in the measured path), and its path."""
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600), parts.path


def _json(url: str, method: str, path: str) -> dict[str, Any]:
    conn, root = _connection(url)
    try:
        conn.request(method, root + path, headers={"Authorization": f"Bearer {KEY}"})
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def _admin(root: str, action: str, **query: Any) -> dict[str, Any]:
    return _json(root, "POST", f"/_sim/{action}?{urllib.parse.urlencode(query)}")


def _get_json(base: str, path: str) -> dict[str, Any]:
    return _json(base, "GET", path)


def download(base: str, file_id: str) -> tuple[int, float]:
    """(bytes, seconds) of one `GET /files/{id}/content`, read into a reused 1 MB buffer."""
    conn, root = _connection(base)
    view = memoryview(bytearray(1 << 20))
    try:
        t0 = time.perf_counter()
        conn.request("GET", f"{root}/files/{file_id}/content", headers={"Authorization": f"Bearer {KEY}"})
        resp = conn.getresponse()
        total = 0
        while n := resp.readinto(view):
            total += n
        return total, time.perf_counter() - t0
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mb", type=int, default=300, help="size of the large files, MB (default %(default)s)")
    args = parser.parse_args(argv)
    cmd = [sys.executable, "-m", "openai_batches.simulator", "--port", "0", "--batches", "0"]
    proc = subprocess.Popen([*cmd, "--admin"], stdout=subprocess.PIPE, text=True)
    try:
        base = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("OPENAI_BASE_URL="):
                base = line.split("=", 1)[1].strip()
                break
        root = base.removesuffix("/v1")
        quick = {"outcome": "completed", "validating_seconds": 1, "processing_seconds": 60, "finalizing_seconds": 1}
        cases = [
            ("chat, natural lines", {"endpoint": "/v1/chat/completions", "total_requests": 50_000}),
            ("responses, natural lines", {"endpoint": "/v1/responses", "total_requests": 50_000}),
            ("embeddings, natural lines", {"endpoint": "/v1/embeddings", "total_requests": 5_000}),
            (f"chat, {args.mb} MB", {"endpoint": "/v1/chat/completions", "output_bytes": args.mb * 10**6}),
            (f"responses, {args.mb} MB", {"endpoint": "/v1/responses", "output_bytes": args.mb * 10**6}),
            (f"embeddings, {args.mb} MB", {"endpoint": "/v1/embeddings", "output_bytes": args.mb * 10**6}),
        ]
        ids = [_admin(root, "create", **quick, **overrides)["ids"][0] for _, overrides in cases]
        _admin(root, "advance", seconds=3600)
        for (name, _), bid in zip(cases, ids, strict=True):
            file_id = _get_json(base, f"/batches/{bid}")["output_file_id"]
            _get_json(base, f"/files/{file_id}")  # sizes the file (cached), as a ledger's metadata call would
            size, seconds = download(base, file_id)
            print(f"{name:28s} {size / 1e6:8.1f} MB in {seconds:6.2f} s = {size / seconds / 1e6:6.0f} MB/s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
