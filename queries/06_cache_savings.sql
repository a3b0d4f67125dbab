-- How much did prompt caching save per model? (cached input billed at the cached-input rate instead of the input rate)
SELECT
    model_label AS model,
    count(*) FILTER (WHERE cached_input_tokens > 0) AS batches_with_cache_hits,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    round(100 * sum(cached_input_tokens) / nullif(sum(input_tokens), 0), 1) AS cached_pct,
    round(fsum(cache_savings_usd), 9) AS cache_savings_usd,
    round(fsum(cost_usd), 9) AS cost_usd
FROM openai_batches.batch_jobs
WHERE input_tokens IS NOT NULL
GROUP BY ALL
ORDER BY cache_savings_usd DESC NULLS LAST, model;
