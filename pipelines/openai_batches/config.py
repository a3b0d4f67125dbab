"""Where a run gets its projects, keys and database path from.

Environment names are the official SDKs' (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID`,
`OPENAI_PROJECT_ID`); files are dlt's `.dlt/config.toml` and `.dlt/secrets.toml` under
`[sources.openai_batches]`. Several projects are named in `[sources.openai_batches.projects.NAME]`
tables, each with its own `api_key` (and optional `base_url`, `organization`, `project_id`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import settings

SECTION = "sources.openai_batches"


class ConfigError(Exception):
    """A configuration value that cannot work; the message names the setting, never a key's value."""


@dataclass(frozen=True)
class ProjectConfig:
    name: str | None  # None: take the name from the API's `openai-project` header
    api_key: str = field(repr=False)
    base_url: str = settings.DEFAULT_BASE_URL
    organization: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class RunConfig:
    projects: tuple[ProjectConfig, ...]
    timeout: float = settings.READ_TIMEOUT_S
    max_attempts: int = settings.RETRY_MAX_ATTEMPTS
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S
    requests: bool = settings.DEFAULT_REQUESTS  # also read the request ledger (ledger.py)
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB


def _lookup(key: str) -> Any:
    """A value from dlt's providers (environment, secrets.toml, config.toml), or None.

    The first provider that has the value wins, except that a table split over several (a project's
    base_url in config.toml and its api_key in secrets.toml, as the examples show) is merged, the
    earlier provider winning key by key. The providers are asked directly rather than through
    `dlt.config` / `dlt.secrets`: those stop at the first provider, and they record what they
    resolve in the trace dlt pickles into its working directory, in clear for anything not asked for
    as a secret, so a key put in config.toml would end up on disk."""
    import dlt

    found: list[Any] = []
    try:
        for provider in dlt.config.config_providers:
            if provider.is_empty:
                continue
            value, _ = provider.get_value(key, Any, None, *SECTION.split("."))  # type: ignore[arg-type]
            if value is not None:
                found.append(value)
    except Exception as e:  # a malformed toml file surfaces here
        raise ConfigError(f"cannot read .dlt configuration: {_one_line(e)}") from None
    if not found:
        return None
    if not isinstance(found[0], Mapping):
        return found[0]
    merged: dict[str, Any] = {}
    for value in reversed(found):
        if isinstance(value, Mapping):
            merged = _merged(merged, value)
    return merged


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in override.items():
        inner = merged.get(name)
        merged[name] = _merged(inner, value) if isinstance(inner, Mapping) and isinstance(value, Mapping) else value
    return merged


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines)[:300] or type(error).__name__


