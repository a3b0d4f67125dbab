-- What did batches cost per day (UTC, by creation day) and model?
-- A batch without a usable creation time has no day (an empty `day`); see caveats.
SELECT
    created_day AS day,
    model_label AS model,
    count(*) AS batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens) AS output_tokens,
    round(fsum(cost_usd), 9) AS cost_usd,
    round(fsum(sync_cost_usd), 9) AS sync_cost_usd
FROM openai_batches.batch_jobs
GROUP BY ALL
ORDER BY day DESC, cost_usd DESC NULLS LAST, model;
