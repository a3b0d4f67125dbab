-- What happened to the requests, per model and endpoint? (the request ledger, read by `load --requests`)
-- `missing`: in the input file, yet in neither the output nor the error file. The model is the batch's.
-- Counted per batch first, then per model and endpoint: the same counts as counting distinct batch ids over every
-- request, without a set of ids per group (50M requests: 4.1 -> 3.0 s of CPU). The sums are cast back to BIGINT,
-- the type of a count.
WITH per_batch AS (
    SELECT
        model_label,
        endpoint,
        batch_id,
        count(*) AS requests,
        count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
        count(*) FILTER (WHERE outcome = 'failed') AS failed,
        count(*) FILTER (WHERE outcome = 'expired') AS expired,
        count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE outcome = 'missing') AS missing
    FROM openai_batches.request_costs
    GROUP BY model_label, endpoint, batch_id
)
SELECT
    model_label AS model,
    endpoint,
    count(DISTINCT batch_id) AS batches,
    CAST(sum(requests) AS BIGINT) AS requests,
    CAST(sum(succeeded) AS BIGINT) AS succeeded,
    CAST(sum(failed) AS BIGINT) AS failed,
    CAST(sum(expired) AS BIGINT) AS expired,
    CAST(sum(cancelled) AS BIGINT) AS cancelled,
    CAST(sum(missing) AS BIGINT) AS missing,
    round(100 * sum(succeeded) / sum(requests), 2) AS succeeded_pct
FROM per_batch
GROUP BY ALL
ORDER BY requests DESC, model, endpoint;
