"""Meridian's charts and tables (:mod:`meridian.viz.charts`) and the standard report of a run,
``viz.report(result)`` (:func:`meridian._report.report`, where the layout and display live).

The report is looked up when first asked for, so the report module can use the charts without
the two importing each other.
"""

from __future__ import annotations

from typing import Any

from meridian.viz.charts import *  # noqa: F403 - the charts are viz's own names

REPORT_NAMES = ("report", "Report", "Section", "backtest_summary", "build_report",
                "write_record_report")


def __getattr__(name: str) -> Any:
    if name in REPORT_NAMES:
        from meridian import _report

        return getattr(_report, name)
    from meridian.viz import charts

    return getattr(charts, name)  # the charts' helpers, by their full name
