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
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from plotly.offline import get_plotlyjs

from meridian._files import write_atomic
from meridian.pages import CHART_LOADER, chart_html, inert_html, lock_down

PLOTLY_MIME = "application/vnd.plotly.v1+json"
REPORT_KEY = "meridian_report"  # the output metadata meridian.viz.report tags its sections with
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportPreprocessor(Preprocessor):
    """Prepares an executed notebook for reading: scrapbook's glue outputs (data for the
    registry) go; markdown, raw cells and HTML outputs are made inert (:func:`inert_html`:
    what a notebook's author wrote never runs in its reader's browser) and outputs that are
    code (JavaScript, widgets, SVG) go; every Plotly output becomes a chart drawn from its
    JSON by Meridian's one chart script; and the outputs of :func:`meridian.viz.report` move
    into a first cell of their own, so the report is what a reader sees first."""

    def preprocess(self, nb, resources):
        lifted = []
        for cell in nb.cells:
            if cell.cell_type in ("markdown", "raw"):
                cell.source = inert_html(cell.source)
                cell.pop("attachments", None)
            if "outputs" not in cell:
                continue
            kept = []
            for output in cell.outputs:
                if _is_scrap(output):
                    continue
                _make_inert(output)
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


SAFE_OUTPUTS = ("text/plain", "image/png", "image/jpeg", "image/gif", "application/json",
                "text/latex", PLOTLY_MIME)
"""Output types shown as they are (text, pictures, data); ``text/html`` and ``text/markdown``
are made inert, every other type (JavaScript, widgets, SVG, Bokeh…) is dropped."""


def _make_inert(output) -> None:
    data = output.get("data")
    if not data:
        return
    for key in list(data):
        if key in ("text/html", "text/markdown"):
            data[key] = inert_html(data[key])
        elif key not in SAFE_OUTPUTS:
            del data[key]
    if not data:
        data["text/plain"] = "[an output that can run code in a browser, not shown]"


def _add_html(output) -> None:
    data = output.get("data", {})
    if PLOTLY_MIME in data:  # drawn from its JSON; the output's own HTML never runs
        data["text/html"] = chart_html(data[PLOTLY_MIME])


def _is_scrap(output) -> bool:
    data = output.get("data", {})
    return bool(data) and all(key.startswith("application/scrapbook") for key in data)


def _has_plotly(notebook: nbformat.NotebookNode) -> bool:
    return any(PLOTLY_MIME in output.get("data", {})
               for cell in notebook.cells for output in cell.get("outputs", []))


CODE_TOGGLE = """var toggle = document.getElementById("meridian-code-toggle");
toggle.addEventListener("click", function () {
  var shown = document.body.classList.toggle("meridian-show-code");
  this.textContent = shown ? "Hide code" : "Show code";
  this.setAttribute("aria-pressed", String(shown));
});"""
"""The report's "Show code" button: with :data:`~meridian.pages.CHART_LOADER`, the only
scripts a report runs (the page's CSP allows these two by hash, and plotly.js)."""


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
                 "meridian_no_input": no_input, "meridian_toggle_js": CODE_TOGGLE,
                 "meridian_chart_js": CHART_LOADER if needs_plotly else ""}
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    if needs_plotly and not plotly_src:
        body = body.replace(PLOTLY_JS_SLOT, get_plotlyjs(), 1)
    return write_atomic(html_path, lock_down(body, [CODE_TOGGLE, CHART_LOADER]))
