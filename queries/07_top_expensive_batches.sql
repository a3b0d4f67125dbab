-- Which batches cost the most? (top 20 priced batches; unpriced ones are listed by unpriced_usage)
SELECT
    batch_id AS id,
    project,
    model,
    status,
    created_at,
    input_tokens,
    cached_input_tokens,
    output_tokens,
    reasoning_tokens,
    round(cost_usd, 9) AS cost_usd,
    round(sync_cost_usd, 9) AS sync_cost_usd
FROM openai_batches.batch_jobs
WHERE priced
ORDER BY cost_usd DESC, batch_id
LIMIT 20;
