"""Price periods for the models of every provider's batches: genai-prices' bundled data, with the user's
price file on top.

They are stored as `openai_batches.model_prices`, one row per provider, model, price kind and period in
which the price was constant, so SQL joins a batch to the price in force at its `created_at`. Periods start
and end at instants (UTC), so two periods of one day never collapse into one.

Two kinds of rows (`processing`): NULL, the standard (synchronous) price, of which a batch pays
`batch_factor`; and `batch`, a batch price genai-prices lists itself (its `processing: batch` price
variant, Anthropic's from 2026-10-14), which a batch pays in full (`batch_factor` 1.0). An Anthropic batch
takes the batch price where there is one and the standard price x `ANTHROPIC_BATCH_FACTOR` elsewhere;
`source` names which (`GENAI_PRICES_BATCH` or `GENAI_PRICES_STANDARD`). OpenAI rows are standard prices only.

The OpenAI-shaped providers (README, "Costs of Azure, Groq and openai-compatible batches"): Groq's rows are
genai-prices' `groq` prices, both kinds, as Anthropic's (standard x `PROVIDER_BATCH_FACTORS['groq']` where no batch
price is listed). An Azure batch's model is a deployment name: its rows are the OpenAI price of the model the
deployment runs (`[azure.deployments]` in the price file, else the deployment's own name), under the deployment's
name. An openai-compatible endpoint can be anything (a gateway in front of OpenAI that lists OpenAI's own batches,
a self-hosted server, another vendor): priced only by price file entries that name it (`provider`), never by a
model name that happens to be OpenAI's.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import math
import os
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from . import settings

GENAI_PRICES = "genai-prices"
OVERRIDE = "override"
OPENAI, ANTHROPIC = "openai", "anthropic"
GROQ, AZURE, COMPATIBLE = "groq", "azure", "openai-compatible"
MISTRAL, OPENROUTER, TOGETHER = "mistral", "openrouter", "together"
# The providers whose price rows an entry of the price file without `provider` covers (what it covered before
# there were others); any other provider's models are covered by entries that name it.
_UNNAMED_ENTRY_PROVIDERS = (OPENAI, ANTHROPIC)
# genai-prices' provider id of each provider priced from it (Azure: OpenAI's, through its deployments).
# Together: none (its batch discount is "up to 50%", per model and unlisted: priced only from the price file).
_GENAI_PROVIDER = {
    OPENAI: settings.PRICE_PROVIDER,
    ANTHROPIC: ANTHROPIC,
    GROQ: GROQ,
    MISTRAL: MISTRAL,
    OPENROUTER: OPENROUTER,
}
# OpenRouter lists the batch price of a model as a model of its own, `<model>:batch` (genai-prices' openrouter
# data: `openai/gpt-4o-mini:batch` at half `openai/gpt-4o-mini`), not as a price variant.
OPENROUTER_BATCH_SUFFIX = ":batch"
# The `source` of Anthropic's genai-prices rows: which of its prices a batch pays (see the module's docstring).
GENAI_PRICES_BATCH = "genai-prices batch price"
GENAI_PRICES_STANDARD = f"genai-prices standard price x {settings.ANTHROPIC_BATCH_FACTOR:g}"
# genai-prices' price context of a batch request (`calc_price(..., price_context=...)`).
BATCH_CONTEXT = {"processing": "batch"}


class PricesError(Exception):
    """The price file cannot be used; the message names the file and the entry at fault."""


@dataclass(frozen=True)
class PriceRow:
    """One row of `model_prices`. Prices are USD per million tokens: standard ones (`processing` None), of
    which batches pay `batch_factor`, or a batch price (`processing` "batch", `batch_factor` 1.0)."""

    model: str  # exactly as the provider names it (`batches.model`, `batch_requests.model`)
    valid_from: datetime | None  # instant (UTC) the price starts; None: as far back as the source knows
    valid_to: datetime | None  # exclusive; None: still in force
    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float | None  # None: the source lists none, cached input pays the input price
    output_usd_per_mtok: float | None  # None: the source lists none (embeddings)
    batch_factor: float
    source: str
    source_version: str
    matched_model: str  # genai-prices' model id, or the override file's `model` pattern
    note: str | None = None
    # The source lists long-context tiers (a higher rate above a prompt size) and only the base rate is
    # applied: batch usage is a total, without the size of each request's prompt, so the cost is a floor.
    tiered: bool = False
    provider: str = OPENAI
    # Anthropic's prompt-cache writes (5-minute and 1-hour); None: the source lists none (OpenAI bills none)
    cache_write_usd_per_mtok: float | None = None
    cache_write_1h_usd_per_mtok: float | None = None
    processing: str | None = None  # None: the standard price; "batch": a batch price variant


@dataclass(frozen=True)
class OverrideEntry:
    pattern: str  # an exact model id, or a glob (`*`, `?`, `[...]`)
    valid_from: datetime | None
    input: float
    cached_input: float | None
    output: float | None
    batch_factor: float | None  # None: the provider's documented discount
    note: str | None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    provider: str | None = None  # None: OpenAI's and Anthropic's models (`_UNNAMED_ENTRY_PROVIDERS`)


@dataclass(frozen=True)
class Overrides:
    entries: tuple[OverrideEntry, ...]
    source: str
    version: str
    # `[azure.deployments]`: (deployment, OpenAI model) pairs, in the file's order
    azure_deployments: tuple[tuple[str, str], ...] = ()


NO_OVERRIDES = Overrides((), OVERRIDE, "")

_COLUMNS_DDL = """
    provider VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    valid_from TIMESTAMPTZ,
    valid_to TIMESTAMPTZ,
    input_usd_per_mtok DOUBLE NOT NULL,
    cached_input_usd_per_mtok DOUBLE,
    output_usd_per_mtok DOUBLE,
    batch_factor DOUBLE NOT NULL,
    source VARCHAR NOT NULL,
    source_version VARCHAR NOT NULL,
    matched_model VARCHAR NOT NULL,
    note VARCHAR,
    tiered BOOLEAN NOT NULL,
    cache_write_usd_per_mtok DOUBLE,
    cache_write_1h_usd_per_mtok DOUBLE,
    processing VARCHAR