def _text(value: Any, setting: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{setting} must be a string, got {type(value).__name__}")
    return value


def _key(value: Any, setting: str) -> str | None:
    """An API key as it will be sent: surrounding whitespace (a pasted line, CRLF) stripped; anything
    else that cannot go into an HTTP header refused, in a message that never shows the key."""
    from .helpers import check_api_key

    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{setting} must be a string, got {type(value).__name__}")
    key, problem = check_api_key(value)
    if problem:
        raise ConfigError(f"{setting}: {problem}")
    return key


def _header(value: Any, setting: str) -> str | None:
    """An organization or project id as it will be sent: stripped like a key, and refused (exit 2,
    before any request) when it cannot go into an HTTP header."""
    text = _text(value, setting)
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not all(0x20 < ord(ch) < 0x7F for ch in text):
        raise ConfigError(f"{setting} contains characters that cannot be sent in an HTTP header")
    return text


def _url(value: str, setting: str) -> str:
    from .helpers import base_url_problem

    if problem := base_url_problem(value):
        raise ConfigError(f"{setting}: {problem}")
    return value


def _number(value: Any, setting: str, default: float, minimum: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, bool):  # float(True) is 1.0: a `true` typed by mistake is not a number
        raise ConfigError(f"{setting} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{setting} must be a finite number, got {value!r}")
    if number < minimum:
        raise ConfigError(f"{setting} must be at least {minimum:g}, got {number:g}")
    return number


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _flag(value: Any, setting: str, default: bool) -> bool:
    """A yes/no setting: a TOML boolean, or the text an environment variable carries (`true`, `0`, ...)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{setting} must be true or false, got {value!r}")


def configured_projects() -> tuple[ProjectConfig, ...]:
    """Named projects from `.dlt`, else the one project of OPENAI_API_KEY (or `api_key` in `.dlt`).

    Returns an empty tuple when no key is configured anywhere."""
    named = _lookup("projects")
    if named is not None and not isinstance(named, Mapping):
        raise ConfigError(f"{SECTION}.projects must be a table of [{SECTION}.projects.NAME] sections")
    default_base = os.environ.get("OPENAI_BASE_URL", "").strip() or _text(_lookup("base_url"), f"{SECTION}.base_url")
    base_setting = "OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else f"{SECTION}.base_url"
    if named:
        projects = []
        for name, entry in named.items():
            where = f"{SECTION}.projects.{name}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table with at least api_key")
            key = _key(entry.get("api_key"), f"{where}.api_key")
            if not key:
                raise ConfigError(f"{where}.api_key is missing (put it in .dlt/secrets.toml)")
            projects.append(
                ProjectConfig(
                    name=str(name),
                    api_key=key,
                    base_url=_url(
                        _text(entry.get("base_url"), f"{where}.base_url") or default_base or settings.DEFAULT_BASE_URL,
                        f"{where}.base_url" if entry.get("base_url") else base_setting,
                    ),
                    organization=_header(entry.get("organization"), f"{where}.organization"),
                    project_id=_header(entry.get("project_id"), f"{where}.project_id"),
                )
            )
        return tuple(projects)
    if os.environ.get("OPENAI_API_KEY"):
        key = _key(os.environ["OPENAI_API_KEY"], "OPENAI_API_KEY")
    else:
        key = _key(_lookup("api_key"), f"{SECTION}.api_key")
    if not key:
        return ()
    return (
        ProjectConfig(
            name=_text(_lookup("project_name"), f"{SECTION}.project_name"),
            api_key=key,
            base_url=_url(default_base or settings.DEFAULT_BASE_URL, base_setting),
            organization=_header(os.environ.get("OPENAI_ORG_ID"), "OPENAI_ORG_ID")
            or _header(_lookup("organization"), f"{SECTION}.organization"),
            project_id=_header(os.environ.get("OPENAI_PROJECT_ID"), "OPENAI_PROJECT_ID")
            or _header(_lookup("project_id"), f"{SECTION}.project_id"),
        ),
    )


def run_config(projects: tuple[ProjectConfig, ...] | None = None) -> RunConfig:
    return RunConfig(
        projects=configured_projects() if projects is None else projects,
        timeout=_number(_lookup("request_timeout"), f"{SECTION}.request_timeout", settings.READ_TIMEOUT_S, 0.01),
        max_attempts=int(_number(_lookup("max_attempts"), f"{SECTION}.max_attempts", settings.RETRY_MAX_ATTEMPTS, 1)),
        lookback_seconds=int(
            _number(_lookup("lookback_seconds"), f"{SECTION}.lookback_seconds", settings.DEFAULT_LOOKBACK_S, 0)
        ),
        requests=_flag(_lookup("requests"), f"{SECTION}.requests", settings.DEFAULT_REQUESTS),
        requests_max_mb_per_run=_number(
            _lookup("requests_max_mb_per_run"),
            f"{SECTION}.requests_max_mb_per_run",
            settings.DEFAULT_REQUESTS_MAX_MB,
            1,
        ),
    )


def database_path(cli_value: str | None) -> str:
    """--db wins, then OPENAI_BATCHES_DB, then `db_path` in `.dlt`, then ./openai-batches.duckdb.

    Values from the environment and `.dlt` lose surrounding whitespace (a CRLF environment file would
    otherwise create `openai-batches.duckdb\r`); what is typed after --db is taken as it is."""
    return (
        cli_value
        or os.environ.get("OPENAI_BATCHES_DB", "").strip()
        or (_text(_lookup("db_path"), f"{SECTION}.db_path") or "").strip()
        or settings.DEFAULT_DB_PATH
    )
