-- How much work finished per hour (UTC)? Batches, requests and tokens, counted in the hour each batch ended.
SELECT
    hour_utc,
    sum(batches_finished) AS batches_finished,
    sum(batches_completed) AS batches_completed,
    sum(requests_completed) AS requests_completed,
    sum(requests_failed) AS requests_failed,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM openai_batches.throughput_hourly
GROUP BY hour_utc
ORDER BY hour_utc DESC;
