-- How long do completed batches take, by provider, model and endpoint? p50/p90/p99 turnaround (created -> completed), in minutes.
-- `batches` is the count every statistic of the row uses: completed batches whose timeline is complete and in order.
SELECT
    provider,
    model,
    endpoint,
    batches,
    round(turnaround_p50_s / 60, 1) AS p50_min,
    round(turnaround_p90_s / 60, 1) AS p90_min,
    round(turnaround_p99_s / 60, 1) AS p99_min,
    round(queue_p50_s / 60, 1) AS queue_p50_min,
    round(processing_p50_s / 60, 1) AS processing_p50_min,
    round(finalizing_p50_s / 60, 1) AS finalizing_p50_min
FROM openai_batches.turnaround_percentiles
ORDER BY model = '(all)', provider, model, endpoint;
