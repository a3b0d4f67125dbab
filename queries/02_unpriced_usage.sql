-- Which batches could not be priced, and why? Their tokens are in no cost total.
-- Add a price for a model in .dlt/prices.toml (see .dlt/prices.toml.example).
SELECT
    unpriced_reason AS reason,
    model_label AS model,
    count(*) AS batches,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    min(created_day) AS first_day,
    max(created_day) AS last_day
FROM openai_batches.batch_jobs
WHERE NOT priced
GROUP BY ALL
ORDER BY batches DESC, reason, model;
