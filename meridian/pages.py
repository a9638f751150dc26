"""The HTML shell of every page Meridian writes: run reports, the dashboard, comparisons, sweeps.

Every page is written to work from ``file://`` with no network: plotly.js is inlined (once),
data travels as JSON inside ``<script type="application/json">``, and a Content-Security-Policy
allows exactly the inline scripts the page was built with (by SHA-256 hash) and no fetches.
So even if some user-controlled string slipped past escaping into the markup, an injected
``<script>`` or ``onerror=`` handler would not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_for_script(data: Any) -> str:
    """Strict JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``
    and ``&`` are ``\\u`` escapes, so no string value can close the element (``</script>``)
    or open a comment; JSON.parse restores them unchanged."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES:  # str.replace is C-fast; translate() is not
        text = text.replace(char, escape)
    return text


@functools.cache
def plotly_js() -> str:
    """The plotly.js bundle shipped with the installed plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@functools.cache
def _plotly_hash() -> str:
    return _script_hash(plotly_js())


PLOTLY = object()
"""Put in ``document``'s ``scripts`` where plotly.js should load."""
PLOTLY_DEFERRED = object()
"""plotly.js loaded only when the page first needs a chart: from the shared file (the page's
data carries ``plotly_src``), or, in a standalone page, inlined as inert text
(``<script type="text/plain" id="plotly-js">``) that the page runs on demand (the CSP allows it
by its hash). Parsing plotly.js costs about a second in a slow browser; most visits never
chart."""


def plotly_asset(out: str | os.PathLike[str]) -> Path:
    """The outputs folder's one copy of plotly.js (``assets/plotly-<version>.min.js``), written
    the first time a page needs it: every report, the dashboard, sweep and comparison pages
    load it relatively instead of each carrying 4.6 MB."""
    import plotly

    from meridian._files import write_atomic

    target = Path(out) / "assets" / f"plotly-{plotly.__version__}.min.js"
    if not target.is_file():
        write_atomic(target, plotly_js())
    return target


def plotly_src(page: str | os.PathLike[str], out: str | os.PathLike[str]) -> str:
    """The relative URL from ``page`` to the shared plotly.js of ``out`` (written if needed)."""
    return relative_href(plotly_asset(out), Path(page).parent)


def inline_plotly(page: str) -> str:
    """A page that loads the shared plotly.js made standalone: the library inlined in place of
    the ``<script src>`` and allowed by its hash (for ``meridian report --standalone``)."""
    found = re.search(r'<script src="[^"]*plotly-[^"]*\.min\.js"></script>', page)
    if found is None:
        return page
    inlined = page[:found.start()] + f"<script>{plotly_js()}</script>" + page[found.end():]
    return re.sub(r"(script-src )", lambda m: m[1] + _plotly_hash() + " ", inlined, count=1)


def csp(script_hashes: Sequence[str], connect: bool = False) -> str:
    """The Content-Security-Policy of every page: only the listed inline scripts and script
    files beside the page (the shared plotly.js) run, nothing is fetched, no form posts, no
    ``javascript:`` URL (it would need ``'unsafe-inline'``). ``connect``: the page may talk
    to the server that sent it (``meridian ui``), and to nothing else."""
    source = "'self'" if connect else "'none'"
    return ("default-src 'none'; "
            f"script-src 'self' {' '.join(dict.fromkeys(script_hashes))}; "
            "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
            f"connect-src {source}; "
            "base-uri 'none'; form-action 'none'")


CHART_LOADER = """document.querySelectorAll("script.mr-chart-data").forEach(function (node) {
  var figure = JSON.parse(node.textContent);
  Plotly.newPlot(node.previousElementSibling, figure.data || [], figure.layout || {},
                 {responsive: true});
});"""
"""Meridian's one chart script: draws every chart of a page from its inert JSON (no chart
carries a script of its own, so a page runs only scripts Meridian wrote)."""


def chart_html(figure: Any) -> str:
    """A chart as inert markup: an empty ``<div>`` and the figure's JSON in a
    ``<script type="application/json">`` that :data:`CHART_LOADER` draws."""
    if hasattr(figure, "to_plotly_json"):
        figure = json.loads(figure.to_json())
    layout = (figure.get("layout") or {}) if isinstance(figure, dict) else {}
    height = layout.get("height") if isinstance(layout.get("height"), int | float) else 525
    return (f'<div class="mr-chart plotly-graph-div" style="height:{int(height)}px;'
            'width:100%"></div>'
            f'<script type="application/json" class="mr-chart-data">'
            f"{json_for_script(figure)}</script>")


