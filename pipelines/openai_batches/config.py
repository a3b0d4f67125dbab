"""Where a run gets its projects, keys and database path from.

Environment names are the official SDKs' (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID`,
`OPENAI_PROJECT_ID`); files are dlt's `.dlt/config.toml` and `.dlt/secrets.toml` under
`[sources.openai_batches]`. Several projects are named in `[sources.openai_batches.projects.NAME]`
tables, each with its own `api_key` (and optional `base_url`, `organization`, `project_id`).

Anthropic (issue 18): `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` (the official SDK's names; the root without
`/v1`) are one more project, named `anthropic` (`anthropic_project_name` renames it); several workspaces are
named projects with `provider = "anthropic"`. Per provider, named projects replace the single-key form: a
table of named OpenAI projects leaves ANTHROPIC_API_KEY in effect, and named Anthropic projects leave
OPENAI_API_KEY in effect. Each key is checked for its provider: the wrong kind is refused in one line that
names the setting, never the key.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import settings

if TYPE_CHECKING:
    from .storage.object_store import S3Access
    from .storage.store import Store

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
    provider: str = settings.DEFAULT_PROVIDER  # whose batch API the key reads: one of settings.PROVIDERS
    api_version: str | None = None  # Azure's classic API (`?api-version=...`); None: the v1 API


@dataclass(frozen=True)
class AdminConfig:
    """The Admin API side (optional): the organisation's projects, usage and costs, read with an admin key."""

    admin_key: str = field(repr=False)
    base_url: str = settings.DEFAULT_BASE_URL
    organization: str | None = None


@dataclass(frozen=True)
class RunConfig:
    projects: tuple[ProjectConfig, ...]
    timeout: float = settings.READ_TIMEOUT_S
    max_attempts: int = settings.RETRY_MAX_ATTEMPTS
    lookback_seconds: int = settings.DEFAULT_LOOKBACK_S
    admin: AdminConfig | None = None  # None: no admin key, batches only
    # Also read the request ledger (sources/ledger/reader.py). None: each provider's default, OpenAI off
    # (settings.DEFAULT_REQUESTS) and Anthropic on (its results are the only source of model, tokens and cost);
    # `requests = false` set explicitly turns it off for both.
    requests: bool | None = None
    requests_max_mb_per_run: float = settings.DEFAULT_REQUESTS_MAX_MB
    anthropic_admin: AnthropicAdminConfig | None = None  # None: no Anthropic Admin API key

    def every_key(self) -> tuple[str, ...]:
        """Every key of the configuration (each project's, the admin keys): what no server text may bring
        into the database or any output, whichever of the run's servers sends it back."""
        keys = [p.api_key for p in self.projects]
        if self.admin is not None:
            keys.append(self.admin.admin_key)
        if self.anthropic_admin is not None:
            keys.append(self.anthropic_admin.admin_key)
        return tuple(k.strip() for k in keys if k)


# Set while the configuration is read before dlt is imported (load/head_start.py): `_lookup` then reads the
# environment by the names dlt's environment provider reads, and refuses what only dlt could read.
_ENVIRONMENT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("environment_only", default=False)


class NotFromEnvironment(Exception):
    """A setting the environment alone cannot give as dlt would (a table): `environment_only` gives up."""


@contextlib.contextmanager
def environment_only() -> Iterator[None]:
    """Read the configuration from the environment alone, without importing dlt, as dlt would read it when
    no `.dlt` file exists (the caller makes sure of that): for a head start that is checked against the
    real configuration before anything it fetched is used. Raises NotFromEnvironment where it cannot."""
    token = _ENVIRONMENT_ONLY.set(True)
    try:
        yield
    finally:
        _ENVIRONMENT_ONLY.reset(token)


