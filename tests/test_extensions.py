"""DuckDB's extensions come from the installed packages, never from the network."""

from __future__ import annotations

import socket
from pathlib import Path

import dlt
import duckdb
import pyarrow as pa
import pytest

from openai_batches.storage import extensions
from openai_batches.storage.extensions import DUCKLAKE, POSTGRES, SQLITE, ExtensionUnavailable


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No extension installed in the home folder, and every HTTP(S) request sent to a closed local port."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with socket.socket() as s:  # a port that was free a moment ago and has nothing listening on it now
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return home


def loaded(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}


def test_packaged_extensions_load_and_work_offline(offline: Path, tmp_path: Path) -> None:
    con = extensions.prepare(duckdb.connect(), DUCKLAKE, POSTGRES, SQLITE)

    assert {DUCKLAKE, POSTGRES, SQLITE} <= loaded(con)
    assert con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone() == (False,)
    # DuckLake works on each local catalog kind (the PostgreSQL one is in test_postgres_fixture.py)
    for catalog in (f"duckdb:{tmp_path / 'c.duckdb'}", f"sqlite:{tmp_path / 'c.sqlite'}"):
        con.execute(f"ATTACH 'ducklake:{catalog}' AS lake (DATA_PATH '{tmp_path / 'files'}')")
        con.execute("CREATE TABLE lake.t AS SELECT 42 AS answer, '{\"a\": 1}'::JSON AS j")
        assert con.execute("SELECT answer, j->>'a' FROM lake.t").fetchall() == [(42, "1")]
        con.execute("DROP TABLE lake.t")
        con.execute("DETACH lake")
    # loaded from the package where pip put it: nothing was downloaded or copied into the home folder
    assert not (offline / ".duckdb").exists()


def test_without_prepare_the_same_attach_fails_instead_of_downloading(offline: Path, tmp_path: Path) -> None:
    """The control for the test above: what made DuckLake available was `prepare`, not a copy DuckDB
    found or fetched somewhere. With downloads off, DuckDB says at once what it lacks."""
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    with pytest.raises(duckdb.Error, match="ducklake"):
        con.execute(f"ATTACH 'ducklake:{tmp_path / 'c.duckdb'}' AS lake (DATA_PATH '{tmp_path / 'files'}')")
    assert DUCKLAKE not in loaded(con)


def test_dlt_loads_into_ducklake_offline_with_the_credentials_config(offline: Path, tmp_path: Path) -> None:
    from dlt.destinations.impl.ducklake.configuration import DuckLakeCredentials

    credentials = DuckLakeCredentials(
        "lake", catalog=f"sqlite:///{tmp_path / 'catalog.sqlite'}", storage=str(tmp_path / "lake_files")
    )
    for key, value in extensions.dlt_credentials_config(DUCKLAKE, SQLITE).items():
        setattr(credentials, key, value)
    pipeline = dlt.pipeline("ext_offline", destination=dlt.destinations.ducklake(credentials), dataset_name="ds")
    rows = pa.table({"id": ["a", "b"], "n": [1, 2]})

    pipeline.run(dlt.resource(rows, name="items", primary_key="id", write_disposition="merge"))

    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT id, n FROM items ORDER BY id") == [("a", 1), ("b", 2)]
    assert not (offline / ".duckdb").exists()


def test_a_missing_extension_package_is_named_with_the_version_to_install() -> None:
    # spatial is a real extension whose package this project does not install (httpfs it now does)
    with pytest.raises(ExtensionUnavailable) as caught:
        extensions.prepare(duckdb.connect(), "spatial")

    message = str(caught.value)
    assert f"pip install 'duckdb-extension-spatial=={duckdb.__version__}'" in message
    assert "never downloaded" in message


def fake_package(root: Path, name: str, version: str, content: bytes) -> None:
    """An extension package as the index ships it: <module>/extensions/v<version>/<name>.duckdb_extension."""
    folder = root / f"duckdb_extension_{name}"
    (folder / "extensions" / f"v{version}").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "extensions" / f"v{version}" / f"{name}.duckdb_extension").write_bytes(content)


def test_a_package_built_for_another_duckdb_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_package(tmp_path, DUCKLAKE, "1.4.9", b"not for this DuckDB")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ExtensionUnavailable) as caught:
        extensions.prepare(duckdb.connect(), DUCKLAKE)

    message = str(caught.value)
    assert f"built for DuckDB 1.4.9, but DuckDB is {duckdb.__version__}" in message
    assert f"pip install 'duckdb-extension-ducklake=={duckdb.__version__}'" in message


def test_a_damaged_extension_file_is_reported_with_the_package_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_package(tmp_path, DUCKLAKE, duckdb.__version__, b"\x7fELF truncated")
    monkeypatch.syspath_prepend(str(tmp_path))
    con = duckdb.connect()

    with pytest.raises(ExtensionUnavailable, match=r"from duckdb-extension-ducklake did not load .*reinstall it"):
        extensions.prepare(con, DUCKLAKE)
    assert DUCKLAKE not in loaded(con)
