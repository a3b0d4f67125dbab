-- Is every project of the organisation loaded? (`missing`: batch usage in the last 30 days, no batches loaded; needs an admin key)
SELECT
    project_id,
    name,
    status,
    verdict,
    loaded,
    batches_loaded,
    batch_input_tokens,
    last_batch_usage_day
FROM openai_batches.project_coverage
ORDER BY verdict = 'covered', verdict = 'idle', batch_input_tokens DESC, project_id;
