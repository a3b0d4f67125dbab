"""How DuckDB reaches a DuckLake's Parquet files on S3 or an S3-compatible store (MinIO, Ceph, R2, ...).

One `S3Access` per lake, built by configuration (config.py) from dlt's names or the usual AWS ones, and
used in exactly two places so that a load and every reader see the bucket the same way:

- our own connections (`status`, `report`, the notebook, the views): `secret_sql` is run on the
  connection before the lake is attached, as a temporary DuckDB secret (in memory, never written);
- dlt's loader connections: `dlt_storage` is the `storage` of dlt's DuckLake credentials, with the keys as
  explicit credentials, so dlt creates the same kind of secret on each of its connections. Handing dlt the
  keys (rather than letting botocore find them) keeps dlt off DuckDB's `credential_chain` provider, which
  needs the `aws` extension and would fetch it at run time.

The secret key is never shown: not in `repr`, in a message, in `sql-setup` (the DuckDB CLI takes the keys
from the shell's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, as DuckDB's httpfs does), or in dlt's trace
(dlt records no value of credentials passed to it already resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .sql import quote_identifier, quote_literal

# The schemes DuckDB's httpfs reads as S3 (`s3a`/`s3n` are Hadoop's names for the same).
S3_SCHEMES = ("s3", "s3a", "s3n")
# AWS's own default, and what DuckDB assumes without one; any region works with an S3-compatible endpoint.
DEFAULT_REGION = "us-east-1"
# The temporary DuckDB secret of our own connections (dlt names its own after the dataset and bucket).
SECRET_NAME = "openai_batches_storage"


def is_object_store(storage: str) -> bool:
    """Whether a DuckLake's `storage` is a URL of an object store rather than a local folder."""
    return "://" in storage and not storage.lower().startswith("file://")


def is_s3(storage: str) -> bool:
    return urlsplit(storage).scheme.lower() in S3_SCHEMES


@dataclass(frozen=True)
class S3Access:
    """Keys and endpoint for an S3 bucket. `endpoint` is a URL (`http://minio:9000`) or None for AWS."""

    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION
    endpoint: str | None = None
    url_style: str | None = None  # `path` or `vhost`; None: `path` on a custom endpoint, `vhost` on AWS

    def problem(self) -> str | None:
        """Why these settings cannot work, naming the settings and never a value, else None."""
        if bool(self.key_id) != bool(self.secret):
            given, missing = ("key id", "secret key") if self.key_id else ("secret key", "key id")
            return (
                f"the DuckLake storage has an S3 {given} but no {missing}: set both (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or aws_access_key_id and aws_secret_access_key under "
                "[destination.ducklake.credentials.storage.credentials])"
            )
        for name, value in (
            ("key id", self.key_id),
            ("secret key", self.secret),
            ("session token", self.session_token),
        ):
            if value and ("'" in value or not value.isprintable()):
                # dlt puts the keys into its CREATE SECRET unescaped: a quote would break the statement, and
                # DuckDB's parser error would show the statement, secret key and all
                return f"the S3 {name} contains a quote or a control character: S3 keys have neither"
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
                return f"the S3 endpoint must be http(s)://HOST[:PORT], got {self.endpoint!r}"
        if self.url_style not in (None, "path", "vhost"):
            return f"the S3 URL style must be 'path' or 'vhost', got {self.url_style!r}"
        return None

    @property
    def _host(self) -> str | None:
        """The endpoint as DuckDB wants it: host[:port], the scheme going into USE_SSL."""
        return urlsplit(self.endpoint).netloc if self.endpoint else None

    @property
    def _use_ssl(self) -> bool:
        return not (self.endpoint or "").lower().startswith("http://")

    @property
    def _url_style(self) -> str:
        return self.url_style or ("path" if self.endpoint else "vhost")

    def secret_sql(self, scope: str) -> str:
        """`CREATE SECRET` (temporary: this connection's DuckDB instance only) for `scope`, the lake's
        storage URL."""
        options = {"TYPE": "S3", "REGION": quote_literal(self.region), "URL_STYLE": quote_literal(self._url_style)}
        if self.key_id and self.secret:
            options["KEY_ID"] = quote_literal(self.key_id)
            options["SECRET"] = quote_literal(self.secret)
            if self.session_token:
                options["SESSION_TOKEN"] = quote_literal(self.session_token)
        if self._host:
            options["ENDPOINT"] = quote_literal(self._host)
        options["USE_SSL"] = str(self._use_ssl).lower()
        options["SCOPE"] = quote_literal(scope)
        body = ", ".join(f"{k} {v}" for k, v in options.items())
        return f"CREATE OR REPLACE TEMPORARY SECRET {quote_identifier(SECRET_NAME)} ({body})"

    def settings_sql(self) -> str:
        """`secret_sql` without the keys, as DuckDB settings, for a DuckDB CLI session: a SET prints
        nothing (a CREATE SECRET prints a row, into the CSV a user pipes). DuckDB's httpfs fills the key
        settings from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN itself."""
        settings = {"s3_region": quote_literal(self.region), "s3_url_style": quote_literal(self._url_style)}
        if self._host:
            settings["s3_endpoint"] = quote_literal(self._host)
        settings["s3_use_ssl"] = str(self._use_ssl).lower()
        return " ".join(f"SET {name} = {value};" for name, value in settings.items())

    def dlt_storage(self, bucket_url: str) -> Any:
        """dlt's `storage` for its DuckLake credentials: the bucket with these keys, resolved (so dlt neither
        looks them up again nor records them in its trace)."""
        from dlt.common.configuration.specs import AwsCredentialsWithoutDefaults
        from dlt.common.storages.configuration import FilesystemConfiguration

        credentials = AwsCredentialsWithoutDefaults()
        credentials.aws_access_key_id = self.key_id  # type: ignore[assignment]
        credentials.aws_secret_access_key = self.secret  # type: ignore[assignment]
        credentials.aws_session_token = self.session_token
        credentials.region_name = self.region
        credentials.endpoint_url = self.endpoint
        credentials.s3_url_style = self._url_style
        credentials.resolve()
        # dlt's annotation lists the classes it resolves itself; any credentials instance is taken as given
        storage = FilesystemConfiguration(bucket_url=bucket_url, credentials=credentials)  # type: ignore[arg-type]
        storage.resolve()
        return storage


__all__ = ["DEFAULT_REGION", "S3Access", "is_object_store", "is_s3"]
