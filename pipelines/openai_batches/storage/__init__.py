"""Where the data lives: a `Store` (a DuckDB file, a DuckLake, MotherDuck), the one way to open a DuckDB
file for our own SQL, dlt's DuckDB destination, the packaged extensions, locks and the foreign-database check.

May import: duckdb, dlt's destinations, `tables`, `settings`, `client` (errors only). Never `sources`,
`load`, `cli` or `analysis`.
"""
