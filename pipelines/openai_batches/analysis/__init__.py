"""Cost and throughput of the loaded batches: prices, views, `queries/`, reports, the HTML page.

Readers (`report`, the HTML page, the notebook) use `reading(db_path)`: a read-only session under the
shared lock, with prices and views built in memory; nothing is written. After a load that changed
data, `refresh_after_load(db_path)` stores the same prices and views in the file for SQL run directly
on it, and returns warnings instead of failing the load.

May import: duckdb, matplotlib, `tables`, `storage`, `settings`, `client.errors` (the one error-to-line
function). Never `sources`, `load` or `cli`: a report reads tables, whoever wrote them.
"""

from .report import collect, print_terminal_report
from .session import NoBatchesError, reading, refresh_after_load, refresh_analysis

__all__ = ["NoBatchesError", "collect", "print_terminal_report", "reading", "refresh_after_load", "refresh_analysis"]
