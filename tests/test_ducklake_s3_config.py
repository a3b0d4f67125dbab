"""How a DuckLake on S3 is configured, without an endpoint: dlt's `..__STORAGE__BUCKET_URL`, the keys by dlt's
names, the usual AWS ones or `.dlt/secrets.toml`, and a clear exit 2 for what cannot work; the secret key never
shown. The lake on a real S3 endpoint (moto's server) is test_ducklake_s3.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openai_batches.config import ConfigError, configured_store
from openai_batches.storage.store import DuckLake

from .support.cli import cli_env, run_cli
from .support.workload import KEY_A
from .test_ducklake import ok

LAKE = ["--destination", "ducklake"]
# dlt's names of the bucket's settings (DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__<NAME>)
DLT_S3 = "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__"


@pytest.fixture
def lake_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPENAI_BATCHES_DESTINATION", "ducklake")
    monkeypatch.setenv("DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG", "postgres://u:catalogpw@db.internal/lake")
    return monkeypatch


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_the_bucket_url_and_keys_are_taken_the_dlt_way_and_by_the_usual_aws_names(
    lake_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """dlt's `..__STORAGE__BUCKET_URL` names the storage (it was refused: `needs a storage`); the keys come
    from dlt's names, which win, else from AWS's; none of it is shown."""
    lake_settings.setenv("DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL", "s3://team-bucket/batches")
    lake_settings.setenv("AWS_ACCESS_KEY_ID", "AKIAAWSNAME")
    lake_settings.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    lake_settings.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    store = configured_store()
    assert isinstance(store, DuckLake) and store.storage == "s3://team-bucket/batches" and store.s3 is not None
    assert (store.s3.key_id, store.s3.secret, store.s3.endpoint) == (
        "AKIAAWSNAME",
        SECRET,
        "http://minio.internal:9000",
    )
    for shown in (repr(store), str(store), store.shown(), store.identity(), store.setup_sql()):
        assert SECRET not in shown and "catalogpw" not in shown
    assert "s3_endpoint = 'minio.internal:9000'" in store.setup_sql() and "s3_use_ssl = false" in store.setup_sql()

    lake_settings.setenv(f"{DLT_S3}AWS_ACCESS_KEY_ID", "AKIADLTNAME")
    lake_settings.setenv(f"{DLT_S3}ENDPOINT_URL", "https://s3.eu-central-1.example.com")
    store = configured_store()
    assert (store.s3.key_id, store.s3.secret, store.s3.endpoint) == (
        "AKIADLTNAME",
        SECRET,
        "https://s3.eu-central-1.example.com",
    )
    assert "s3_use_ssl = true" in store.setup_sql()

    # The same keys in .dlt/secrets.toml, as dlt's own ducklake destination reads them (in a process of its
    # own: dlt reads the project's files once per process).
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    (project / ".dlt" / "secrets.toml").write_text(
        '[destination.ducklake.credentials.storage]\nbucket_url = "s3://toml-bucket/lake"\n'
        "[destination.ducklake.credentials.storage.credentials]\n"
        f'aws_access_key_id = "AKIATOML"\naws_secret_access_key = "{SECRET}"\nregion_name = "eu-west-3"\n'
    )
    env = {k: v for k, v in cli_env(DLT_PROJECT_DIR=str(project)).items() if not k.startswith(("AWS_", "DEST"))}
    env["DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG"] = "postgres://u:catalogpw@db.internal/lake"
    setup = ok(run_cli("sql-setup", *LAKE, env=env, cwd=project))
    assert "DATA_PATH 's3://toml-bucket/lake'" in setup and "s3_region = 'eu-west-3'" in setup
    assert "s3_endpoint" not in setup and "s3_url_style = 'vhost'" in setup  # AWS itself
    assert SECRET not in setup and "AKIATOML" not in setup and "catalogpw" not in setup


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs S3 keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": "AKIA1"}, "has an S3 key id but no secret key"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "has an S3 secret key but no key id"),
        ({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": "minio:9000"}, "http(s)"),
        ({"DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE": "gs://bucket/lake"}, "an S3 URL (s3://BUCKET/PATH"),
        ({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": SECRET + "'"}, "secret key contains a quote"),
    ],
)
def test_a_lake_on_object_storage_that_cannot_work_is_a_clear_configuration_error(
    lake_settings: pytest.MonkeyPatch, settings: dict[str, str], message: str
) -> None:
    lake_settings.setenv("DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE", "s3://team-bucket/batches")
    for name, value in settings.items():
        lake_settings.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        configured_store()
    assert message in str(error.value) and SECRET not in str(error.value)


def test_a_load_with_a_misconfigured_bucket_exits_2_before_anything_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env().items() if not k.startswith("AWS_")} | {
        "OPENAI_API_KEY": KEY_A,
        "OPENAI_BASE_URL": "http://127.0.0.1:9",
        "DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG": f"sqlite:///{tmp_path / 'c.sqlite'}",
        "DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__BUCKET_URL": "s3://team-bucket/batches",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    result = run_cli("load", *LAKE, env=env)
    assert result.returncode == 2 and "has an S3 secret key but no key id" in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr and not (tmp_path / "c.sqlite").exists()
