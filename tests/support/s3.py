"""An S3-compatible endpoint for tests: moto's server (`moto_server`, from the `moto[server]` test dependency)
as a local process on a free port, with signature checks on, and one bucket.

    with moto_s3(tmp_path) as s3:      # outside a fixture too (spikes, benchmarks)
        s3.env()                       # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION
        s3.objects()                   # {key: bytes} of everything in the bucket

Why it is built this way:
- Port 0: the server binds a free port and prints it (`Running on http://127.0.0.1:PORT`), read from its log;
  no two test runs ever fight over a port, and nothing listens beyond the loopback address.
- Signatures are checked (`INITIAL_NO_AUTH_ACTION_COUNT`): the first requests (an IAM user with a policy
  for S3 and an access key) are free, every later one must be signed with that key. So a test proves the
  keys reached DuckDB, and a wrong secret key fails as it would on AWS (403 SignatureDoesNotMatch).
- The server is stopped (SIGTERM, then SIGKILL) when the block ends, failures included, and gets SIGTERM
  if the process that started it dies outright; its log stays in the folder given, for a failing test to show.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .postgres import _PR_SET_PDEATHSIG, _PRCTL

BUCKET = "openai-batches-lake"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0
# The requests made before signatures are checked: create_user, put_user_policy, create_access_key.
UNSIGNED_SETUP_REQUESTS = 3
_LISTENING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class MotoS3:
    endpoint: str  # http://127.0.0.1:PORT
    key_id: str
    secret: str = field(repr=False)
    bucket: str = BUCKET
    log: Path | None = None

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}/"

    def env(self, **overrides: str) -> dict[str, str]:
        """The usual AWS names, as a team would export them."""
        names = {
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
        }
        return {**names, **overrides}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` in the bucket, with its content."""
        client = self.client()
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
        return {k: client.get_object(Bucket=self.bucket, Key=k)["Body"].read() for k in keys}


@contextlib.contextmanager
def moto_s3(folder: Path) -> Iterator[MotoS3]:
    """moto's server on a free loopback port, an access key for S3, and the bucket; stopped at the end."""
    import boto3

    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "moto.log"
    server_bin = Path(sys.executable).parent / "moto_server"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(UNSIGNED_SETUP_REQUESTS)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(server_bin), "--host", "127.0.0.1", "--port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
    try:
        endpoint = _wait_until_listening(server, log_path)
        # Any key signs the unsigned setup requests; the key made here signs everything after them.
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        iam.create_user(UserName="lake-loader")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="lake-loader", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="lake-loader")["AccessKey"]
        s3 = MotoS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], log=log_path)
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when the process that started it dies without stopping it (a test
    run killed outright), as the throwaway PostgreSQL does (tests/support/postgres.py)."""
    assert _PRCTL is not None
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _wait_until_listening(server: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if found := _LISTENING.search(log_path.read_text(errors="replace")):
            return found.group(1)
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}: {log_path.read_text(errors='replace')}")
        time.sleep(0.02)
    raise RuntimeError(f"moto_server did not listen within {START_TIMEOUT_S:.0f} s: {log_path.read_text()}")
