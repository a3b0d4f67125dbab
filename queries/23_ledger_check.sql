-- Which batches' files disagree with the batch's counts or usage? (batches whose requests were read; no rows: all agree)
-- Succeeded requests must equal `completed`, every request must be in a file (or the input file), and the
-- requests' tokens must add up to the batch's usage; a file that is gone or still pending leaves it open.
SELECT
    batch_id,
    project,
    status,
    model,
    batch_total,
    ledger_requests,
    batch_completed,
    ledger_succeeded,
    batch_failed,
    ledger_failed,
    ledger_expired,
    ledger_cancelled,
    ledger_missing,
    files_gone,
    files_pending,
    tokens_match
FROM openai_batches.ledger_check
WHERE NOT consistent
ORDER BY created_at DESC, batch_id;
