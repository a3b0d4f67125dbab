"""Configuration of Together, Mistral and OpenRouter projects (issue 19).

Per project in `.dlt/` (`[sources.openai_batches.projects.NAME]` with `provider = "together" | "mistral" |
"openrouter"`, `api_key`, and `base_url` = the API root with its version path, as the official SDK takes it; the
provider's own by default), or one project each from the official SDKs' environment names: `TOGETHER_API_KEY`,
`MISTRAL_API_KEY`, `OPENROUTER_API_KEY` (else `together_api_key`, ... in `.dlt`), named after the provider
(`together_project_name`, ... rename it), at `TOGETHER_BASE_URL` (the together SDK's name), `MISTRAL_BASE_URL`,
`OPENROUTER_BASE_URL` or `together_base_url`, ... when set. Named projects of a provider replace its single-key form.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from . import settings
from .config import SECTION, ConfigError, ProjectConfig, _lookup, _project_key, _text, _url


def other_project(provider: str, name: str, key: str, entry: Mapping[str, Any], where: str) -> ProjectConfig:
    """A named project of one of settings.OTHER_PROVIDERS. OpenAI's and Azure's settings mean nothing there: refused
    rather than ignored."""
    for setting in ("organization", "project_id", "api_version"):
        if entry.get(setting) not in (None, ""):
            raise ConfigError(f'{where}.{setting} is not a setting of a project with provider = "{provider}"')
    base = _text(entry.get("base_url"), f"{where}.base_url") or settings.OTHER_DEFAULT_BASE_URLS[provider]
    return ProjectConfig(name=name, api_key=key, base_url=_url(base, f"{where}.base_url"), provider=provider)


def other_singles(projects: Sequence[ProjectConfig]) -> list[ProjectConfig]:
    """The single-key projects (module docstring) of the providers that have no named project."""
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
        else:
            setting = f"{SECTION}.{provider}_base_url"
            base = _text(_lookup(f"{provider}_base_url"), setting) or settings.OTHER_DEFAULT_BASE_URLS[provider]
        name_setting = f"{SECTION}.{provider}_project_name"
        name = (_text(_lookup(f"{provider}_project_name"), name_setting) or "").strip() or provider
        found.append(ProjectConfig(name=name, api_key=key, base_url=_url(base, setting), provider=provider))
    return found


__all__ = ["other_project", "other_singles"]
