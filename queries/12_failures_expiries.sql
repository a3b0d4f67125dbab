-- How often do batches fail validation, expire, get cancelled or complete with every request failed, per model? (finished batches)
SELECT
    model,
    batches_finished,
    failed_validation,
    expired,
    cancelled,
    completed_all_requests_failed,
    round(100 * request_failure_rate, 2) AS request_failure_pct,
    round(100 * validation_failure_rate, 2) AS validation_failure_pct,
    round(100 * expiry_rate, 2) AS expiry_pct,
    round(100 * cancellation_rate, 2) AS cancellation_pct,
    round(100 * within_window_share, 2) AS within_window_pct
FROM openai_batches.failure_rates
ORDER BY model = '(all)', model;
