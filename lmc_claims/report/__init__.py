"""The verification report: report.json (machines), report.md and report.html (people), figures/,
the terminal summary, and the comparison of two report directories.

Everything is built from the claim tests' netCDF files (see records.py), by one function,
`write_report`, which the pytest plugin and `lmc-claims report` both call.
"""

from .summary import ERROR, build_report, key_figure, params_text
from .tables import format_table, summary_rows
from .writer import rebuild_report, write_report

__all__ = ["ERROR", "build_report", "format_table", "key_figure", "params_text", "rebuild_report",
           "summary_rows", "write_report"]