def _lookup(key: str, section: str = SECTION) -> Any:
    """A value from dlt's providers (environment, secrets.toml, config.toml), or None.

    The first provider that has the value wins, except that a table split over several (a project's
    base_url in config.toml and its api_key in secrets.toml, as the examples show) is merged, the
    earlier provider winning key by key. The providers are asked directly rather than through
    `dlt.config` / `dlt.secrets`: those stop at the first provider, and they record what they
    resolve in the trace dlt pickles into its working directory, in clear for anything not asked for
    as a secret, so a key put in config.toml would end up on disk."""
    if _ENVIRONMENT_ONLY.get():
        # dlt's EnvironProvider: SECTION__...__KEY in capitals, the raw string (a table cannot be one)
        value = os.environ.get("__".join([*section.split("."), key]).upper())
        if value is not None and key == "projects":
            raise NotFromEnvironment(key)
        return value
    import dlt

    found: list[Any] = []
    try:
        for provider in dlt.config.config_providers:
            if provider.is_empty:
                continue
            value, _ = provider.get_value(key, Any, None, *section.split("."))  # type: ignore[arg-type]
            if value is not None:
                found.append(value)
    except Exception as e:  # a malformed toml file surfaces here
        from .client.errors import error_line

        raise ConfigError(f"cannot read .dlt configuration: {error_line(e)}") from None
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


