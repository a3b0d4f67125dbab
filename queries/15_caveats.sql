-- Which batches does a figure leave out or only approximate, and why? (no rows: every figure covers every batch)
-- Values the API sent that cannot be right (an end before the start, cached above input tokens, ...) are never
-- guessed at: the figure leaves the batch out, or marks it, and this report counts it.
SELECT
    caveat,
    figures,
    count(*) AS batches,
    min(id) AS example_id
FROM openai_batches.caveats
GROUP BY ALL
ORDER BY batches DESC, caveat;
