"""Market data in, validated frames out: OHLCV bars, CFTC COT reports and bundled samples.

The bundled samples are SYNTHETIC (see :mod:`meridian.data._synthetic`): they let every
notebook and test run offline without pretending to be a real market.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from meridian import project
from meridian.data.cot import align_to_bars, attach_cot, cot_index, read_cot, release_dates
from meridian.data.ohlcv import check_frame, load_ohlcv, require_bars

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_OHLCV = SAMPLES_DIR / "sample_ohlcv.csv"
SAMPLE_COT = SAMPLES_DIR / "sample_cot.csv"
SAMPLE_NOTE = "SYNTHETIC sample data made by meridian.data._synthetic; not market data"

__all__ = [
    "SAMPLE_COT",
    "SAMPLE_OHLCV",
    "align_to_bars",
    "attach_cot",
    "cot_index",
    "load_market_data",
    "load_ohlcv",
    "load_sample",
    "read_cot",
    "release_dates",
    "resolve_data",
]


def load_sample(with_cot: bool = True) -> pd.DataFrame:
    """The bundled synthetic OHLCV, with the 156-week ``COT_Index`` attached by default.

    Parsed once per process (many backtests ask for it) and returned as a fresh copy, so
    callers may modify their frame freely. ``attrs["source"]`` says the data is synthetic.
    """
    return _cached_sample(bool(with_cot)).copy()


@lru_cache(maxsize=2)
def _cached_sample(with_cot: bool) -> pd.DataFrame:
    frame = load_ohlcv(SAMPLE_OHLCV)
    if with_cot:
        frame = attach_cot(frame, SAMPLE_COT)
    frame.attrs["source"] = SAMPLE_NOTE
    return frame


def load_market_data(
    data_path: str | Path = "", cot_path: str | Path = "", cot_market: str = "",
    cot_group: str = "commercials", cot_releases: str | Path = "",
) -> tuple[pd.DataFrame, str]:
    """Prices (and COT index when available) the way notebooks and the API ask for them.

    Empty ``data_path`` → the project's default file (``[tool.meridian] data``, with its
    ``cot`` unless ``cot_path`` is given) or else the bundled synthetic sample, with its own COT
    unless ``cot_path`` names another file. Your own prices get a ``COT_Index`` only from a
    ``cot_path`` you give (``cot_market`` picks the market in a multi-market CFTC file); without
    one the COT filter is off. ``cot_group`` picks the trader group of the index and
    ``cot_releases`` a release table of yours (see :func:`attach_cot`). Returns the frame and a
    one-line note saying which COT source is in use.
    """
    if not str(data_path):
        default, default_cot = project.default_data()
        if default is not None:
            data_path, cot_path = default, cot_path or default_cot or ""
    if not str(data_path):
        frame = load_sample(with_cot=not str(cot_path))
        note = "SYNTHETIC sample prices"
        if not str(cot_path):
            return _noted(frame, f"{note} with the bundled sample COT index")
    else:
        frame = load_ohlcv(data_path)
        note = f"prices from {data_path}"
        if not str(cot_path):
            return _noted(frame, f"{note}; no COT file given, so the COT filter is off")
    frame = attach_cot(frame, cot_path, market=cot_market or None, group=cot_group,
                       releases=cot_releases or None)
    group = "" if cot_group == "commercials" else f" ({cot_group})"
    return _noted(frame, f"{note} with the COT index{group} from {cot_path}")


def _noted(frame: pd.DataFrame, note: str) -> tuple[pd.DataFrame, str]:
    frame.attrs["note"] = note  # runs record it with the data's path, hash and span
    return frame, note


def resolve_data(data: pd.DataFrame | str | Path | None) -> pd.DataFrame:
    """Validated bars: a frame as given (:func:`check_frame`: the checks
    a file gets); a path → ``load_ohlcv``; ``None`` → the project's default data
    (``[tool.meridian] data``, with its ``cot``) or else the bundled synthetic sample. Fewer
    than :data:`~meridian.data.ohlcv.MIN_BARS` bars is a one-line DataError either way."""
    if data is None or (isinstance(data, str) and not data):
        frame, label = load_market_data()[0], "the default data"
    elif isinstance(data, str | Path):
        frame, label = load_ohlcv(data), str(data)
    else:
        return check_frame(data)
    require_bars(frame, label)
    return frame