def _text(value: Any, setting: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{setting} must be a string, got {type(value).__name__}")
    return value


def _key(value: Any, setting: str) -> str | None:
    """An API key as it will be sent: surrounding whitespace (a pasted line, CRLF) stripped; anything
    else that cannot go into an HTTP header refused, in a message that never shows the key."""
    from .client.urls import check_api_key

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


def _project_key(value: Any, setting: str, provider: str = settings.DEFAULT_PROVIDER) -> str | None:
    """`_key`, refusing a key of the wrong kind for `provider`: an admin key cannot list batches (it belongs in
    OPENAI_ADMIN_KEY), and a key of the other provider is refused by the API anyway."""
    from .client import admin, anthropic

    key = _key(value, setting)
    if not key:
        return key
    if provider == "anthropic":
        problem = anthropic.key_kind_problem(key, setting=setting)
    elif provider in settings.OPENAI_LIKE_PROVIDERS:
        from .client.compatible import key_kind_problem

        problem = key_kind_problem(key, setting=setting, provider=provider)
    elif provider in settings.OTHER_PROVIDERS:
        from .client import others

        problem = others.key_kind_problem(key, setting=setting, provider=provider)
    else:
        from .client.compatible import key_kind_problem

        problem = admin.key_kind_problem(key, setting=setting, want_admin=False) or key_kind_problem(
            key, setting=setting, provider=provider
        )
    if problem:
        raise ConfigError(problem)
    return key


def _provider(value: Any, setting: str) -> str:
    """A project's `provider`: one of settings.PROVIDERS (default openai), else one line listing them."""
    if value is None or value == "":
        return settings.DEFAULT_PROVIDER
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in settings.PROVIDERS:
        raise ConfigError(f"{setting} must be one of {', '.join(settings.PROVIDERS)}, got {value!r}")
    return text


def _url(value: str, setting: str) -> str:
    from .client.urls import base_url_problem

    if problem := base_url_problem(value):
        raise ConfigError(f"{setting}: {problem}")
    return value


def _number(value: Any, setting: str, default: float, minimum: float, maximum: float = math.inf) -> float:
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
    if number > maximum:
        raise ConfigError(f"{setting} must be at most {maximum:g}, got {number:g}")
    return number


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _flag(value: Any, setting: str, default: bool | None) -> bool | None:
    """A yes/no setting: a TOML boolean, or the text an environment variable carries (`true`, `0`, ...)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{setting} must be true or false, got {value!r}")


def configured_projects() -> tuple[ProjectConfig, ...]:
    """Named projects from `.dlt`, else, per provider, its one project: OPENAI_API_KEY (or `api_key` in
    `.dlt`) and ANTHROPIC_API_KEY (or `anthropic_api_key`). The OpenAI projects come first.

    Returns an empty tuple when no key is configured anywhere."""
    named = _lookup("projects")
    if named is not None and not isinstance(named, Mapping):
        raise ConfigError(f"{SECTION}.projects must be a table of [{SECTION}.projects.NAME] sections")
    default_base = os.environ.get("OPENAI_BASE_URL", "").strip() or _text(_lookup("base_url"), f"{SECTION}.base_url")
    base_setting = "OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else f"{SECTION}.base_url"
    projects: list[ProjectConfig] = []
    if named:
        for name, entry in named.items():
            where = f"{SECTION}.projects.{name}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table with at least api_key")
            provider = _provider(entry.get("provider"), f"{where}.provider")
            key = _project_key(entry.get("api_key"), f"{where}.api_key", provider)
            if not key:
                raise ConfigError(f"{where}.api_key is missing (put it in .dlt/secrets.toml)")
            if provider == "anthropic":
                projects.append(_anthropic_project(str(name), key, entry, where))
                continue
            if provider in settings.OPENAI_LIKE_PROVIDERS:
                projects.append(compatible_project(provider, str(name), key, entry, where))
                continue
            if provider in settings.OTHER_PROVIDERS:
                projects.append(other_project(provider, str(name), key, entry, where))
                continue
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
    if not any(p.provider == "openai" for p in projects) and (single := _openai_project(default_base, base_setting)):
        projects.insert(0, single)
    if not any(p.provider == "anthropic" for p in projects) and (workspace := _anthropic_single()):
        projects.append(workspace)
    projects.extend(compatible_singles(projects))
    projects.extend(other_singles(projects))
    _check_unique(projects)
    return tuple(projects)


def _openai_project(default_base: str | None, base_setting: str) -> ProjectConfig | None:
    """The one project of OPENAI_API_KEY (or `api_key` in `.dlt`), None without such a key."""
    if os.environ.get("OPENAI_API_KEY"):
        key = _project_key(os.environ["OPENAI_API_KEY"], "OPENAI_API_KEY")
    else:
        key = _project_key(_lookup("api_key"), f"{SECTION}.api_key")
    if not key:
        return None
    return ProjectConfig(
        name=_text(_lookup("project_name"), f"{SECTION}.project_name"),
        api_key=key,
        base_url=_url(default_base or settings.DEFAULT_BASE_URL, base_setting),
        organization=_header(os.environ.get("OPENAI_ORG_ID"), "OPENAI_ORG_ID")
        or _header(_lookup("organization"), f"{SECTION}.organization"),
        project_id=_header(os.environ.get("OPENAI_PROJECT_ID"), "OPENAI_PROJECT_ID")
        or _header(_lookup("project_id"), f"{SECTION}.project_id"),
    )


def _anthropic_base() -> tuple[str | None, str]:
    """ANTHROPIC_BASE_URL (else `anthropic_base_url` in `.dlt`) and the setting it came from."""
    if os.environ.get("ANTHROPIC_BASE_URL", "").strip():
        return os.environ["ANTHROPIC_BASE_URL"].strip(), "ANTHROPIC_BASE_URL"
    setting = f"{SECTION}.anthropic_base_url"
    return _text(_lookup("anthropic_base_url"), setting), setting


def _anthropic_url(value: str, setting: str) -> str:
    """`_url` for Anthropic's root, which is given without `/v1` (the official SDK's meaning): one that ends
    in `/v1` would send every request to `/v1/v1/...`; refused with the fix rather than failing as a 404."""
    url = _url(value, setting)
    if url.rstrip("/").endswith("/v1"):
        raise ConfigError(
            f"{setting} ends in /v1: Anthropic's base URL is the API root without /v1, as the official SDK takes "
            f"it (e.g. {settings.ANTHROPIC_DEFAULT_BASE_URL})"
        )
    return url


def _anthropic_single() -> ProjectConfig | None:
    """The one workspace of ANTHROPIC_API_KEY (or `anthropic_api_key` in `.dlt`), None without such a key."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        key = _project_key(os.environ["ANTHROPIC_API_KEY"], "ANTHROPIC_API_KEY", "anthropic")
    else:
        key = _project_key(_lookup("anthropic_api_key"), f"{SECTION}.anthropic_api_key", "anthropic")
    if not key:
        return None
    name_setting = f"{SECTION}.anthropic_project_name"
    name = (_text(_lookup("anthropic_project_name"), name_setting) or "").strip() or settings.ANTHROPIC_PROJECT_NAME
    base, base_setting = _anthropic_base()
    return ProjectConfig(
        name=name,
        api_key=key,
        base_url=_anthropic_url(base or settings.ANTHROPIC_DEFAULT_BASE_URL, base_setting),
        provider="anthropic",
    )


