-- Why did batches fail validation? (error codes per provider, most frequent first, with one example message)
SELECT
    provider,
    code,
    count(DISTINCT batch_id) AS batches,
    count(*) AS errors,
    min(message) AS example_message
FROM openai_batches.batch_validation_errors
GROUP BY provider, code
ORDER BY batches DESC, provider, code;
