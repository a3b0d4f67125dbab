-- Which requests are missing: in the input file, in neither the output nor the error file? (with their custom ids)
-- One row per missing request, newest batch first; a cancelled batch without an error file lists its requests
-- that never ran here (`batch_not_run`).
SELECT
    l.batch_id,
    l.project,
    l.status,
    r.custom_id,
    l.ledger_missing AS missing_in_batch,
    l.batch_total,
    l.batch_completed,
    l.batch_failed,
    l.batch_not_run
FROM openai_batches.request_costs AS r
JOIN openai_batches.ledger_check AS l ON l.batch_id = r.batch_id
WHERE r.outcome = 'missing'
ORDER BY l.created_at DESC, l.batch_id, r.custom_id;
