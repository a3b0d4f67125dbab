-- How are turnaround times of completed batches distributed per provider and model? (% of the model's batches in each time bucket)
-- Over the same batches as turnaround_percentiles: completed, with a complete timeline in order.
-- Each batch's bucket is found once (the first bound it is under), then counted per provider, model and bucket:
-- nine range tests of every batch (one per column) were 2/3 of this query over a million batches.
WITH buckets AS (
    SELECT
        provider,
        model_label,
        CASE
            WHEN turnaround_s < 600 THEN 0
            WHEN turnaround_s < 1800 THEN 1
            WHEN turnaround_s < 3600 THEN 2
            WHEN turnaround_s < 7200 THEN 3
            WHEN turnaround_s < 14400 THEN 4
            WHEN turnaround_s < 28800 THEN 5
            WHEN turnaround_s < 57600 THEN 6
            WHEN turnaround_s < 86400 THEN 7
            WHEN turnaround_s >= 86400 THEN 8
        END AS bucket,
        count(*) AS batches
    FROM openai_batches.batch_job_timings
    WHERE status = 'completed' AND timeline_complete
    GROUP BY ALL
)
SELECT
    provider,
    model_label AS model,
    CAST(sum(batches) AS BIGINT) AS batches,
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 0), 0) / sum(batches), 1) AS "<10m",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 1), 0) / sum(batches), 1) AS "10-30m",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 2), 0) / sum(batches), 1) AS "30-60m",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 3), 0) / sum(batches), 1) AS "1-2h",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 4), 0) / sum(batches), 1) AS "2-4h",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 5), 0) / sum(batches), 1) AS "4-8h",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 6), 0) / sum(batches), 1) AS "8-16h",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 7), 0) / sum(batches), 1) AS "16-24h",
    round(100 * coalesce(sum(batches) FILTER (WHERE bucket = 8), 0) / sum(batches), 1) AS ">24h"
FROM buckets
GROUP BY ALL
ORDER BY provider, model;
