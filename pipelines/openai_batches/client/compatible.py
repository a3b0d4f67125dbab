"""Key rules of the OpenAI-shaped providers (Azure OpenAI, Groq, any OpenAI-compatible endpoint); their client is
BatchesClient (batches.py) with the provider's key header, query and page size (sources/compatible/source.py)."""

from __future__ import annotations

from .anthropic import KEY_PREFIX as ANTHROPIC_KEY_PREFIX

# Groq's API keys start with this; OpenAI's with `sk-`, Anthropic's with `sk-ant-`. Azure's keys are 32 (or 84)
# characters of letters and digits without a documented prefix. Only these prefixes are judged: a gateway's
# key of another shape is left to its API's refusal.
GROQ_KEY_PREFIX = "gsk_"

_WHERE = {
    "openai": "OPENAI_API_KEY",
    "anthropic": 'ANTHROPIC_API_KEY (or a project with provider = "anthropic")',
    "groq": 'GROQ_API_KEY (or a project with provider = "groq")',
}
_NAMES = {"azure": "Azure OpenAI", "groq": "Groq", "openai-compatible": "this endpoint", "openai": "OpenAI"}


def key_kind_problem(key: str, *, setting: str, provider: str) -> str | None:
    """Why `key` is recognisably another provider's than `provider`'s, else None. Only the prefix is named,
    never the key. An OpenAI-compatible endpoint may take any key but Anthropic's and Groq's (which only
    their own APIs accept)."""
    if key.startswith(ANTHROPIC_KEY_PREFIX):
        kind, owner = f"an Anthropic key ({ANTHROPIC_KEY_PREFIX}...)", "anthropic"
    elif key.startswith(GROQ_KEY_PREFIX):
        if provider == "groq":
            return None
        kind, owner = f"a Groq key ({GROQ_KEY_PREFIX}...)", "groq"
    elif key.startswith("sk-") and provider in ("azure", "groq"):
        kind, owner = "an OpenAI key (sk-...)", "openai"
    else:
        return None
    return (
        f"{setting} is {kind}, which {_NAMES[provider]} refuses: put a {_NAMES[provider]} key there and that one "
        f"in {_WHERE[owner]}"
    )


__all__ = ["GROQ_KEY_PREFIX", "key_kind_problem"]
