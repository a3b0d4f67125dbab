-- Why did batches fail validation? (error codes, most frequent first, with one example message)
SELECT
    e.code,
    count(DISTINCT e.batch_id) AS batches,
    count(*) AS errors,
    min(e.message) AS example_message
FROM openai_batches.batches__errors__data AS e
JOIN openai_batches.batches_in_scope AS b ON b.id = e.batch_id
GROUP BY e.code
ORDER BY batches DESC, e.code;
