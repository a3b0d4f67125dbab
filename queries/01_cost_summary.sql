-- What did the batches cost, what would the same tokens have cost synchronously, and how many could not be priced?
-- Every provider's batches (`batch_jobs`); `cost_by_provider` splits the totals by provider.
-- Unpriced batches (no usage reported, or no price for their model) are counted, never taken as $0; with no
-- batch in scope every amount is 0. Amounts to 9 decimals (a billionth of a dollar): no small total reads as 0;
-- added by `fsum` (compensated: small amounts are not lost below a large total's precision, and the total is the
-- same to 9 decimals whatever order the rows come in).
SELECT
    count(*) AS batches,
    count(*) FILTER (WHERE priced) AS priced_batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    coalesce(round(fsum(cost_usd), 9), CASE WHEN count(*) = 0 THEN 0 END) AS cost_usd,
    coalesce(round(fsum(sync_cost_usd), 9), CASE WHEN count(*) = 0 THEN 0 END) AS sync_cost_usd,
    coalesce(round(fsum(batch_savings_usd), 9), CASE WHEN count(*) = 0 THEN 0 END) AS batch_savings_usd,
    coalesce(round(fsum(cache_savings_usd), 9), CASE WHEN count(*) = 0 THEN 0 END) AS cache_savings_usd,
    sum(input_tokens) FILTER (WHERE NOT priced) AS unpriced_input_tokens,
    sum(output_tokens) FILTER (WHERE NOT priced) AS unpriced_output_tokens,
    min(created_day) AS first_day,
    max(created_day) AS last_day
FROM openai_batches.batch_jobs;
