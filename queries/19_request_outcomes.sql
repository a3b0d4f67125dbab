-- What happened to the requests, per model and endpoint? (the request ledger, read by `load --requests`)
-- `missing`: in the input file, yet in neither the output nor the error file. The model is the batch's.
SELECT
    model_label AS model,
    endpoint,
    count(DISTINCT batch_id) AS batches,
    count(*) AS requests,
    count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE outcome = 'failed') AS failed,
    count(*) FILTER (WHERE outcome = 'expired') AS expired,
    count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE outcome = 'missing') AS missing,
    round(100 * count(*) FILTER (WHERE outcome = 'succeeded') / count(*), 2) AS succeeded_pct
FROM openai_batches.request_costs
GROUP BY ALL
ORDER BY requests DESC, model, endpoint;
