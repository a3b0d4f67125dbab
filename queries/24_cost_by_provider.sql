-- What did each provider's batches cost? (one row per provider with batches in scope; unpriced batches counted, never $0)
-- `price_sources`: which prices priced them (Anthropic: genai-prices' batch price, or its standard price x 0.5
-- where it lists no batch price; see model_prices and caveats). `reported_cost_usd`: what the provider itself reports
-- its batches cost (OpenRouter's `usage.cost`; NULL for a provider that reports none), and `reported_minus_ours_usd`
-- its difference from our `cost_usd` over the batches that have both.
SELECT
    provider,
    count(*) AS batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    sum(requests_total) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens,
    round(fsum(cost_usd), 9) AS cost_usd,
    round(100 * fsum(cost_usd) / nullif(fsum(fsum(cost_usd)) OVER (), 0), 1) AS cost_share_pct,
    round(fsum(sync_cost_usd), 9) AS sync_cost_usd,
    round(fsum(batch_savings_usd), 9) AS batch_savings_usd,
    string_agg(DISTINCT price_source, '; ' ORDER BY price_source) AS price_sources,
    round(fsum(reported_cost_usd), 9) AS reported_cost_usd,
    round(fsum(reported_cost_usd - cost_usd), 9) AS reported_minus_ours_usd
FROM openai_batches.batch_jobs
GROUP BY provider
ORDER BY cost_usd DESC NULLS LAST, provider;
