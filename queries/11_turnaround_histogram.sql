-- How are turnaround times of completed batches distributed per provider and model? (% of the model's batches in each time bucket)
-- Over the same batches as turnaround_percentiles: completed, with a complete timeline in order.
SELECT
    provider,
    model_label AS model,
    count(*) AS batches,
    round(100 * count(*) FILTER (WHERE turnaround_s < 600) / count(*), 1) AS "<10m",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 600 AND turnaround_s < 1800) / count(*), 1) AS "10-30m",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 1800 AND turnaround_s < 3600) / count(*), 1) AS "30-60m",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 3600 AND turnaround_s < 7200) / count(*), 1) AS "1-2h",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 7200 AND turnaround_s < 14400) / count(*), 1) AS "2-4h",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 14400 AND turnaround_s < 28800) / count(*), 1) AS "4-8h",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 28800 AND turnaround_s < 57600) / count(*), 1) AS "8-16h",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 57600 AND turnaround_s < 86400) / count(*), 1) AS "16-24h",
    round(100 * count(*) FILTER (WHERE turnaround_s >= 86400) / count(*), 1) AS ">24h"
FROM openai_batches.batch_job_timings
WHERE status = 'completed' AND timeline_complete
GROUP BY ALL
ORDER BY provider, model;