"""


# --------------------------------------------------------------------------------------------- genai-prices
def _genai_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


def _number(value: Any) -> tuple[float | None, bool]:
    """A genai-prices price as a float, and whether it was tiered (only its base rate is used)."""
    if value is None:
        return None, False
    if isinstance(value, Decimal | int | float):
        return float(value), False
    base = getattr(value, "base", None)  # TieredPrices: the rate below the first long-context threshold
    return (None, False) if base is None else (float(base), True)


_TIERED_NOTE = "tiered: base rate used (batch usage has no per-request prompt sizes)"


def default_batch_factor(provider: str) -> float:
    """The share of the standard price a batch of ``provider`` pays where no batch price is listed."""
    if provider == OPENAI:
        return settings.BATCH_FACTOR
    if provider == ANTHROPIC:
        return settings.ANTHROPIC_BATCH_FACTOR
    return settings.PROVIDER_BATCH_FACTORS[provider]


def _standard_source(provider: str) -> str:
    """`source` of a genai-prices standard price row: OpenAI's plain, the others' with the factor applied."""
    if provider == OPENAI:
        return GENAI_PRICES
    return f"genai-prices standard price x {default_batch_factor(provider):g}"


def _genai_row(model: str, info: Any, price: Any, start: date | None, provider: str, version: str) -> PriceRow | None:
    """The row of one genai-prices price (standard or batch variant) in force from ``start``; None when it
    lists no token prices (moderation: unpriced, never silently free)."""
    input_price, tiered_in = _number(getattr(price, "input_mtok", None))
    if input_price is None:
        return None
    cached, tiered_cache = _number(getattr(price, "cache_read_mtok", None))
    output, tiered_out = _number(getattr(price, "output_mtok", None))
    tiered = tiered_in or tiered_cache or tiered_out
    write = write_1h = None
    if provider != OPENAI:  # OpenAI bills no cache writes: its rows stay as they were
        write, tiered_write = _number(getattr(price, "cache_write_mtok", None))
        write_1h, tiered_write_1h = _number(getattr(price, "cache_write_1h_mtok", None))
        tiered = tiered or tiered_write or tiered_write_1h
    return PriceRow(
        model=model,
        valid_from=None if start is None else _utc_midnight(start),
        valid_to=None,
        input_usd_per_mtok=input_price,
        cached_input_usd_per_mtok=cached,
        output_usd_per_mtok=output,
        batch_factor=default_batch_factor(provider),
        source=_standard_source(provider),
        source_version=version,
        matched_model=info.id,
        note=_TIERED_NOTE if tiered else None,
        tiered=tiered,
        provider=provider,
        cache_write_usd_per_mtok=write,
        cache_write_1h_usd_per_mtok=write_1h,
    )


def _batch_variant_active(info: Any, at: datetime) -> bool:
    """Whether genai-prices has a `processing: batch` price for the model at ``at``."""
    return any(
        v.when == BATCH_CONTEXT and (v.constraint is None or v.constraint.active(at))
        for v in (getattr(info, "price_variants", None) or ())
    )


def _starts(info: Any) -> set[date]:
    """Every date from which one of the model's prices (standard or variant) starts."""
    from genai_prices import types

    constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    constraints += [v.constraint for v in getattr(info, "price_variants", None) or ()]
    return {c.start_date for c in constraints if isinstance(c, types.StartDateConstraint)}


