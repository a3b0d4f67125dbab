"""Running a load: the runner (projects, pipelines, locks, the run log), the Admin API run, stopping on
signals, failures turned into one line, memory handed back.

May import: `sources`, `storage`, `client`, `tables`, `settings`, `config`, and `analysis` for the views
refreshed after a load. Never `cli`.
"""
