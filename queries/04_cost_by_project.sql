-- What did each project's batches cost, and what did batching and caching save it?
SELECT
    project,
    count(*) AS batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    round(fsum(cost_usd), 9) AS cost_usd,
    round(100 * fsum(cost_usd) / nullif(fsum(fsum(cost_usd)) OVER (), 0), 1) AS cost_share_pct,
    round(fsum(batch_savings_usd), 9) AS batch_savings_usd,
    round(fsum(cache_savings_usd), 9) AS cache_savings_usd
FROM openai_batches.batch_jobs
GROUP BY ALL
ORDER BY cost_usd DESC NULLS LAST, project;
