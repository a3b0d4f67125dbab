-- What did the batches cost, what would the same tokens have cost synchronously, and how many could not be priced?
-- Unpriced batches (no usage reported, or no price for their model) are counted, never taken as $0.
SELECT
    count(*) AS batches,
    count(*) FILTER (WHERE priced) AS priced_batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    round(sum(cost_usd), 2) AS cost_usd,
    round(sum(sync_cost_usd), 2) AS sync_cost_usd,
    round(sum(batch_savings_usd), 2) AS batch_savings_usd,
    round(sum(cache_savings_usd), 2) AS cache_savings_usd,
    sum(input_tokens) FILTER (WHERE NOT priced) AS unpriced_input_tokens,
    sum(output_tokens) FILTER (WHERE NOT priced) AS unpriced_output_tokens,
    min(created_day) AS first_day,
    max(created_day) AS last_day
FROM openai_batches.batch_costs;
