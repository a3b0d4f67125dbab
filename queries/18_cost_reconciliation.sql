-- What did OpenAI bill each project per UTC month, next to our estimate for its batches? (needs an admin key)
-- `batch_token_share_pct` is the share of the project's tokens that went through the Batch API (Usage API).
-- Line items of no project are a row of their own (`project_id` empty); amounts in another currency are
-- shown apart (`other_currency_costs`), and amounts that are not numbers are counted, never summed (see caveats).
SELECT
    strftime(month, '%Y-%m') AS month,
    project_id,
    name,
    round(costs_usd, 9) AS costs_usd,
    round(batches_estimate_usd, 9) AS batches_estimate_usd,
    estimate_source,
    batch_token_share_pct,
    unpriced_batches,
    other_currency_costs,
    costs_not_numbers
FROM openai_batches.cost_reconciliation
ORDER BY month DESC, project_id NULLS LAST;
