-- What did OpenAI bill each project per UTC month, next to our estimate for its batches? (needs an admin key)
-- `batch_token_share_pct` is the share of the project's tokens that went through the Batch API (Usage API).
SELECT
    strftime(month, '%Y-%m') AS month,
    project_id,
    name,
    round(costs_usd, 9) AS costs_usd,
    round(batches_estimate_usd, 9) AS batches_estimate_usd,
    estimate_source,
    batch_token_share_pct,
    unpriced_batches
FROM openai_batches.cost_reconciliation
ORDER BY month DESC, project_id;
