"""``RunRecord``: the one shape of a run, whatever made it (notebook, API, ``%%backtest``,
sweep), with its JSON form, the one JSON cleaner and the one equity downsampler.

A record is what a quant needs to trust and reproduce a result: parameters and metrics, the
equity curve and trades, and provenance — the engine settings it ran with, the data file's
path, SHA-256 and span, the notebook's or module's SHA-256, the git commit (and whether the
work tree was dirty) when inside a repository, and the Python and key package versions.
``to_dict()`` is what the registry stores and ``meridian runs export`` writes;
``RunRecord.from_dict`` reads any of them back.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import time
import traceback as traceback_module
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meridian.engine._trades import TRADE_COLUMNS
from meridian.engine.metrics import format_metrics, returns_from_equity
from meridian.exceptions import RegistryError

EQUITY_POINTS = 500
"""Points kept of a curve wherever a downsampled one is enough (a sweep's stitched curve)."""
SCRAP = "record"
"""The scrap an executed notebook holds its run's record in (:meth:`RunRecord.glue`)."""
KEY_PACKAGES = ("meridian", "numpy", "pandas", "plotly", "papermill", "jupytext", "nbconvert",
                "scrapbook", "pyarrow")


def clean_json(value: Any, where: str = "record") -> Any:
    """``value`` as strict-JSON-ready Python: NaN/inf → None, numpy scalars → Python, tuples →
    lists, paths and times → strings. Anything else is refused, naming where it sits."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):  # numpy's float64 too: a plain float comes back
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        with suppress(TypeError, ValueError):
            return clean_json(value.item(), where)
    raise RegistryError(f"{where} holds a {type(value).__name__}, which cannot be stored as JSON")


def strict_json(value: Any, where: str = "record") -> str:
    """``value`` as compact strict JSON text (what :func:`clean_json` makes of it). Values that
    are JSON already go straight through the C encoder; only the others (NaN, numpy scalars,
    paths, times) take the slow path."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps(clean_json(value, where), allow_nan=False, separators=(",", ":"))


def kept_positions(length: int, points: int) -> np.ndarray | None:
    """The positions an evenly thinned curve of ``length`` keeps (``points`` at most, first
    and last included); None when it keeps all. The one rule every copy of a curve follows:
    a run's record, its registry row and the runs page's comparison."""
    if length <= points:
        return None
    return np.unique(np.linspace(0, length - 1, points).round().astype(int))


def downsample(equity: Any, points: int = EQUITY_POINTS) -> dict[str, list]:
    """``{"index": [ISO 8601], "values": [float]}`` with at most ``points`` evenly spaced
    samples, first and last kept: enough to draw a curve, small enough to store everywhere.
    Takes a Series or an ``{"index", "values"}`` dict."""
    if equity is None:
        return {"index": [], "values": []}
    if isinstance(equity, pd.Series):
        equity = {"index": [ts.isoformat() for ts in equity.index],
                  "values": equity.to_numpy(dtype=float).tolist()}
    if not isinstance(equity, Mapping) or not {"index", "values"} <= set(equity):
        raise RegistryError('equity must be a dict with "index" and "values" lists')
    index, values = list(equity["index"]), list(equity["values"])
    if len(index) != len(values):
        raise RegistryError(f"equity has {len(index)} index entries but {len(values)} values")
    keep = kept_positions(len(index), points)
    if keep is not None:
        index, values = [index[i] for i in keep], [values[i] for i in keep]
    if not all(type(v) is float and math.isfinite(v) for v in values):
        values = clean_json(values, "equity.values")
    if not all(type(i) is str for i in index):
        index = clean_json(index, "equity.index")
    return {"index": index, "values": values}


def series_to_dict(series: pd.Series) -> dict:
    return {"index": [ts.isoformat() for ts in series.index],
            "values": [None if not math.isfinite(v) else v
                       for v in series.to_numpy(dtype=float).tolist()]}


def series_from_dict(payload: Mapping | None, name: str) -> pd.Series:
    """The inverse of :func:`series_to_dict` (``{"index": [ISO 8601], "values": [float |
    None]}``, None → NaN): how every reader turns a stored curve back into a Series."""
    payload = payload or {}
    index = pd.DatetimeIndex(pd.to_datetime(list(payload.get("index") or []),
                                            format="ISO8601"), name="Date")
    values = [np.nan if v is None else v for v in payload.get("values") or []]
    return pd.Series(np.asarray(values, dtype=float), index=index, name=name)


@functools.cache
def _packages() -> dict[str, str]:
    found = {}
    for name in KEY_PACKAGES:
        with suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _git(folder: Path) -> dict[str, Any] | None:
    """The commit checked out at ``folder`` and whether the work tree has changes; None
    outside a repository (or without git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


_git_seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
GIT_TTL = 5.0
"""Seconds a folder's git state is reused: many backtests a second need not each run git."""


def environment(where: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Python, platform, key package versions and the git state of ``where`` (default: the
    current directory)."""
    folder = str(Path(where or Path.cwd()).absolute())
    seen = _git_seen.get(folder)
    if seen is None or time.monotonic() - seen[0] > GIT_TTL:
        seen = _git_seen[folder] = (time.monotonic(), _git(Path(folder)))
    return {"python": platform.python_version(), "platform": _platform(),
            "packages": dict(_packages()), "git": seen[1]}


@functools.cache
def _platform() -> str:
    return platform.platform(terse=True)


def data_provenance(frame: pd.DataFrame, periods_per_year: float | None = None
                    ) -> dict[str, Any]:
    """Where the bars came from (path and SHA-256 as loaded), how many, from when to when,
    their frequency in words and the bars per year the run annualizes with
    (``periods_per_year``: the setting when set, else inferred from the bars' spacing)."""
    from meridian.data.ohlcv import bar_frequency
    from meridian.engine.metrics import infer_periods_per_year

    info = {"bars": len(frame),
            "first": frame.index[0].isoformat() if len(frame) else None,
            "last": frame.index[-1].isoformat() if len(frame) else None,
            "frequency": bar_frequency(frame.index),
            "periods_per_year": float(periods_per_year or infer_periods_per_year(frame.index))}
    for key in ("path", "sha256", "cot_path", "cot_sha256", "cot_calendar", "source", "note"):
        if frame.attrs.get(key):
            info[key] = frame.attrs[key]
    return info


def data_label(data: Mapping[str, Any] | None) -> str:
    """Which data a run used, in a few words: the file name (``sample`` for the bundled
    synthetic bars, ``universe NAME`` for a portfolio) and its span, e.g.
    ``spx.csv 1999-01-04→2018-12-31``; ``—`` when the record does not say."""
    data = data or {}
    markets = data.get("markets")
    if markets:
        firsts = [m.get("first") for m in markets.values() if m.get("first")]
        lasts = [m.get("last") for m in markets.values() if m.get("last")]
        name = f"{len(markets)} markets"
    else:
        firsts, lasts = [data.get("first")] if data.get("first") else [], \
            [data.get("last")] if data.get("last") else []
        path = str(data.get("path") or "")
        name = "sample" if "samples" in Path(path).parts or data.get("source") and not path \
            else (Path(path).name or "—")
    span = f" {min(firsts)[:10]}→{max(lasts)[:10]}" if firsts and lasts else ""
    return f"{name}{span}"


def data_identity(data: Mapping[str, Any] | None) -> str:
    """What a run's data is, whatever its span: the file's SHA-256 when recorded (else its
    path or source), one per market for a portfolio. Two runs on the same file agree."""
    data = data or {}
    markets = data.get("markets") or {}
    if markets:
        return ";".join(f"{k}={m.get('sha256') or m.get('path')}"
                        for k, m in sorted(markets.items()))
    return str(data.get("sha256") or data.get("path") or data.get("source") or "")


def data_differences(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """One line when ``runs`` did not all use the same data: different files (by SHA-256
    when recorded, else by name) or different spans; None when they agree."""
    records = [dict(r.get("data") or {}) for r in runs]
    labels = [data_label(d) for d in records]
    if len({data_identity(d) for d in records}) > 1:
        what = "different data"
    elif len(set(labels)) > 1:
        what = "the same data over different spans"
    else:
        return None
    shown = "; ".join(f"{str(r.get('run_id', ''))[:8]} {label}" for r, label in
                      zip(runs, labels, strict=True))
    return f"warning: these runs used {what}, so their curves and metrics differ for that too: " \
           f"{shown}"


def markets_provenance(frames: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """A portfolio's data: each market's :func:`data_provenance`."""
    return {"markets": {name: data_provenance(frame) for name, frame in frames.items()}}


@dataclass
class RunRecord:
    """One run: what it was (strategy, parameters, settings, data, code, environment), what it
    gave (metrics, equity, trades, status, error) and how it is filed (kind, name, tags, note,
    parent). ``BacktestResult`` in :mod:`meridian.api` is this class."""

    run_id: str
    timestamp: str
    strategy_name: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    equity: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    drawdown: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    trades: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRADE_COLUMNS))
    logs: list[str] = field(default_factory=list)
    status: str = "success"
    error: str | None = None
    traceback: str | None = None
    kind: str = "api"
    name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    changed: list[str] | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""
    parent_id: str | None = None
    universe: dict[str, Any] | None = None
    """A portfolio run's universe: name, file, SHA-256 and markets."""
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """A portfolio run's per-market results: trades, P&L, costs, contribution, margin cuts."""
    prices: pd.DataFrame | None = field(default=None, repr=False)
    """The bars it ran on (for reports; never stored)."""
    portfolio: Any = field(default=None, repr=False)
    """A portfolio run's :class:`~meridian.engine.portfolio.PortfolioResult` (per-market
    positions, P&L and costs per bar; never stored)."""
    duration: float | None = None
    """Seconds the run took (``meridian run``, sweeps: set by whoever timed it)."""
    notebook_path: str | None = None
    """The executed notebook of a ``meridian run``."""
    report_path: str | None = None
    """Its HTML report."""
    source: str | None = None
    """A ``%%backtest`` cell's text, as written."""

    @property
    def returns(self) -> pd.Series:
        """Bar returns ``r_t = E_t / E_{t−1} − 1``, the first against the initial capital:
        the series the Sharpe ratio, PSR and DSR (:mod:`meridian.stats`) measure."""
        if self.equity.empty:
            return pd.Series(dtype=float, name="returns")
        equity = self.equity.to_numpy(dtype=float)
        capital = float(self.settings.get("initial_capital") or equity[0])
        return pd.Series(returns_from_equity(equity, capital), index=self.equity.index,
                         name="returns")

    def to_dict(self) -> dict:
        """The JSON form (strict JSON: timestamps as ISO 8601, undefined values as null)."""
        trades = self.trades.copy()
        for column in ("entry_time", "exit_time"):
            if column in trades:
                trades[column] = [pd.Timestamp(ts).isoformat() for ts in trades[column]]
        return clean_json({
            "run_id": self.run_id, "timestamp": self.timestamp,
            "strategy_name": self.strategy_name, "kind": self.kind, "name": self.name,
            "status": self.status, "error": self.error, "traceback": self.traceback,
            "params": dict(self.params), "changed": self.changed,
            "metrics": dict(self.metrics),
            "equity": series_to_dict(self.equity), "drawdown": series_to_dict(self.drawdown),
            "trades": trades.to_dict("records"), "trades_count": len(self.trades),
            "logs": list(self.logs), "settings": dict(self.settings), "data": dict(self.data),
            "code": dict(self.code), "environment": dict(self.environment),
            "tags": list(self.tags), "note": self.note, "parent_id": self.parent_id,
            "universe": dict(self.universe) if self.universe else None,
            "markets": dict(self.markets), "duration": self.duration,
            "notebook_path": self.notebook_path, "report_path": self.report_path,
            "source": self.source,
        })

    @classmethod
    def of(cls, run: RunRecord | Mapping[str, Any]) -> RunRecord:
        """``run`` as a RunRecord: itself, or a registry record / ``to_dict()`` dict read
        back (what charts and summaries accept)."""
        return run if isinstance(run, RunRecord) else cls.from_dict(run)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RunRecord:
        """The inverse of :meth:`to_dict`; also reads registry records (which keep no
        trades and a downsampled curve)."""
        columns = list(dict.fromkeys([*TRADE_COLUMNS, *(
            key for row in payload.get("trades") or [] for key in row)]))
        trades = pd.DataFrame(payload.get("trades") or [], columns=columns)
        for column in ("entry_time", "exit_time"):
            trades[column] = pd.to_datetime(trades[column])
        return cls(
            run_id=payload["run_id"], timestamp=payload.get("timestamp") or "",
            strategy_name=payload["strategy_name"], params=dict(payload.get("params") or {}),
            metrics={k: (math.nan if v is None else float(v))
                     for k, v in (payload.get("metrics") or {}).items()},
            equity=series_from_dict(payload.get("equity"), "equity"),
            drawdown=series_from_dict(payload.get("drawdown"), "drawdown"),
            trades=trades, logs=list(payload.get("logs") or []),
            status=payload.get("status") or "success", error=payload.get("error"),
            traceback=payload.get("traceback"), kind=payload.get("kind") or "api",
            name=payload.get("name"), settings=dict(payload.get("settings") or {}),
            data=dict(payload.get("data") or {}), code=dict(payload.get("code") or {}),
            environment=dict(payload.get("environment") or {}),
            changed=payload.get("changed"), tags=list(payload.get("tags") or []),
            note=payload.get("note") or "", parent_id=payload.get("parent_id"),
            universe=payload.get("universe") or None, markets=dict(payload.get("markets") or {}),
            duration=payload.get("duration"), notebook_path=payload.get("notebook_path"),
            report_path=payload.get("report_path"), source=payload.get("source"),
        )

    def glue(self) -> None:
        """Record this run in the executing notebook (``scrapbook.glue("record", ...)``): the
        one record ``meridian run`` files, so the kernel and the registry share one shape;
        the pipeline adds only its own bookkeeping (status, duration, paths)."""
        import scrapbook as sb

        sb.glue(SCRAP, {k: v for k, v in self.to_dict().items() if k != "drawdown"})

    def fail(self, error: BaseException) -> RunRecord:
        """Record ``error`` (the exception being handled) as this run's failure."""
        self.status = "failed"
        self.error = f"{type(error).__name__}: {error}"
        self.traceback = traceback_module.format_exc()
        self.logs.append(self.traceback)
        return self

    def summary(self) -> str:
        """Metrics as aligned text lines, for terminals."""
        head = f"{self.strategy_name} {self.params}  [{self.status}]  run {self.run_id}"
        if self.status != "success":
            return f"{head}\n  error: {self.error}"
        lines = [head, format_metrics(self.metrics)]
        if self.universe:
            lines.append(f"  universe {self.universe.get('name')}: "
                         + "; ".join(f"{name} {row.get('trades') or 0:.0f} trades, P&L "
                                     f"{row.get('pnl') or 0:,.0f}"
                                     for name, row in self.markets.items()))
        return "\n".join(lines)


STORED_APART = ("drawdown", "trades")
"""Keys of :meth:`RunRecord.to_dict` kept in the run's file but not in its registry row."""


@functools.cache
def _blank() -> dict[str, Any]:
    blank = RunRecord(run_id=None, timestamp=None, strategy_name=None, params={},  # type: ignore[arg-type]
                      status=None)  # type: ignore[arg-type]
    values = blank.to_dict()
    values["trades_count"] = None
    return {k: v for k, v in values.items() if k not in STORED_APART}


@functools.cache
def record_keys() -> tuple[str, ...]:
    """Every key a stored record has, in order (:meth:`RunRecord.to_dict` less
    :data:`STORED_APART`)."""
    return tuple(_blank())


def missing_value(key: str) -> Any:
    """The value of ``key`` in a record that was saved without it: RunRecord's own default
    (a fresh copy of an empty dict or list), None for a key it does not know."""
    value = _blank().get(key)
    return type(value)(value) if isinstance(value, dict | list) else value
