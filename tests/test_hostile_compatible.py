"""Hostile tests of the OpenAI-shaped providers (azure, groq, openai-compatible) against servers of our own: what
they send that OpenAI never would, and what the loader must still make of it (rows in DuckDB, requests made,
one-line errors, no key anywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from openai_batches.config import ProjectConfig, RunConfig
from openai_batches.load.runner import run_load

from .support.fake_api import Reply, ScriptedApi, envelope, json_reply, newest_first

KEY = "gw-key-0123456789abcdef0123"
BATCHES = newest_first(7)


def _page(after: str | None, size: int = 3) -> tuple[list[dict[str, Any]], bool]:
    ids = [b["id"] for b in BATCHES]
    start = ids.index(after) + 1 if after else 0
    return BATCHES[start : start + size], start + size < len(BATCHES)


def _ids(db: Path, table: str = "openai_compatible_batches") -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0] for r in con.execute(f"SELECT id FROM openai_batches.{table}").fetchall()}


def _load(db: Path, api: ScriptedApi, provider: str = "openai-compatible", **kw: Any) -> Any:
    project = ProjectConfig(name="gw", api_key=KEY, base_url=api.base_url, provider=provider, **kw)
    return run_load(str(db), RunConfig(projects=(project,), max_attempts=2))


@pytest.mark.parametrize("spelling", [("true", "false"), ("True", "False"), (1, 0)], ids=["lower", "capital", "int"])
def test_has_more_sent_as_text_or_a_number_means_what_it_says(tmp_path: Path, spelling: tuple[Any, Any]) -> None:
    """`"has_more": "false"` was taken as true (`bool("false")`): the page after the last was asked for, and its
    empty answer, `has_more` "false" again, was "has_more is true but the page has no data", retried until the
    run failed. Every batch, one request a page."""
    yes, no = spelling

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        data, more = _page(query.get("after"))
        body = envelope(data, more)
        body["has_more"] = yes if more else no
        return json_reply(body)

    db = tmp_path / "x.duckdb"
    with ScriptedApi(route) as api:
        result = _load(db, api)
        assert result.ok, [o.error for o in result.outcomes]
        assert len(api.requests) == 3, api.requests
    assert _ids(db) == {b["id"] for b in BATCHES}


def test_a_has_more_that_is_neither_true_nor_false_is_refused_at_once(tmp_path: Path) -> None:
    """`"has_more": "maybe"` (or an object): an answer of another shape, refused in one line without retries."""
    with ScriptedApi(lambda path, query, n: json_reply({**envelope(BATCHES[:3], True), "has_more": "maybe"})) as api:
        result = _load(tmp_path / "x.duckdb", api)
        assert len(api.requests) == 1
    assert not result.ok
    (error,) = [o.error for o in result.outcomes]
    assert error is not None and "has_more" in error and "not retried" in error, error


@pytest.mark.parametrize("provider", ["openai-compatible", "azure"])
def test_a_key_echoed_in_batch_fields_is_stored_nowhere(tmp_path: Path, provider: str) -> None:
    """A gateway that writes the key it was sent into the batches it lists (metadata, errors, model, endpoint,
    file ids): every batch loaded, the key in no column of any table, nor in the database file."""
    echoed = [
        {
            **b,
            "metadata": {"note": f"auth {KEY}"},
            "model": f"model-{KEY}",
            "endpoint": f"/v1/chat/completions?key={KEY}",
            "output_file_id": f"file-{KEY}",
            "errors": {"object": "list", "data": [{"code": "x", "message": f"bad key {KEY}", "line": 1}]},
        }
        for b in BATCHES
    ]

    def route(path: str, query: dict[str, str], number: int) -> Reply:
        ids = [b["id"] for b in echoed]
        after = query.get("after")
        start = ids.index(after) + 1 if after else 0
        return json_reply(envelope(echoed[start : start + 3], start + 3 < len(echoed)))

    db = tmp_path / "x.duckdb"
    with ScriptedApi(route) as api:
        result = _load(db, api, provider)
        assert result.ok, [o.error for o in result.outcomes]
    table = {"azure": "azure_batches"}.get(provider, "openai_compatible_batches")
    assert _ids(db, table) == {b["id"] for b in BATCHES}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
        for schema, name in tables:
            text = con.execute(f'SELECT CAST(t AS VARCHAR) FROM "{schema}"."{name}" AS t').fetchall()
            assert not any(KEY in row[0] for row in text), (schema, name)
    assert KEY.encode() not in db.read_bytes()