SAFE_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "style", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "u", "ul",
})
"""The markup a notebook's markdown and HTML outputs keep: formatting, tables, links, images
— no script, iframe, object, form, SVG or MathML. Anything else shows as escaped text."""
_SAFE_ATTRIBUTES = frozenset({"class", "title", "style", "align", "colspan", "rowspan",
                              "border", "alt", "width", "height"})


def _attribute(tag: str, name: str, value: str) -> bool:
    if name in _SAFE_ATTRIBUTES or (name.startswith("data-") and name[5:].isidentifier()):
        return True
    return (tag == "a" and name in ("href", "download")) or (tag == "img" and name == "src")


def inert_html(fragment: str) -> str:
    """``fragment`` (a notebook's markdown or HTML output) with nothing that can run: tags
    outside :data:`SAFE_TAGS` escaped (a ``<script>`` shows as text), ``on*`` handlers and
    ``javascript:`` URLs removed, inline CSS limited to harmless properties."""
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    return bleach.clean(str(fragment), tags=SAFE_TAGS, attributes=_attribute,
                        protocols={"http", "https", "mailto"}, strip=False,
                        strip_comments=True, css_sanitizer=CSSSanitizer())


def lock_down(page: str, trusted: Sequence[str] = ()) -> str:
    """``page`` with a CSP, at the top of its ``<head>``, that runs only the ``trusted``
    scripts — Meridian's own, by hash (plotly.js too when the page inlines it) — whatever
    else the page contains: a ``<script>``, an ``onerror=`` or a ``javascript:`` link that
    came from a notebook or a record cannot run, and nothing is fetched. (Notebook markup is
    made inert before it gets here, :func:`inert_html`; this is the second line of defence.)"""
    hashes = [_script_hash(source) for source in trusted]
    if f"<script>{plotly_js()}</script>" in page or \
            f'<script type="text/javascript">{plotly_js()}</script>' in page:
        hashes.append(_plotly_hash())
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp(hashes))}">'
    head = re.search(r"<head[^>]*>", page, re.IGNORECASE)
    if head is None:
        return meta + page
    return page[:head.end()] + "\n" + meta + page[head.end():]


def document(title: str, body: str, scripts: Sequence[str | object], *, css: str = "",
             data: Any = None, plotly: str | None = None, connect: bool = False) -> str:
    """A complete HTML page.

    ``body`` is trusted markup (escape user text before putting it there); ``scripts`` are
    inline script sources run in order after the body, :data:`PLOTLY` standing for plotly.js
    (placed last, the page's own content shows before the 4 MB library is parsed) — loaded
    from ``plotly`` (a relative URL to the shared copy) when given, else inlined; ``data``
    is embedded as ``<script type="application/json" id="meridian-data">``.
    """
    hashes = [_plotly_hash() if s in (PLOTLY, PLOTLY_DEFERRED) else _script_hash(str(s))
              for s in scripts if not (plotly and s in (PLOTLY, PLOTLY_DEFERRED))]
    policy = csp(hashes, connect)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{css}</style>" if css else "",
        "</head>",
        "<body>",
        body,
    ]
    if data is not None:
        parts.append(f'<script type="application/json" id="meridian-data">'
                     f"{json_for_script(data)}</script>")
    for script in scripts:
        if script is PLOTLY_DEFERRED and plotly:
            continue  # the page loads plotly.js from the shared file when it needs it
        if script is PLOTLY_DEFERRED:
            parts.append(f'<script type="text/plain" id="plotly-js">{plotly_js()}</script>')
        elif script is PLOTLY and plotly:
            parts.append(f'<script src="{html.escape(plotly, quote=True)}"></script>')
        else:
            parts.append(f"<script>{plotly_js() if script is PLOTLY else script}</script>")
    parts.append("</body>\n</html>\n")
    return "\n".join(part for part in parts if part)


def relative_href(target: Path, start: Path) -> str:
    """A relative URL from the folder ``start`` to the file ``target`` (percent-encoded)."""
    from urllib.parse import quote

    relative = os.path.relpath(target, start)
    return "/".join(quote(part) for part in Path(relative).as_posix().split("/"))
