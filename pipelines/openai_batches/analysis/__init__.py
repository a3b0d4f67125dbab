"""Cost and throughput of the loaded batches: prices into `model_prices`, views, `queries/`, reports and HTML.

After a load, `refresh_analysis(db_path)` brings prices and views up to date; `print_terminal_report`
prints every report. Both need the database file writable (the views and prices live in it).
"""

from .report import print_terminal_report
from .views import ensure_views, refresh_analysis

__all__ = ["ensure_views", "print_terminal_report", "refresh_analysis"]
