-- Which batches are still open, and for how long have they been? (longest open first; hours)
SELECT
    id,
    project,
    model,
    status,
    created_at,
    round(open_for_s / 3600, 2) AS open_for_h,
    round(expires_in_s / 3600, 2) AS expires_in_h,
    requests_total,
    requests_completed,
    requests_failed
FROM openai_batches.open_batches
ORDER BY open_for_s DESC, id;
