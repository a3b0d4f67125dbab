-- Do our batches' tokens match what OpenAI's Usage API counted, per UTC month, project and model? (needs an admin key)
-- Batches count in the month their work ended; `boundary_batches` ran across the month's start or end (or are
-- still open), which is the only difference timing can explain. Months before September 2025 (`no batch usage`)
-- get the Usage API's batch tokens at batch prices as the estimate.
SELECT
    strftime(month, '%Y-%m') AS month,
    project_id,
    model,
    verdict,
    batches,
    batches_input_tokens,
    usage_input_tokens,
    input_diff_pct,
    batches_output_tokens,
    usage_output_tokens,
    output_diff_pct,
    boundary_batches,
    round(usage_estimate_usd, 9) AS usage_estimate_usd
FROM openai_batches.usage_reconciliation
ORDER BY month DESC, project_id, model;
