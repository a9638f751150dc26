"""``meridian ui``: the runs page as a live local app (Starlette on uvicorn).

The page is the static dashboard's own source (:mod:`meridian.dashboard.page`), served with
``source: "live"``: rows come from ``/api/runs``, paged, sorted and filtered in SQLite, so the
first rows of a 100,000-run registry arrive in a fraction of a second. The page polls
``/api/stamp`` (the registry file's size and time) and refreshes when any process — the CLI,
a notebook, ``%%backtest``, this app — changed the registry.

Reading endpoints are plain functions (Starlette runs them in its thread pool), so a slow
query never holds up another request; each call opens its own SQLite connection.

Security, as Jupyter does it and then some: the server listens on 127.0.0.1 only and prints a
URL with a random token. What it trusts:

* **The token header.** Data (``/api/...``) answers only a request carrying the
  ``X-Meridian-Token`` header (or the URL's ``?token=``); a page on another site cannot set it
  without a CORS preflight this app never grants. Requests that change anything must be
  ``POST`` with the header and an ``Origin`` equal to the app's own.
* **The cookie, only for the browser's own navigation.** Pages and files opened by URL carry
  the token as a cookie (set from ``?token=``). Cookies are not port-isolated — every server on
  127.0.0.1 receives them — so the cookie counts only on a request the browser marks as
  same-origin or as the user's own top-level navigation (``Sec-Fetch-*``): another local page
  cannot ``<script src>`` or ``fetch`` anything with it.
* **Nothing in a file.** Pages under ``/files/`` (reports, sweep pages: what notebooks and
  records produced) are served in a CSP sandbox — an origin of their own, so no script in one
  can read the app or the token — and no page can be framed. Request bodies are limited
  (:data:`MAX_BODY`, 413).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from meridian import _process, project
from meridian.dashboard import notebooks, reruns
from meridian.dashboard.page import (
    COLUMNS_SQL,
    chunks_of,
    details_payload,
    refresh_dashboard,
    render_page,
    rows_payload,
    shell_data,
)
from meridian.engine.metrics import METRIC_NAMES
from meridian.exceptions import (
    MeridianError,
    NotebookEditError,
    NotebookNotFoundError,
    ParameterError,
    PortInUseError,
    RegistryError,
    RunNotFoundError,
)
from meridian.registry.query import tag_clause, text_clauses
from meridian.storage import Registry, delete_runs, load_run_by_id, metric_bound, tag_run

MAX_PAGE = 1_000
MAX_BODY = 4 * 1024 * 1024
"""Largest request body (a notebook save included); a larger one is refused with 413."""
DRAIN_LIMIT = 64 * 1024 * 1024
"""Beyond this, an oversized body is not even read to the end (the connection is closed)."""
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
"""On every response: no framing, no MIME sniffing, no cross-origin reads of any resource."""
FILE_POLICY = ("sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox "
               "allow-downloads; frame-ancestors 'none'")
"""The CSP header of a page under ``/files/``: an opaque origin of its own."""
PUBLIC = ("assets/",)
"""Files under ``/files/`` anyone may read: the shared plotly.js a sandboxed report loads
(a library, nothing of the user's)."""
SORTS = {
    "run": "run_id", "strategy": "lower(strategy_name || ' ' || ifnull(name, ''))",
    "params": "params", "status": "status",
    "data": "lower(ifnull(json_extract(extra, '$.data.path'), '') || "
            "ifnull(json_extract(extra, '$.data.first'), ''))",
    "report": "(json_extract(extra, '$.report_path') IS NOT NULL)",
}
OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class UiError(Exception):
    """A request the app refuses: its HTTP status and one line."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}


def _metric_path(name: str) -> str:
    if name not in METRIC_NAMES:
        raise UiError(400, f"unknown metric {name!r}; valid: {', '.join(METRIC_NAMES)}")
    return f'$."{name}"'


def query_runs(args: dict[str, str]) -> tuple[str, list[Any], str, list[Any]]:
    """The WHERE clause and its arguments, the ORDER BY and its arguments, of a page
    request (the filters and sorts the page offers, as SQL)."""
    clauses: list[str] = []
    values: list[Any] = []
    for column in ("strategy", "status"):
        if args.get(column):
            clauses.append(f"{'strategy_name' if column == 'strategy' else 'status'} = ?")
            values.append(args[column])
    if args.get("universe"):
        clauses.append("json_extract(extra, '$.universe.name') = ?")
        values.append(args["universe"])
    if args.get("tag"):
        clause, clause_args = tag_clause(args["tag"])
        clauses.append(clause)
        values += clause_args
    if args.get("metric"):
        op = OPS.get(args.get("op", ""))
        try:
            bound = metric_bound(args.get("value", ""), "threshold value")
        except ParameterError as error:
            raise UiError(400, str(error)) from None
        if op is None:
            raise UiError(400, f"threshold op {args.get('op')!r}: use one of {', '.join(OPS)}")
        clauses.append(f"json_extract(metrics, ?) {op} ?")
        values += [_metric_path(args["metric"]), bound]
    try:  # the one filter grammar: fld_offset=15 sharpe_ratio>1 tag:keeper words
        words, word_values = text_clauses(args.get("q") or "")
    except RegistryError as error:
        raise UiError(400, str(error)) from None
    clauses += words
    values += word_values
    sort = args.get("sort") or "time"
    direction = "ASC" if args.get("dir") == "1" else "DESC"
    if sort == "time":
        return " AND ".join(clauses), values, f"timestamp {direction}, seq {direction}", []
    if sort.startswith("m:"):
        key, order_values = "json_extract(metrics, ?)", [_metric_path(sort[2:])] * 2
    elif sort in SORTS:
        key, order_values = SORTS[sort], []
    else:
        raise UiError(400, f"cannot sort by {sort!r}")
    # missing values last, ties in the registry's order (newest first)
    order = f"({key}) IS NULL, {key} {direction}, timestamp DESC, seq DESC"
    return " AND ".join(clauses), values, order, order_values


class App:
    """The state of one ``meridian ui``: its folder, token, origin and re-run queue."""

    def __init__(self, out: Path, token: str, port: int):
        self.out, self.token, self.port = out, token, port
        self.origins = {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        self.registry = Registry(out)
        self.queue = reruns.Queue(out, on_change=self.changed)
        self.notebooks = notebooks.Notebooks(out)
        self._facets: tuple[Any, dict] | None = None

    def changed(self, run_ids: list[str]) -> None:
        """Keep the static index.html in step with what the app changed."""
        refresh_dashboard(self.out, run_ids=run_ids)

    # ------------------------------------------------------------------ access
    def _authorized(self, request: Request, cookie: bool) -> bool:
        given = (request.headers.get("x-meridian-token") or request.query_params.get("token")
                 or (request.cookies.get(self.cookie) if cookie else None) or "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _own_navigation(request: Request) -> bool:
        """Whether the browser says this request is same-origin, or the user's own top-level
        navigation (typed, bookmarked, a link followed): the only requests the cookie is good
        for. A page on another 127.0.0.1 port gets ``same-site`` for its scripts and fetches."""
        headers = request.headers
        site = headers.get("sec-fetch-site")
        if site in ("same-origin", "none"):
            return True
        return (headers.get("sec-fetch-mode") == "navigate"
                and headers.get("sec-fetch-dest") == "document")

    @property
    def cookie(self) -> str:
        return f"meridian-token-{self.port}"

    def guard(self, request: Request, changes: bool = False, data: bool = False) -> None:
        """Refuse what lacks the token (401) or has a wrong one (403). ``data``: an API
        endpoint, answered on the header (or ``?token=``) only, never on the cookie alone;
        ``changes``: also the header and the app's own Origin."""
        cookie = not data and self._own_navigation(request)
        if not any((request.headers.get("x-meridian-token"), request.query_params.get("token"),
                    cookie and request.cookies.get(self.cookie))):
            raise UiError(401, "meridian ui: this needs the token (the X-Meridian-Token header; "
                               "pages: open the URL the server printed when it started)")
        if not self._authorized(request, cookie):
            raise UiError(403, "meridian ui: wrong token")
        if changes:
            header = request.headers.get("x-meridian-token") or ""
            if not hmac.compare_digest(header.encode(), self.token.encode()):
                raise UiError(403, "meridian ui: a change needs the X-Meridian-Token header")
            if request.headers.get("origin") not in self.origins:
                raise UiError(403, "meridian ui: a change must come from the app's own page "
                                   f"(origin {request.headers.get('origin')!r})")

    # ------------------------------------------------------------------ pages
    def _token_in_url(self, request: Request) -> Response | None:
        """A page opened with ``?token=``: keep the token in a cookie, out of the address
        bar (and out of the history), and show the same page without it."""
        if "token" not in request.query_params:
            return None
        response = RedirectResponse(request.url.path, status_code=303)
        # lax: a link followed from a report (its own sandboxed origin) still opens the page
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="lax")
        return response

    def index(self, request: Request) -> Response:
        self.guard(request)
        if (redirect := self._token_in_url(request)) is not None:
            return redirect
        data = shell_data(self.out, live=True, extra={"token": self.token})
        return HTMLResponse(render_page(data, live=True),
                            headers={"Cache-Control": "no-store"})

    def notebook_list(self, request: Request) -> Response:
        self.guard(request)
        if (redirect := self._token_in_url(request)) is not None:
            return redirect
        data = {"token": self.token, "notebooks": notebooks.listing()}
        return HTMLResponse(notebooks.render(data, self.out),
                            headers={"Cache-Control": "no-store"})

    def notebook_page(self, request: Request) -> Response:
        self.guard(request)
        if (redirect := self._token_in_url(request)) is not None:
            return redirect
        name = request.path_params["name"]
        data = {**notebooks.view(name), "token": self.token,
                "notebooks": notebooks.listing()}
        self.notebooks.warm(name)
        return HTMLResponse(notebooks.render(data, self.out),
                            headers={"Cache-Control": "no-store"})

    def files(self, request: Request) -> Response:
        path = request.path_params["path"]
        root = self.out.resolve()
        target = (root / path).resolve()
        public = target.is_relative_to(root / PUBLIC[0])
        if not public:
            self.guard(request)
        if path == "index.html":  # the static page reads its rows from script files: the
            return RedirectResponse("/", status_code=303)  # live page is the same, from JSON
        if not target.is_relative_to(root) or not target.is_file():
            raise UiError(404, f"no file {path!r} in {self.out}")
        headers = {"Content-Security-Policy": FILE_POLICY} \
            if target.suffix.lower() in (".html", ".htm", ".svg") else {}
        if public:  # loaded by sandboxed pages, whose origin is nobody's
            headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return FileResponse(target, headers=headers)

    # ------------------------------------------------------------------ reading
    def runs(self, request: Request) -> Response:
        self.guard(request, data=True)
        args = dict(request.query_params)
        try:
            offset = max(0, int(args.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(args.get("limit", 200))))
        except ValueError:
            raise UiError(400, "offset and limit must be whole numbers") from None
        where, filter_values, order, order_values = query_runs(args)
        clause = f"WHERE {where}" if where else ""
        rows = self.registry.query(
            f"SELECT {COLUMNS_SQL} FROM runs {clause} ORDER BY {order} LIMIT ? OFFSET ?",
            [*filter_values, *order_values, limit, offset])
        total = self.registry.query("SELECT count(*) FROM runs")
        matching = self.registry.query(f"SELECT count(*) FROM runs {clause}", filter_values) \
            if where else total
        return JSONResponse({"rows": rows_payload(rows, self.out),
                             "total": total[0][0] if total else 0,
                             "matching": matching[0][0] if matching else 0})

    def stamp(self) -> str:
        parts = []
        for suffix in ("", "-wal"):
            try:
                status = os.stat(f"{self.registry.path}{suffix}")
                parts.append(f"{status.st_mtime_ns}.{status.st_size}")
            except OSError:
                parts.append("-")
        return ":".join(parts)

    def stamp_route(self, request: Request) -> Response:
        self.guard(request, data=True)
        return JSONResponse({"stamp": self.stamp()})

    def facets(self, request: Request) -> Response:
        self.guard(request, data=True)
        stamp = self.stamp()
        if self._facets is None or self._facets[0] != stamp:
            query = self.registry.query
            counts = {
                "strategies": {r[0]: r[1] for r in query(
                    "SELECT strategy_name, count(*) FROM runs GROUP BY strategy_name")},
                "statuses": {r[0]: r[1] for r in query(
                    "SELECT status, count(*) FROM runs GROUP BY status")},
                "universes": {r[0]: r[1] for r in query(
                    "SELECT json_extract(extra, '$.universe.name') AS u, count(*) FROM runs "
                    "WHERE u IS NOT NULL GROUP BY u")},
                "tags": {r[0]: r[1] for r in query(
                    "SELECT value, count(*) FROM runs, json_each(runs.extra, '$.tags') "
                    "GROUP BY value")},
            }
            counts["total"] = sum(counts["statuses"].values())
            self._facets = (stamp, counts)
        return JSONResponse(self._facets[1])

    def _record(self, run_id: str) -> dict:
        try:
            return load_run_by_id(run_id, self.out)
        except RunNotFoundError:
            raise UiError(404, f"no run {run_id!r} (deleted?)") from None

    def run(self, request: Request) -> Response:
        self.guard(request, data=True)
        record = self._record(request.path_params["run_id"])
        rows = self.registry.query(f"SELECT {COLUMNS_SQL}, equity FROM runs WHERE run_id = ?",
                                   (record["run_id"],))
        if not rows:
            raise UiError(404, f"no run {record['run_id']!r} (deleted?)")
        return JSONResponse({**details_payload(rows), "rerun": reruns.form(record)})

    # ------------------------------------------------------------------ changes
    async def _body(self, request: Request) -> dict:
        chunks, size = [], 0
        stream = request.stream()
        async for chunk in stream:  # counted as it comes, whatever it declares
            size += len(chunk)
            if size > MAX_BODY:
                await _drain(request, stream, size)
                raise UiError(413, f"the request body is larger than {MAX_BODY:,} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except (ValueError, RecursionError):
            raise UiError(400, "the request body is not JSON (or nests too deeply)") from None
        if not isinstance(body, dict):
            raise UiError(400, "the request body must be a JSON object")
        return body

    def change(self, handler: Callable[[dict, dict], Response]
               ) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint of a route that changes something: the token header and origin are
        checked, the JSON body read, then ``handler(body, path_params)`` runs in the thread
        pool (SQLite, re-runs and kernels block)."""
        async def endpoint(request: Request) -> Response:
            self.guard(request, changes=True)
            body = await self._body(request)
            return await run_in_threadpool(handler, body, request.path_params)
        return endpoint

    def delete(self, body: dict, path: dict) -> Response:
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise UiError(400, 'give the runs to delete as {"ids": ["<run id>", ...]}')
        chunks = chunks_of(ids, self.out)
        deleted = delete_runs(ids, self.out)  # one unknown id deletes nothing (404)
        refresh_dashboard(self.out, chunks=chunks)
        return JSONResponse({"deleted": [r["run_id"] for r in deleted]})

    def tags(self, body: dict, path: dict) -> Response:
        record = self._record(path["run_id"])
        wanted = body.get("tags") or []
        note = body.get("note")
        if not isinstance(wanted, list) or not all(isinstance(t, str) for t in wanted):
            raise UiError(400, "tags must be a list of words", {"tags": "a list of words"})
        if note is not None and not isinstance(note, str):
            raise UiError(400, "note must be text", {"note": "text"})
        current = list(record.get("tags") or [])
        try:  # one change of the tags and note, whatever else changes the run meanwhile
            updated = tag_run(record["run_id"], [t for t in wanted if t not in current], note,
                              self.out, untag=[t for t in current if t not in wanted])
        except MeridianError as error:
            raise UiError(400, str(error), {"tags": str(error)}) from None
        self.changed([record["run_id"]])
        return JSONResponse({"tags": updated["tags"], "note": updated.get("note") or ""})

    def rerun(self, body: dict, path: dict) -> Response:
        record = self._record(path["run_id"])
        texts = body.get("params") or {}
        if not isinstance(texts, dict):
            raise UiError(400, 'give the parameters as {"params": {"name": "value"}}')
        try:
            overrides = reruns.check(record, {str(k): str(v) for k, v in texts.items()})
            run_id = self.queue.submit(record, overrides)
        except reruns.FormErrors as errors:
            raise UiError(400, errors.message, errors.fields) from None
        except MeridianError as error:
            raise UiError(400, str(error)) from None
        return JSONResponse({"run_id": run_id, "overrides": overrides})

    # ------------------------------------------------------------------ notebooks
    def notebook_view(self, request: Request) -> Response:
        self.guard(request, data=True)
        name = request.path_params["name"]
        if request.query_params.get("only") == "sha256":  # the page's poll: cheap
            return JSONResponse({"sha256": notebooks.file_sha256(name)})
        return JSONResponse(notebooks.view(name))

    def notebook_action(self, body: dict, path: dict) -> Response:
        name, action = path["name"], path["action"]
        handlers = {"run": self.notebooks.run, "save": self.notebooks.save,
                    "extract": lambda name, body: self.notebooks.extract(name),
                    "restart": lambda name, body: self.notebooks.restart(name)}
        if action not in handlers:
            raise UiError(404, f"no notebook action {action!r}; actions: {', '.join(handlers)}")
        try:
            result = handlers[action](name, body)
        except reruns.FormErrors as errors:
            raise UiError(400, errors.message, errors.fields) from None
        except NotebookEditError as error:
            raise UiError(409, str(error)) from None
        return JSONResponse(result)  # a run refreshed index.html itself, as %%backtest does


def create_app(out: Path, token: str | None = None, port: int = 0) -> tuple[Starlette, App]:
    """The ASGI app for ``out`` and its state (the token is random unless given)."""
    state = App(out, token or secrets.token_urlsafe(24), port)

    async def failed(request: Request, error: Exception) -> Response:
        if isinstance(error, UiError):
            return JSONResponse({"error": error.message, "errors": error.fields},
                                status_code=error.status)
        if isinstance(error, RunNotFoundError | NotebookNotFoundError):
            return JSONResponse({"error": str(error)}, status_code=404)
        if isinstance(error, MeridianError):
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"error": f"{type(error).__name__}: {error}"}, status_code=500)

    routes = [
        Route("/", state.index),
        Route("/files/{path:path}", state.files),
        Route("/api/runs", state.runs),
        Route("/api/stamp", state.stamp_route),
        Route("/api/facets", state.facets),
        Route("/api/runs/{run_id}", state.run),
        Route("/api/delete", state.change(state.delete), methods=["POST"]),
        Route("/api/runs/{run_id}/tags", state.change(state.tags), methods=["POST"]),
        Route("/api/runs/{run_id}/rerun", state.change(state.rerun), methods=["POST"]),
        Route("/notebooks", state.notebook_list),
        Route("/notebooks/{name}", state.notebook_page),
        Route("/api/notebooks/{name}", state.notebook_view),
        Route("/api/notebooks/{name}/{action}", state.change(state.notebook_action),
              methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={Exception: failed, UiError: failed,
                                                       MeridianError: failed},
                    middleware=[Middleware(SecureHeaders)])
    return app, state


async def _drain(request: Request, stream, size: int) -> None:
    """Read and drop the rest of an oversized body (up to :data:`DRAIN_LIMIT`, memory
    bounded), so the client reads the 413 instead of a reset connection."""
    declared = request.headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return
    async for chunk in stream:
        size += len(chunk)
        if size > DRAIN_LIMIT:
            return


class SecureHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every response (a header the response
    set itself — a file's sandbox policy — is kept)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name.lower().encode(), value.encode())
                            for name, value in SECURITY_HEADERS.items()
                            if name.lower().encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)



def serve(output_dir: str | os.PathLike[str] | None = None, port: int = 8765,
          open_browser: bool = True, echo=print) -> list[str]:
    """Run ``meridian ui`` until Ctrl-C or SIGTERM; returns the re-runs marked interrupted.
    A port in use is one :class:`PortInUseError` line naming a free one."""
    import socket
    import webbrowser

    import uvicorn

    out = project.output_dir(output_dir)
    Registry(out).check()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        raise PortInUseError(f"port {port} on 127.0.0.1 is in use ({error.strerror}: another "
                             f"meridian ui?); try --port {free}, or --port 0 for any free "
                             "port") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    app, state = create_app(out, port=port)
    url = f"http://127.0.0.1:{port}/?token={state.token}"
    echo(f"meridian ui: serving {out}")
    echo(f"open {url}")
    echo("Ctrl-C stops it (queued re-runs are marked interrupted)")
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    with _process.sigterm_interrupts():
        try:
            server.run(sockets=[sock])  # returns on Ctrl-C or SIGTERM, then re-raises it
        except KeyboardInterrupt:
            pass  # that is how a server is stopped: not an error
        finally:
            state.notebooks.close()
            marked = state.queue.stop()
            if marked:
                refresh_dashboard(out, run_ids=marked)
            sock.close()
    echo("meridian ui: stopped")
    return marked