def _anthropic_project(name: str, key: str, entry: Mapping[str, Any], where: str) -> ProjectConfig:
    """A named project with `provider = "anthropic"`: its key, and its `base_url` (else ANTHROPIC_BASE_URL,
    else Anthropic's root). OpenAI's `organization` and `project_id` mean nothing to Anthropic: refused
    rather than ignored, so no one believes they took effect."""
    for setting in ("organization", "project_id"):
        if entry.get(setting) not in (None, ""):
            raise ConfigError(
                f'{where}.{setting} is an OpenAI setting; an Anthropic project (provider = "anthropic") has none'
            )
    own = _text(entry.get("base_url"), f"{where}.base_url")
    base, base_setting = (own, f"{where}.base_url") if own else _anthropic_base()
    return ProjectConfig(
        name=name,
        api_key=key,
        base_url=_anthropic_url(base or settings.ANTHROPIC_DEFAULT_BASE_URL, base_setting),
        provider="anthropic",
    )


def _check_unique(projects: list[ProjectConfig]) -> None:
    """Two projects under one name would file their rows together (the `project` column): refused. So is one
    Anthropic key under two names: its workspace would be loaded twice, each batch under both names (no
    response names the workspace; OpenAI's keys are told apart by the API's `openai-project` header)."""
    keys: dict[str, str] = {}
    for p in projects:
        if p.provider == "anthropic" and p.name is not None:
            first = keys.setdefault(p.api_key, p.name)
            if first != p.name:
                raise ConfigError(
                    f"projects {first!r} and {p.name!r} have the same Anthropic API key: its workspace would be "
                    "loaded twice; configure each workspace once"
                )
    seen: dict[str, str] = {}
    for p in projects:
        if p.name is None:
            continue
        if p.name in seen:
            raise ConfigError(
                f"two configured projects are named {p.name!r} ({seen[p.name]} and {p.provider}): rename one "
                f"(for the workspace of ANTHROPIC_API_KEY: {SECTION}.anthropic_project_name)"
            )
        seen[p.name] = p.provider


def admin_config() -> AdminConfig | None:
    """The admin key (OPENAI_ADMIN_KEY, else `admin_key` in `.dlt/secrets.toml`) with the API root and
    organization the projects default to; None when no admin key is configured. The same rules as for
    the API key (whitespace stripped, unsendable characters refused without showing the key), and a
    key that is documented not to be an admin key (`sk-proj-...`) is refused before any request."""
    from .client.admin import key_kind_problem

    setting = "OPENAI_ADMIN_KEY" if os.environ.get("OPENAI_ADMIN_KEY") else f"{SECTION}.admin_key"
    key = _key(os.environ.get("OPENAI_ADMIN_KEY") or _lookup("admin_key"), setting)
    if not key:
        return None
    if problem := key_kind_problem(key, setting=setting, want_admin=True):
        raise ConfigError(problem)
    base_setting = "OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else f"{SECTION}.base_url"
    base = os.environ.get("OPENAI_BASE_URL", "").strip() or _text(_lookup("base_url"), f"{SECTION}.base_url")
    return AdminConfig(
        admin_key=key,
        base_url=_url(base or settings.DEFAULT_BASE_URL, base_setting),
        organization=os.environ.get("OPENAI_ORG_ID") or _text(_lookup("organization"), f"{SECTION}.organization"),
    )


