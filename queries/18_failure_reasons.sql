-- Why did requests fail, by error code? (failed, expired and cancelled requests of the request ledger)
-- Lines of the output file with status 0 or a non-2xx status are failed too; `(no code)`: the line had none.
SELECT
    coalesce(r.error_code, '(no code)') AS error_code,
    r.outcome,
    r.status_code,
    count(*) AS requests,
    count(DISTINCT r.batch_id) AS batches,
    min(r.error_message) AS example_message,
    min(r.batch_id) AS example_batch_id
FROM openai_batches.batch_requests AS r
JOIN openai_batches.batches_in_scope AS b ON b.id = r.batch_id
WHERE r.outcome IN ('failed', 'expired', 'cancelled')
GROUP BY ALL
ORDER BY requests DESC, error_code, r.outcome, r.status_code;
