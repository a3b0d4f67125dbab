-- Which metadata key/value pairs cost the most? (top 25; a batch counts once under each of its keys)
-- Objects (what the API sends) are read as a MAP, ~6x faster than json_each over a million batches and
-- the same pairs; anything else still goes through json_each. A JSON text that starts with `{` is an object:
-- a test of its first character, not `json_type`, which parsed every document a second time (and twice).
WITH pairs AS (
    SELECT c.priced, c.cost_usd, c.sync_cost_usd, e.key AS metadata_key, e.value AS metadata_value
    FROM (
        SELECT *, map_entries(CAST(metadata AS MAP(VARCHAR, VARCHAR))) AS entries
        FROM openai_batches.batch_costs
        WHERE starts_with(metadata, '{')
    ) AS c, unnest(c.entries) AS t(e)
    UNION ALL
    SELECT c.priced, c.cost_usd, c.sync_cost_usd, m.key, m.value ->> '$'
    FROM openai_batches.batch_costs AS c, json_each(c.metadata) AS m
    WHERE NOT starts_with(c.metadata, '{')
)
SELECT
    metadata_key,
    metadata_value,
    count(*) AS batches,
    count(*) FILTER (WHERE NOT priced) AS unpriced_batches,
    round(fsum(cost_usd), 9) AS cost_usd,
    round(fsum(sync_cost_usd), 9) AS sync_cost_usd
FROM pairs
GROUP BY ALL
ORDER BY cost_usd DESC NULLS LAST, batches DESC, metadata_key, metadata_value
LIMIT 25;
