"""Configuration of the OpenAI-shaped providers (issue 19): Azure OpenAI, Groq, any OpenAI-compatible endpoint.

Per project in `.dlt/` (`[sources.openai_batches.projects.NAME]` with `provider = "azure" | "groq" |
"openai-compatible"`, `api_key`, `base_url` = the API root with its version path, as the official SDK takes it;
Azure's classic API: `api_version` too), or one project each from the official SDKs' environment names:

- `GROQ_API_KEY` (else `groq_api_key`): project `groq` (`groq_project_name` renames it); `GROQ_BASE_URL` is the
  groq SDK's root (`https://api.groq.com`, the loader adds `/openai/v1`); default https://api.groq.com/openai/v1.
- `AZURE_OPENAI_API_KEY` with `AZURE_OPENAI_ENDPOINT` (the resource root, `https://{resource}.openai.azure.com`):
  project `azure` (`azure_project_name`); the v1 API (`{endpoint}/openai/v1`), or with `OPENAI_API_VERSION` set
  the classic one with that version (`{endpoint}/openai/batches?api-version=...`), as the `AzureOpenAI` client.

Named projects of a provider replace its single-key form, as for OpenAI and Anthropic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from . import settings
from .config import SECTION, ConfigError, ProjectConfig, _header, _lookup, _project_key, _text, _url

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
    return ProjectConfig(
        name=name,
        api_key=key,
        base_url=_url(base, f"{where}.base_url"),
        provider=provider,
        api_version=api_version,
    )


def compatible_singles(projects: Sequence[ProjectConfig]) -> list[ProjectConfig]:
    """The single-key projects of Groq and Azure (module docstring) whose provider has no named project."""
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
        base, setting = root.rstrip("/") + "/openai/v1", "GROQ_BASE_URL"
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


__all__ = ["compatible_project", "compatible_singles"]