def run_config(projects: tuple[ProjectConfig, ...] | None = None) -> RunConfig:
    return RunConfig(
        admin=admin_config(),
        projects=configured_projects() if projects is None else projects,
        timeout=_number(
            _lookup("request_timeout"),
            f"{SECTION}.request_timeout",
            settings.READ_TIMEOUT_S,
            0.01,
            settings.REQUEST_TIMEOUT_MAX_S,
        ),
        max_attempts=int(_number(_lookup("max_attempts"), f"{SECTION}.max_attempts", settings.RETRY_MAX_ATTEMPTS, 1)),
        lookback_seconds=int(
            _number(_lookup("lookback_seconds"), f"{SECTION}.lookback_seconds", settings.DEFAULT_LOOKBACK_S, 0)
        ),
        requests=_flag(_lookup("requests"), f"{SECTION}.requests", None),
        requests_max_mb_per_run=_number(
            _lookup("requests_max_mb_per_run"),
            f"{SECTION}.requests_max_mb_per_run",
            settings.DEFAULT_REQUESTS_MAX_MB,
            1,
        ),
        anthropic_admin=anthropic_admin_config(),
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


# Where the destination is chosen: `[openai_batches] destination = "..."` in .dlt/config.toml.
DESTINATION_SECTION = "openai_batches"
DUCKLAKE_SECTION = "destination.ducklake.credentials"
MOTHERDUCK_SECTION = "destination.motherduck.credentials"


def destination_name(cli_value: str | None) -> str:
    """--destination wins, then OPENAI_BATCHES_DESTINATION, then `destination` under `[openai_batches]`."""
    name = (
        cli_value
        or os.environ.get("OPENAI_BATCHES_DESTINATION", "").strip()
        or (_text(_lookup("destination", DESTINATION_SECTION), "openai_batches.destination") or "").strip()
        or settings.DEFAULT_DESTINATION
    )
    if name not in settings.DESTINATIONS:
        raise ConfigError(f"unknown destination {name!r}: one of {', '.join(settings.DESTINATIONS)}")
    return name


def _storage(value: Any) -> str | None:
    """`storage` as dlt names it: a string, or a table with `bucket_url` (dlt itself ignores a plain
    string under `...__STORAGE`, silently writing the files to ./ducklake.files: both are taken here)."""
    if isinstance(value, Mapping):
        value = value.get("bucket_url")
    return _text(value, f"{DUCKLAKE_SECTION}.storage")


STORAGE_SECTION = f"{DUCKLAKE_SECTION}.storage"
STORAGE_CREDENTIALS_SECTION = f"{STORAGE_SECTION}.credentials"
# dlt's name of each S3 setting (under [destination.ducklake.credentials.storage.credentials], or
# DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__<NAME>), then the AWS SDKs' environment names.
S3_SETTINGS = {
    "key_id": ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    "secret": ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    "session_token": ("aws_session_token", "AWS_SESSION_TOKEN"),
    "region": ("region_name", "AWS_REGION", "AWS_DEFAULT_REGION"),
    "endpoint": ("endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "url_style": ("s3_url_style",),
}


def _s3_access() -> S3Access:
    """The keys and endpoint of a DuckLake's `s3://` storage, each from dlt's name if set, else from the
    AWS SDKs' environment variable (storage/object_store.py). Read from the providers directly (`_lookup`),
    so the secret key is never in dlt's trace."""
    from .storage.object_store import S3Access

    values: dict[str, str] = {}
    for field_name, (dlt_name, *aws_names) in S3_SETTINGS.items():
        value = _text(_lookup(dlt_name, STORAGE_CREDENTIALS_SECTION), f"{STORAGE_CREDENTIALS_SECTION}.{dlt_name}")
        value = value or next((os.environ[n] for n in aws_names if os.environ.get(n, "").strip()), None)
        if value and value.strip():
            values[field_name] = value.strip()
    return S3Access(**values)


def configured_store(cli_db: str | None = None, cli_destination: str | None = None) -> Store:
    """Where `load`, `status`, `report` and the notebook find the data. A DuckDB file (`--db`, see
    `database_path`) by default; a DuckLake or MotherDuck configured the dlt way:

        DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG=postgres://user:pw@host/db   (or sqlite:///F, duckdb:///F)
        DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE=/shared/lake   (or __STORAGE__BUCKET_URL, s3://...)
          with an s3:// storage: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION
          (or dlt's DESTINATION__DUCKLAKE__CREDENTIALS__STORAGE__CREDENTIALS__AWS_ACCESS_KEY_ID, ...)
        DESTINATION__MOTHERDUCK__CREDENTIALS__DATABASE=my_db       (token: ...__PASSWORD or motherduck_token)
    """
    from .storage.store import DuckDBFile, DuckLake, MotherDuck

    name = destination_name(cli_destination)
    if name == "duckdb":
        return DuckDBFile(database_path(cli_db))
    if cli_db:
        raise ConfigError(
            f"--db names a DuckDB file; the {name} destination is configured under [destination.{name}.credentials] "
            "(see the README)"
        )
    if name == "motherduck":
        database = _text(_lookup("database", MOTHERDUCK_SECTION), f"{MOTHERDUCK_SECTION}.database")
        if not database:
            raise ConfigError(f"the motherduck destination needs {MOTHERDUCK_SECTION}.database")
        return MotherDuck(database.removeprefix("md:"))
    catalog = _text(_lookup("catalog", DUCKLAKE_SECTION), f"{DUCKLAKE_SECTION}.catalog")
    if not catalog:
        raise ConfigError(
            "the ducklake destination needs a catalog: DESTINATION__DUCKLAKE__CREDENTIALS__CATALOG, or catalog under "
            f"[{DUCKLAKE_SECTION}] (postgres://..., sqlite:///FILE or duckdb:///FILE)"
        )
    catalog = catalog.strip()
    storage = _storage(_lookup("storage", DUCKLAKE_SECTION)) or _text(
        _lookup("bucket_url", STORAGE_SECTION), f"{STORAGE_SECTION}.bucket_url"
    )
    if not storage:
        if catalog.split(":", 1)[0] in ("sqlite", "duckdb") and ":///" in catalog:
            storage = catalog.split(":///", 1)[1] + ".files"  # next to the catalog file
        else:
            raise ConfigError(
                "the ducklake destination needs a storage for its Parquet files: DESTINATION__DUCKLAKE__CREDENTIALS__"
                f"STORAGE, or storage under [{DUCKLAKE_SECTION}] (a folder every loader and reader can reach, or "
                "an object-store URL)"
            )
    lake = _text(_lookup("ducklake_name", DUCKLAKE_SECTION), f"{DUCKLAKE_SECTION}.ducklake_name")
    store = DuckLake(
        catalog=catalog, storage=storage.strip(), name=(lake or settings.LAKE_NAME).strip(), s3=_s3_access()
    )
    if problem := store.problem():
        raise ConfigError(problem)
    return store


# ---------------------------------------------------------------------- Anthropic's Admin API (issue 18)
@dataclass(frozen=True)
class AnthropicAdminConfig:
    """Anthropic's books (optional): the workspaces, usage and cost reports, read with an Admin API key."""

    admin_key: str = field(repr=False)
    base_url: str = "https://api.anthropic.com"  # the API root without /v1, as ANTHROPIC_BASE_URL


def anthropic_admin_config() -> AnthropicAdminConfig | None:
    """ANTHROPIC_ADMIN_KEY (else `anthropic_admin_key` in `.dlt/secrets.toml`) with the API root of
    ANTHROPIC_BASE_URL (else `anthropic_base_url`); None when no such key is configured. The key rules of
    every key (whitespace stripped, unsendable characters refused without showing it), and a key of the
    wrong kind (a workspace API key, an OpenAI key) refused in one line naming the setting."""
    from .client.anthropic import DEFAULT_BASE_URL
    from .client.anthropic_admin import admin_key_problem

    setting = "ANTHROPIC_ADMIN_KEY" if os.environ.get("ANTHROPIC_ADMIN_KEY") else f"{SECTION}.anthropic_admin_key"
    key = _key(os.environ.get("ANTHROPIC_ADMIN_KEY") or _lookup("anthropic_admin_key"), setting)
    if not key:
        return None
    if problem := admin_key_problem(key, setting=setting):
        raise ConfigError(problem)
    from_env = os.environ.get("ANTHROPIC_BASE_URL", "").strip()
    base_setting = "ANTHROPIC_BASE_URL" if from_env else f"{SECTION}.anthropic_base_url"
    base = from_env or _text(_lookup("anthropic_base_url"), base_setting)
    return AnthropicAdminConfig(admin_key=key, base_url=_url(base or DEFAULT_BASE_URL, base_setting))


# --- OpenAI-shaped providers (Azure OpenAI, Groq, OpenAI-compatible endpoints) ---------------------------
# Configuration of the OpenAI-shaped providers (issue 19): Azure OpenAI, Groq, any OpenAI-compatible endpoint.
#
# Per project in `.dlt/` (`[sources.openai_batches.projects.NAME]` with `provider = "azure" | "groq" |
# "openai-compatible"`, `api_key`, `base_url` = the API root with its version path, as the official SDK takes it;
# Azure's classic API: `api_version` too), or one project each from the official SDKs' environment names:
#
# - `GROQ_API_KEY` (else `groq_api_key`): project `groq` (`groq_project_name` renames it); `GROQ_BASE_URL` is the
#   groq SDK's root (`https://api.groq.com`, the loader adds `/openai/v1`); default https://api.groq.com/openai/v1.
# - `AZURE_OPENAI_API_KEY` with `AZURE_OPENAI_ENDPOINT` (the resource root, `https://{resource}.openai.azure.com`):
#   project `azure` (`azure_project_name`); the v1 API (`{endpoint}/openai/v1`), or with `OPENAI_API_VERSION` set
#   the classic one with that version (`{endpoint}/openai/batches?api-version=...`), as the `AzureOpenAI` client.
#
# Named projects of a provider replace its single-key form, as for OpenAI and Anthropic.

# The Azure paths an endpoint may have been given with (a base_url pasted as the endpoint): taken off.
_AZURE_SUFFIXES = ("/openai/v1", "/openai")


def compatible_project(provider: str, name: str, key: str, entry: Mapping[str, Any], where: str) -> ProjectConfig:
    """A named project with `provider = "azure" | "groq" | "openai-compatible"`. OpenAI's `organization` and
    `project_id` mean nothing there: refused rather than ignored. `base_url` is required but for Groq."""
    for setting in ("organization", "project_id"):
        if entry.get(setting) not in (None, ""):
            raise ConfigError(
                f'{where}.{setting} is an OpenAI setting; a project with provider = "{provider}" has none'
            )
    base = _text(entry.get("base_url"), f"{where}.base_url")
    if base is None and provider == "groq":
        base = settings.GROQ_DEFAULT_BASE_URL
    if base is None:
        example = (
            "https://{resource}.openai.azure.com/openai/v1"
            if provider == "azure"
            else "the API root up to its version, e.g. https://gateway.example.com/v1"
        )
        raise ConfigError(f'{where}.base_url is missing: a project with provider = "{provider}" needs it ({example})')
    api_version = _header(entry.get("api_version"), f"{where}.api_version")
    if api_version and provider != "azure":
        raise ConfigError(f'{where}.api_version is an Azure setting (the classic API); provider is "{provider}"')
    if api_version and base.rstrip("/").endswith("/v1"):
        raise ConfigError(
            f"{where}.api_version is set, so the classic Azure API is read, whose base_url ends in /openai "
            f"(https://{{resource}}.openai.azure.com/openai); unset api_version to read the v1 API"
        )
    if provider == "azure" and not api_version and base.rstrip("/").endswith("/openai"):
        # The classic API's root without its version: every request would go to /openai/batches without
        # `api-version`, which Azure answers 404.
        raise ConfigError(
            f"{where}.base_url ends in /openai, the classic Azure API's root, but api_version is not set: set "
            f"api_version (e.g. 2024-10-21) for the classic API, or end base_url in /openai/v1 for the v1 API"
        )
    return ProjectConfig(
        name=name,
        api_key=key,
        base_url=_url(base, f"{where}.base_url"),
        provider=provider,
        api_version=api_version,
    )


def compatible_singles(projects: Sequence[ProjectConfig]) -> list[ProjectConfig]:
    """The single-key projects of Groq and Azure (the section comment above) whose provider has no named project."""
    found: list[ProjectConfig] = []
    if not any(p.provider == "groq" for p in projects) and (groq := _groq_single()):
        found.append(groq)
    if not any(p.provider == "azure" for p in projects) and (azure := _azure_single()):
        found.append(azure)
    return found


def _single_key(env: str, setting: str, provider: str) -> tuple[str | None, str]:
    if os.environ.get(env):
        return _project_key(os.environ[env], env, provider), env
    return _project_key(_lookup(setting), f"{SECTION}.{setting}", provider), f"{SECTION}.{setting}"


def _name(setting: str, default: str) -> str:
    return (_text(_lookup(setting), f"{SECTION}.{setting}") or "").strip() or default


def _groq_single() -> ProjectConfig | None:
    key, _ = _single_key("GROQ_API_KEY", "groq_api_key", "groq")
    if not key:
        return None
    if root := os.environ.get("GROQ_BASE_URL", "").strip():
        # The groq SDK's root (https://api.groq.com); a value with the version path already (as the openai SDK
        # takes Groq's base URL) is taken as it is, not sent to /openai/v1/openai/v1 (404 on every request).
        base, setting = root.rstrip("/").removesuffix("/openai/v1") + "/openai/v1", "GROQ_BASE_URL"
    else:
        setting = f"{SECTION}.groq_base_url"
        base = _text(_lookup("groq_base_url"), setting) or settings.GROQ_DEFAULT_BASE_URL
    return ProjectConfig(
        name=_name("groq_project_name", settings.GROQ_PROJECT_NAME),
        api_key=key,
        base_url=_url(base, setting),
        provider="groq",
    )


def _azure_single() -> ProjectConfig | None:
    key, key_setting = _single_key("AZURE_OPENAI_API_KEY", "azure_api_key", "azure")
    if not key:
        return None
    endpoint = (
        os.environ.get("AZURE_OPENAI_ENDPOINT", "").strip()
        or (_text(_lookup("azure_endpoint"), f"{SECTION}.azure_endpoint") or "").strip()
    )
    setting = (
        "AZURE_OPENAI_ENDPOINT" if os.environ.get("AZURE_OPENAI_ENDPOINT", "").strip() else f"{SECTION}.azure_endpoint"
    )
    if not endpoint:
        raise ConfigError(
            f"{key_setting} is set but AZURE_OPENAI_ENDPOINT is not: set it to the resource's root "
            "(https://{resource}.openai.azure.com)"
        )
    root = endpoint.rstrip("/")
    for suffix in _AZURE_SUFFIXES:
        root = root.removesuffix(suffix)
    version = _header(os.environ.get("OPENAI_API_VERSION"), "OPENAI_API_VERSION")
    return ProjectConfig(
        name=_name("azure_project_name", settings.AZURE_PROJECT_NAME),
        api_key=key,
        base_url=_url(root + ("/openai" if version else "/openai/v1"), setting),
        provider="azure",
        api_version=version,
    )


# --- Together, Mistral and OpenRouter --------------------------------------------------------------------
# Configuration of Together, Mistral and OpenRouter projects (issue 19).
#
# Per project in `.dlt/` (`[sources.openai_batches.projects.NAME]` with `provider = "together" | "mistral" |
# "openrouter"`, `api_key`, and `base_url` = the API root with its version path, as the official SDK takes it; the
# provider's own by default), or one project each from the official SDKs' environment names: `TOGETHER_API_KEY`,
# `MISTRAL_API_KEY`, `OPENROUTER_API_KEY` (else `together_api_key`, ... in `.dlt`), named after the provider
# (`together_project_name`, ... rename it), at `TOGETHER_BASE_URL` (the together SDK's name), `MISTRAL_BASE_URL`,
# `OPENROUTER_BASE_URL` or `together_base_url`, ... when set. Named projects of a provider replace its single-key form.


def other_project(provider: str, name: str, key: str, entry: Mapping[str, Any], where: str) -> ProjectConfig:
    """A named project of one of settings.OTHER_PROVIDERS. OpenAI's and Azure's settings mean nothing there: refused
    rather than ignored."""
    for setting in ("organization", "project_id", "api_version"):
        if entry.get(setting) not in (None, ""):
            raise ConfigError(f'{where}.{setting} is not a setting of a project with provider = "{provider}"')
    base = _text(entry.get("base_url"), f"{where}.base_url") or settings.OTHER_DEFAULT_BASE_URLS[provider]
    return ProjectConfig(name=name, api_key=key, base_url=_url(base, f"{where}.base_url"), provider=provider)


def other_singles(projects: Sequence[ProjectConfig]) -> list[ProjectConfig]:
    """The single-key projects (the section comment above) of the providers that have no named project."""
    found: list[ProjectConfig] = []
    for provider in settings.OTHER_PROVIDERS:
        if any(p.provider == provider for p in projects):
            continue
        env = provider.upper()
        if os.environ.get(f"{env}_API_KEY"):
            key = _project_key(os.environ[f"{env}_API_KEY"], f"{env}_API_KEY", provider)
        else:
            key = _project_key(_lookup(f"{provider}_api_key"), f"{SECTION}.{provider}_api_key", provider)
        if not key:
            continue
        if root := os.environ.get(f"{env}_BASE_URL", "").strip():
            base, setting = root, f"{env}_BASE_URL"
            if provider == "together" and not root.rstrip("/").endswith("/v1"):
                # The together SDK (3.x) takes TOGETHER_BASE_URL as the root and adds /v1 itself
                # (https://api.together.ai); a value with /v1 (the 1.x SDK's) is taken as it is.
                base = root.rstrip("/") + "/v1"
        else:
            setting = f"{SECTION}.{provider}_base_url"
            base = _text(_lookup(f"{provider}_base_url"), setting) or settings.OTHER_DEFAULT_BASE_URLS[provider]
        name_setting = f"{SECTION}.{provider}_project_name"
        name = (_text(_lookup(f"{provider}_project_name"), name_setting) or "").strip() or provider
        found.append(ProjectConfig(name=name, api_key=key, base_url=_url(base, setting), provider=provider))
    return found
