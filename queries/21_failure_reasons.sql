-- Why did requests fail, by error code? (failed, expired and cancelled requests of the request ledger)
-- Lines of the output file with status 0 or a non-2xx status are failed too; `(no code)`: the line had none.
SELECT
    coalesce(error_code, '(no code)') AS error_code,
    outcome,
    status_code,
    count(*) AS requests,
    count(DISTINCT batch_id) AS batches,
    min(error_message) AS example_message,
    min(batch_id) AS example_batch_id
FROM openai_batches.request_costs
WHERE outcome IN ('failed', 'expired', 'cancelled')
GROUP BY ALL
ORDER BY requests DESC, error_code, outcome, status_code;
