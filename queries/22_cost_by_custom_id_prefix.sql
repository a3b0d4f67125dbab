-- Which jobs cost the most, by custom-id prefix (the part before the last `-`, `_` or `:`)? (top 25)
-- A request is priced with its batch's price; one that did not succeed and reports no tokens costs 0.
SELECT
    custom_id_prefix,
    count(DISTINCT batch_id) AS batches,
    count(*) AS requests,
    count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE NOT priced) AS unpriced_requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    round(fsum(cost_usd), 9) AS cost_usd
FROM openai_batches.request_costs
GROUP BY custom_id_prefix
ORDER BY cost_usd DESC NULLS LAST, requests DESC, custom_id_prefix
LIMIT 25;