def preload_genai_prices() -> None:
    """Import genai-prices (its types and bundled data: ~0.2 s, mostly its models' classes) on a thread, for a
    load that will build the report views at its end: a backfill into a new database imports it while the list is
    paged instead of after the last page. Failures are left to the real import, which meets them again."""

    def load() -> None:
        with contextlib.suppress(Exception):
            import genai_prices.data  # noqa: F401
            import genai_prices.types  # noqa: F401

    threading.Thread(target=load, name="genai-prices-import", daemon=True).start()


def genai_price_rows(models: Iterable[str], provider: str = OPENAI) -> list[PriceRow]:
    """Price periods of each model genai-prices knows under ``provider``, from the data bundled with the
    package: the standard price, and for Anthropic also its batch price variant where it has one.

    Only the bundled data: `genai_prices.data` is the snapshot shipped in the wheel, whereas the
    package-level lookups would use prices fetched by `UpdatePrices` if anything in the process had
    started it. Nothing here touches the network."""
    from genai_prices.data import providers

    found = next(p for p in providers if p.id == _GENAI_PROVIDER[provider])
    version = _genai_version()
    rows: list[PriceRow] = []
    for model in sorted(set(models)):
        info = found.find_model(model, all_providers=providers)
        if info is None:
            continue
        standard, batch = _model_periods(model, info, provider, version)
        listed = _openrouter_batch_model(found, info) if provider == OPENROUTER else None
        if listed is not None:  # OpenRouter's own batch price, under the model's name as the batch names it
            note = f"OpenRouter's batch price ({listed.id})"
            batch = [
                replace(
                    r,
                    batch_factor=1.0,
                    source=GENAI_PRICES_BATCH,
                    processing="batch",
                    note=note if r.note is None else f"{note}; {r.note}",
                )
                for r in _model_periods(model, listed, provider, version)[0]
            ]
        rows.extend(_close_periods(standard) if standard else [])
        rows.extend(_close_periods(batch) if batch else [])
    return rows


def _model_periods(model: str, info: Any, provider: str, version: str) -> tuple[list[PriceRow], list[PriceRow]]:
    """The standard and batch-variant price periods of one genai-prices model (not yet closed)."""
    # Ask genai-prices itself which price is in force from each start date on, so its precedence
    # rules (last active conditional price wins; a variant overrides key by key) apply exactly as it
    # applies them.
    standard: list[PriceRow] = []
    batch: list[PriceRow] = []
    for start in [None, *sorted(_starts(info))]:
        at = _utc_midnight(start or date(1970, 1, 1))
        row = _genai_row(model, info, info.get_prices(at), start, provider, version)
        if row is not None and not (standard and _same_price(standard[-1], row)):
            standard.append(row)
        if provider == OPENAI or not _batch_variant_active(info, at):
            continue
        variant = _genai_row(model, info, info.get_prices(at, BATCH_CONTEXT), start, provider, version)
        if variant is not None:
            variant = replace(variant, batch_factor=1.0, source=GENAI_PRICES_BATCH, processing="batch")
            if not (batch and _same_price(batch[-1], variant)):
                batch.append(variant)
    return standard, batch


def _openrouter_batch_model(found: Any, info: Any) -> Any:
    """OpenRouter's `<model>:batch` entry of the model genai-prices matched, exactly that id; None without one."""
    wanted = info.id + OPENROUTER_BATCH_SUFFIX
    return next((m for m in found.models if m.id == wanted), None)


