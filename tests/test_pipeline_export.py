"""The HTML report: live Plotly charts, nothing from the network, optional hidden code."""

from __future__ import annotations

import re

import nbformat
import plotly.graph_objects as go
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from meridian.pipeline.export import PLOTLY_MIME, export_html


def _notebook_with_figure() -> nbformat.NotebookNode:
    figure = go.Figure(go.Scatter(y=[1, 3, 2], name="series-xyz")).to_plotly_json()
    chart = new_code_cell("figure  # SECRET_CODE_MARKER", outputs=[
        new_output("display_data", data={PLOTLY_MIME: figure, "text/plain": ["Figure()"]}),
    ])
    glue = new_code_cell("sb.glue('x', 1)", outputs=[new_output(
        "display_data", data={"application/scrapbook.scrap.json+json": {"name": "x", "data": 1}},
    )])
    return new_notebook(cells=[new_markdown_cell("# Title"), chart, glue])


def test_plotly_json_becomes_a_live_chart_with_inlined_plotly_js(tmp_path):
    html = export_html(_notebook_with_figure(), tmp_path / "report.html").read_text()
    assert html.count("Plotly.newPlot") >= 1 and "series-xyz" in html
    assert html.count("plotly.js v") >= 1  # the library itself is embedded
    assert "scrapbook" not in html  # glue outputs are data for the registry, not for readers
    external = re.findall(r"""<(?:script|link)[^>]+(?:src|href)=["']https?://""", html)
    assert external == [], "a report must open offline: no CDN scripts or styles"


def test_no_input_hides_code_cells(tmp_path):
    shown = export_html(_notebook_with_figure(), tmp_path / "a.html").read_text()
    hidden = export_html(_notebook_with_figure(), tmp_path / "b.html", no_input=True).read_text()
    assert "SECRET_CODE_MARKER" in shown and "SECRET_CODE_MARKER" not in hidden
    assert "Plotly.newPlot" in hidden


def test_notebook_without_figures_does_not_embed_plotly(tmp_path):
    notebook = new_notebook(cells=[new_code_cell("1 + 1", outputs=[
        new_output("execute_result", data={"text/plain": "2"}, execution_count=1)])])
    html = export_html(notebook, tmp_path / "plain.html").read_text()
    assert "plotly.js v" not in html and len(html) < 1_000_000
