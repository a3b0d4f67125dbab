-- How much work finished per day (UTC), provider and model? Batches, requests and tokens, counted on the day each batch ended.
SELECT
    day_utc,
    provider,
    model,
    batches_finished,
    batches_completed,
    requests_completed,
    requests_failed,
    input_tokens,
    output_tokens
FROM openai_batches.throughput_daily
ORDER BY day_utc DESC, requests_completed DESC, provider, model;
