"""Executed notebook → one HTML report that opens offline with live Plotly charts.

Two traps handled here. Papermill-executed figures are stored only as
``application/vnd.plotly.v1+json``, which nbconvert's HTML drops (blank charts): a preprocessor
turns each into a ``<div>`` + ``Plotly.newPlot`` script. And the stock ``lab`` template loads
require.js and MathJax from CDNs: the ``meridian`` template drops them and inlines plotly.js
once per report, so a report is a single self-contained file.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import plotly.io as pio
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from plotly.offline import get_plotlyjs

from meridian._files import write_atomic
from meridian.pages import lock_down

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportPreprocessor(Preprocessor):
    """Adds a ``text/html`` rendering (div + script, no plotly.js) to every Plotly output and
    drops scrapbook's glue outputs, which are data for the registry, not for readers."""

    def preprocess_cell(self, cell, resources, index):
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not _is_scrap(o)]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                data["text/html"] = pio.to_html(
                    data[PLOTLY_MIME], include_plotlyjs=False, full_html=False,
                    validate=False, config={"responsive": True},
                )
                resources["needs_plotly"] = True
            elif "text/html" in data and "Plotly.newPlot" in str(data["text/html"]):
                resources["needs_plotly"] = True
        return cell, resources


def _is_scrap(output) -> bool:
    data = output.get("data", {})
    return bool(data) and all(key.startswith("application/scrapbook") for key in data)


def _has_plotly(notebook: nbformat.NotebookNode) -> bool:
    return any(
        PLOTLY_MIME in output.get("data", {}) or "Plotly.newPlot" in str(output.get("data", {}))
        for cell in notebook.cells for output in cell.get("outputs", [])
    )


PLOTLY_JS_SLOT = "/* meridian: plotly.js */"


def make_exporter(no_input: bool = False) -> HTMLExporter:
    """The report exporter: the ``meridian`` template plus :class:`ReportPreprocessor`."""
    exporter = HTMLExporter(
        template_name="meridian",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=no_input,
        exclude_input_prompt=no_input,
        exclude_output_prompt=no_input,
    )
    exporter.register_preprocessor(ReportPreprocessor(), enabled=True)
    return exporter


def warm_up(exporter: HTMLExporter) -> HTMLExporter:
    """Render a tiny notebook once: compiles templates and regexes and loads pygments, which
    otherwise costs the first real export most of a second. Run it while a kernel works."""
    sample = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# warm-up *text*"),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": "<b>x</b>", "text/plain": "x"})]),
    ])
    exporter.from_notebook_node(sample, resources={"plotly_js": ""})
    return exporter


def export_html(
    notebook: nbformat.NotebookNode,
    html_path: Path,
    *,
    no_input: bool = False,
    exporter: HTMLExporter | None = None,
) -> Path:
    """Write ``notebook`` as a self-contained HTML report (atomically: temp file + rename).

    plotly.js (4-5 MB) is spliced in after rendering: nbconvert re-parses its whole output
    with BeautifulSoup, and the library need not go through that.
    """
    exporter = exporter or make_exporter(no_input)
    needs_plotly = _has_plotly(notebook)
    body, _ = exporter.from_notebook_node(
        notebook, resources={"plotly_js": PLOTLY_JS_SLOT if needs_plotly else ""}
    )
    if needs_plotly:
        body = body.replace(PLOTLY_JS_SLOT, get_plotlyjs(), 1)
    body = lock_down(body)
    return write_atomic(html_path, body)
