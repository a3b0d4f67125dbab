-- Which metadata key/value pairs cost the most? (top 25; a batch counts once under each of its keys)
SELECT
    m.key AS metadata_key,
    m.value ->> '$' AS metadata_value,
    count(*) AS batches,
    count(*) FILTER (WHERE NOT c.priced) AS unpriced_batches,
    round(sum(c.cost_usd), 4) AS cost_usd,
    round(sum(c.sync_cost_usd), 4) AS sync_cost_usd
FROM openai_batches.batch_costs AS c, json_each(c.metadata) AS m
GROUP BY ALL
ORDER BY cost_usd DESC NULLS LAST, batches DESC, metadata_key, metadata_value
LIMIT 25;