def _same_price(a: PriceRow, b: PriceRow) -> bool:
    def key(r: PriceRow) -> tuple[Any, ...]:
        return (
            r.input_usd_per_mtok,
            r.cached_input_usd_per_mtok,
            r.output_usd_per_mtok,
            r.cache_write_usd_per_mtok,
            r.cache_write_1h_usd_per_mtok,
            r.batch_factor,
            r.tiered,
        )

    return key(a) == key(b)


_BEGINNING = datetime.min.replace(tzinfo=UTC)


def _close_periods(periods: Sequence[PriceRow]) -> list[PriceRow]:
    """Each period ends where the next one starts, so a range join finds exactly one row per instant."""
    ordered = sorted(periods, key=lambda r: r.valid_from or _BEGINNING)
    return [replace(r, valid_to=nxt.valid_from) for r, nxt in zip(ordered, ordered[1:], strict=False)] + ordered[-1:]


# --------------------------------------------------------------------------------------------- override file
def prices_path(explicit: str | None = None) -> tuple[Path, bool]:
    """The price file and whether it was named: `--prices`, else OPENAI_BATCHES_PRICES (both must
    exist: a mistyped name must not silently mean "no overrides"), else `prices.toml` in dlt's
    settings folder (`.dlt/`), which is optional."""
    if explicit:
        return Path(explicit), True
    if os.environ.get(settings.PRICES_ENV):
        return Path(os.environ[settings.PRICES_ENV]), True
    import dlt

    return Path(dlt.current.run_context().settings_dir) / settings.PRICES_FILE_NAME, False


def price_overrides(explicit: str | None = None) -> Overrides:
    """The user's prices as `prices_path` finds them; PricesError for a named file that is missing or bad."""
    path, named = prices_path(explicit)
    return load_overrides(path, required=named)


_ENTRY_KEYS = {
    "model",
    "valid_from",
    "input",
    "cached_input",
    "output",
    "cache_write",
    "cache_write_1h",
    "batch_factor",
    "note",
    "provider",
}


def _finite(entry: Mapping[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    # TOML has `inf` and `nan`: both pass `>= 0`-style checks one way or another and poison every total.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PricesError(f"{where}: `{key}` must be a finite number >= 0, got {value!r}")
    return float(value)


def _price(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> float | None:
    price = _finite(entry, key, where)
    if price is None and required:
        raise PricesError(f"{where}: `{key}` is required (USD per million tokens)")
    if price is not None and price > settings.MAX_PRICE_USD_PER_MTOK:
        raise PricesError(
            f"{where}: `{key}` is USD per million tokens, at most {settings.MAX_PRICE_USD_PER_MTOK:,.0f} "
            f"(a dollar a token), got {price!r}"
        )
    return price


def _batch_factor(entry: Mapping[str, Any], where: str) -> float | None:
    """The entry's factor; None when it gives none: the provider's documented discount then applies."""
    factor = _finite(entry, "batch_factor", where)
    if factor is None:
        return None
    if factor > settings.BATCH_FACTOR_MAX:
        raise PricesError(
            f"{where}: `batch_factor` is the share of the standard price a batch pays, between 0 and "
            f"{settings.BATCH_FACTOR_MAX:g} (OpenAI's batch discount is {settings.BATCH_FACTOR:g}), got {factor:g}"
        )
    return factor


def _valid_from(value: Any, where: str) -> datetime | None:
    """A date is its UTC midnight; a date-time with an offset is that instant; one without is UTC."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # left as text: refused below with the expected forms
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:  # 9999-12-31T23:59:59-12:00: its offset moves the instant past the calendar
            raise PricesError(f"{where}: `valid_from` {value.isoformat()} is out of range in UTC") from None
    if isinstance(value, date):
        return _utc_midnight(value)
    raise PricesError(
        f"{where}: `valid_from` must be a date like 2025-06-01 or a date-time like 2025-06-01T12:00:00Z, got {value!r}"
    )


def load_overrides(path: Path, *, required: bool = False) -> Overrides:
    """The `[[prices]]` entries of the user's file; an absent file is no overrides unless it was named."""
    if not path.exists():
        if required:
            raise PricesError(f"price file {path} does not exist")
        return NO_OVERRIDES
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PricesError(f"{path}: not valid TOML: {e}") from None
    unknown_tables = set(doc) - {"prices", AZURE}
    if unknown_tables:
        raise PricesError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_tables))}; "
            "use [[prices]] or [azure.deployments]"
        )
    deployments = _azure_deployments(doc.get(AZURE, {}), path)
    items = doc.get("prices", [])
    if not isinstance(items, list):
        raise PricesError(f"{path}: `prices` must be an array of tables ([[prices]])")
    entries: list[OverrideEntry] = []
    seen: set[tuple[str, datetime | None, str | None]] = set()
    for i, item in enumerate(items, 1):
        where = f"{path}: [[prices]] entry {i}"
        if not isinstance(item, Mapping):
            raise PricesError(f"{where}: must be a table")
        # A typo (`cached` for `cached_input`) would otherwise silently price cached input at the input rate.
        unknown = set(item) - _ENTRY_KEYS
        if unknown:
            raise PricesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        pattern = item.get("model")
        if not isinstance(pattern, str) or not pattern:
            raise PricesError(f"{where}: `model` (a model id or glob) is required")
        note = item.get("note")
        entry = OverrideEntry(
            pattern=pattern,
            valid_from=_valid_from(item.get("valid_from"), where),
            input=_price(item, "input", where, required=True) or 0.0,
            cached_input=_price(item, "cached_input", where),
            output=_price(item, "output", where),
            batch_factor=_batch_factor(item, where),
            note=None if note is None else str(note),
            cache_write=_price(item, "cache_write", where),
            cache_write_1h=_price(item, "cache_write_1h", where),
            provider=_entry_provider(item, where),
        )
        if (entry.pattern, entry.valid_from, entry.provider) in seen:
            raise PricesError(f"{where}: a second price for {pattern!r} from {entry.valid_from or 'always'}")
        seen.add((entry.pattern, entry.valid_from, entry.provider))
        entries.append(entry)
    return Overrides(tuple(entries), f"{OVERRIDE} ({path})", hashlib.sha256(raw).hexdigest()[:12], deployments)


