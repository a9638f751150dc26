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
REPORT_KEY = "meridian_report"  # the output metadata meridian.viz.report tags its sections with
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportPreprocessor(Preprocessor):
    """Prepares an executed notebook for reading: scrapbook's glue outputs (data for the
    registry) go; every Plotly output gets a ``text/html`` rendering (a div and a script,
    plotly.js being the page's); and the outputs of :func:`meridian.viz.report` move into a
    first cell of their own, so the report is what a reader sees first, above the code."""

    def preprocess(self, nb, resources):
        lifted = []
        for cell in nb.cells:
            if "outputs" not in cell:
                continue
            kept = []
            for output in cell.outputs:
                if _is_scrap(output):
                    continue
                _add_html(output)
                if REPORT_KEY in output.get("metadata", {}):
                    lifted.append(output)
                else:
                    kept.append(output)
            cell.outputs = kept
        if lifted:
            report = nbformat.v4.new_code_cell("", outputs=lifted)
            report.metadata["tags"] = ["meridian-report"]
            nb.cells.insert(0, report)
        return nb, resources


def _add_html(output) -> None:
    data = output.get("data", {})
    if PLOTLY_MIME in data and "text/html" not in data:
        data["text/html"] = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False,
                                        full_html=False, validate=False,
                                        config={"responsive": True})


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
    plotly_src: str | None = None,
) -> Path:
    """Write ``notebook`` as an HTML report that opens offline (atomically).

    With ``plotly_src`` (a relative URL to the outputs folder's shared plotly.js) the page
    loads it from there; without, plotly.js is inlined and the page stands alone. It is
    spliced in after rendering: nbconvert re-parses its whole output with BeautifulSoup, and
    the 4.6 MB library need not go through that.
    """
    exporter = exporter or make_exporter(no_input)
    needs_plotly = _has_plotly(notebook)
    resources = {"plotly_js": PLOTLY_JS_SLOT if needs_plotly and not plotly_src else "",
                 "plotly_src": plotly_src if needs_plotly else "",
                 "meridian_no_input": no_input}
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    if needs_plotly and not plotly_src:
        body = body.replace(PLOTLY_JS_SLOT, get_plotlyjs(), 1)
    return write_atomic(html_path, lock_down(body))
