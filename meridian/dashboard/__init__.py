"""Results pages over the run registry: the dashboard (``outputs/index.html``) and comparison
pages (``outputs/comparisons/*.html``). Both are single static files that open offline."""

from meridian.dashboard.comparison import comparison_text, write_comparison
from meridian.dashboard.page import build_dashboard, dashboard_path, refresh_dashboard

__all__ = ["build_dashboard", "comparison_text", "dashboard_path", "refresh_dashboard",
           "write_comparison"]