def _entry_provider(item: Mapping[str, Any], where: str) -> str | None:
    """The provider an entry is for; None: OpenAI's and Anthropic's models, as entries were before."""
    provider = item.get("provider")
    if provider is None:
        return None
    from ..settings import PROVIDERS

    if provider not in PROVIDERS:
        raise PricesError(f"{where}: `provider` must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    return str(provider)


def _azure_deployments(table: Any, path: Path) -> tuple[tuple[str, str], ...]:
    """`[azure.deployments]`: each Azure deployment name (the `model` of an Azure batch) and the OpenAI model it
    runs, whose price it pays."""
    where = f"{path}: [azure]"
    if not isinstance(table, Mapping) or set(table) - {"deployments"}:
        raise PricesError(f'{where}: only a table `deployments` (deployment = "OpenAI model") is known')
    deployments = table.get("deployments", {})
    if not isinstance(deployments, Mapping):
        raise PricesError(f'{where}: `deployments` must be a table of deployment = "OpenAI model"')
    pairs = []
    for name, model in deployments.items():
        if not isinstance(model, str) or not model.strip():
            raise PricesError(f"{where}.deployments: {name!r} must name an OpenAI model, got {model!r}")
        pairs.append((str(name), model.strip()))
    return tuple(pairs)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def override_rows(models: Iterable[str], overrides: Overrides, provider: str = OPENAI) -> list[PriceRow]:
    """Rows for every model of ``provider`` the file covers. An exact `model` wins over a glob; among globs
    the first in the file that matches wins. The winner's entries replace the model's whole price history
    (batch prices included: the file's prices are standard ones, of which a batch pays `batch_factor`,
    by default the provider's documented discount)."""
    default_factor = default_batch_factor(provider)
    entries = [
        e
        for e in overrides.entries
        if e.provider == provider or (e.provider is None and provider in _UNNAMED_ENTRY_PROVIDERS)
    ]
    rows: list[PriceRow] = []
    for model in sorted(set(models)):
        exact = [e for e in entries if not _is_glob(e.pattern) and e.pattern == model]
        pattern = exact[0].pattern if exact else None
        if pattern is None:
            pattern = next(
                (e.pattern for e in entries if _is_glob(e.pattern) and fnmatch.fnmatchcase(model, e.pattern)),
                None,
            )
        if pattern is None:
            continue
        periods = [
            PriceRow(
                model=model,
                valid_from=e.valid_from,
                valid_to=None,
                input_usd_per_mtok=e.input,
                cached_input_usd_per_mtok=e.cached_input,
                output_usd_per_mtok=e.output,
                batch_factor=default_factor if e.batch_factor is None else e.batch_factor,
                source=overrides.source,
                source_version=overrides.version,
                matched_model=pattern,
                note=e.note,
                provider=provider,
                cache_write_usd_per_mtok=e.cache_write,
                cache_write_1h_usd_per_mtok=e.cache_write_1h,
            )
            for e in entries
            if e.pattern == pattern
        ]
        rows.extend(_close_periods(periods))
    return rows


def _provider_rows(names: Iterable[str], overrides: Overrides, provider: str) -> list[PriceRow]:
    """The user's file where it covers a model of ``provider``, genai-prices elsewhere (none for
    openai-compatible: module docstring)."""
    wanted = set(names)
    overridden = override_rows(wanted, overrides, provider)
    covered = {r.model for r in overridden}
    if provider in _GENAI_PROVIDER:
        overridden += genai_price_rows(wanted - covered, provider)
    return overridden


def azure_deployment_model(deployment: str, overrides: Overrides) -> str:
    """The OpenAI model an Azure deployment runs: `[azure.deployments]`, else its own name (a deployment named
    `gpt-4o` runs gpt-4o; genai-prices then matches it as it matches OpenAI's names)."""
    return dict(overrides.azure_deployments).get(deployment, deployment)


def _azure_rows(deployments: Iterable[str], overrides: Overrides) -> list[PriceRow]:
    """Rows of each deployment: an entry for `provider = "azure"` matching its name, else the price the OpenAI side
    gives the model it runs (the file's OpenAI entries, else genai-prices), under the deployment's name."""
    wanted = set(deployments)
    rows = override_rows(wanted, overrides, AZURE)
    covered = {r.model for r in rows}
    for deployment in sorted(wanted - covered):
        model = azure_deployment_model(deployment, overrides)
        note = f"Azure deployment {deployment}: OpenAI's price of {model}"
        rows += [
            replace(r, model=deployment, provider=AZURE, note=note if r.note is None else f"{note}; {r.note}")
            for r in _provider_rows([model], overrides, OPENAI)
        ]
    return rows


def resolve_prices(
    models: Iterable[str],
    overrides: Overrides = NO_OVERRIDES,
    anthropic_models: Iterable[str] = (),
    other_models: Mapping[str, Iterable[str]] | None = None,
) -> list[PriceRow]:
    """Every price row the given models need (OpenAI's ``models``, Anthropic's ``anthropic_models``, the other
    providers' ``other_models`` by provider): the user's file where it covers a model, genai-prices elsewhere."""
    rows: list[PriceRow] = []
    for provider, names in ((OPENAI, models), (ANTHROPIC, anthropic_models)):
        rows += _provider_rows(names, overrides, provider)
    for provider, names in sorted((other_models or {}).items()):
        rows += _azure_rows(names, overrides) if provider == AZURE else _provider_rows(names, overrides, provider)
    return sorted(rows, key=lambda r: (r.provider, r.model, r.processing or "", r.valid_from or _BEGINNING))


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


# --------------------------------------------------------------------------------------------- the table
def write_model_prices(con: duckdb.DuckDBPyConnection, rows: Sequence[PriceRow]) -> None:
    """Replace `model_prices` (in the session's current catalog) with ``rows``; the caller's transaction
    makes it atomic with the views."""
    table = f"{settings.SCHEMA}.{settings.PRICES_TABLE}"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {settings.SCHEMA}")
    con.execute(f"CREATE OR REPLACE TABLE {table} ({_COLUMNS_DDL})")
    if rows:
        con.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' * 16)})",
            [
                (
                    r.provider,
                    r.model,
                    r.valid_from,
                    r.valid_to,
                    r.input_usd_per_mtok,
                    r.cached_input_usd_per_mtok,
                    r.output_usd_per_mtok,
                    r.batch_factor,
                    r.source,
                    r.source_version,
                    r.matched_model,
                    r.note,
                    r.tiered,
                    r.cache_write_usd_per_mtok,
                    r.cache_write_1h_usd_per_mtok,
                    r.processing,
                )
                for r in rows
            ],
        )
