"""Load OHLCV bars from the files people actually have: CSV exports and Parquet.

Every backtest starts here, so the loader is strict: a bad bar silently accepted becomes a
wrong equity curve later, far from its cause. Each problem is reported as one line naming the
file, the first offending row (1-based CSV line, header = line 1; 0-based row for Parquet),
its date when readable, and what a valid value looks like.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from meridian._files import check_unpacked, file_sha256
from meridian.exceptions import DataError

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
# Timestamp resolution of the running pandas (ns before 3.0, us since), so loaded frames line
# up with indexes users build with pd.date_range.
DEFAULT_UNIT: str = pd.date_range("2000-01-01", periods=1).unit

# Normalized header -> canonical name. Order inside each tuple is the preference order.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Open": ("open", "o", "open price", "opening price"),
    "High": ("high", "h", "high price"),
    "Low": ("low", "l", "low price"),
    "Close": ("close", "c", "close price", "closing price", "last", "close/last", "price"),
    "Volume": ("volume", "vol", "v", "vol.", "tickvol", "tick volume", "real volume"),
    "COT_Index": ("cot index",),
    "OpenInterest": ("openinterest", "open interest", "oi", "open int"),
    "UnadjustedClose": ("unadjustedclose", "unadjusted close"),  # a rolled futures series
}
_OPTIONAL = ("Volume", "COT_Index", "OpenInterest", "UnadjustedClose")  # may be empty
_STAMP_ALIASES = (
    "datetime", "date time", "timestamp", "time stamp", "open time", "date", "time", "dt",
    "day", "gmt time", "local time", "index",
)  # fmt: skip
_NULL_TOKENS = {"", "null", "nan", "na", "n/a", "none", "-"}
_CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".txt.gz", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read bars from CSV (.csv/.txt/.tsv, optionally .gz) or Parquet (.parquet/.pq).

    Returns a frame indexed by a sorted ``DatetimeIndex`` named ``Date`` with float columns
    ``Open, High, Low, Close``, plus ``Volume`` when the file has one, ``COT_Index`` when
    the user ships an aligned COT index, ``OpenInterest`` and ``UnadjustedClose`` (a rolled
    futures series, :mod:`meridian.data.roll`: contracts are sized on it). Other columns
    (``Adj Close`` ...) are dropped so that strategies can rely on the schema. A file entirely
    in descending time order (some portals export newest first) is reversed; any other
    disorder is an error.
    """
    if not isinstance(path, str | os.PathLike):
        raise DataError(f"load_ohlcv takes the path of a CSV or Parquet file, got a "
                        f"{type(path).__name__}")
    path = Path(path)
    label = str(path)
    if not path.is_file():
        where = ("is a directory" if path.is_dir() else "is not a regular file"
                 if path.exists() else "not found")
        raise DataError(f"{label}: file {where}; pass the path of a CSV or Parquet file")
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        raw, row_label = _read_parquet(path, label)
    elif name.endswith(_CSV_SUFFIXES) or "." not in name:
        if name.endswith(".gz"):
            _check_gzip(path, label)
        raw, row_label = _read_csv(path, label)
    else:
        raise DataError(
            f"{label}: unsupported file type; use .csv, .txt, .tsv (optionally .gz), "
            ".parquet or .pq"
        )
    frame = _build(raw, label, row_label)
    frame.attrs.update(path=str(path.absolute()), sha256=file_sha256(path))
    return frame


# --------------------------------------------------------------------------- reading


def _check_gzip(path: Path, label: str) -> None:
    """A readable gzip that unpacks to at most :data:`~meridian._files.MAX_UNPACKED` bytes,
    counted while streaming (nothing kept), before pandas unpacks it into memory."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                check_unpacked(total, label)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{label}: not a readable gzip file ({error})") from None


def _norm(name: object) -> str:
    """Canonical form of a header: case, blanks, quotes, <MT> brackets and _ don't matter."""
    text = str(name).strip().strip("\"'").strip().strip("<>").lower()
    if text.startswith("unnamed:"):  # pandas' name for an empty header cell
        return ""
    return re.sub(r"[\s_]+", " ", text).strip()


def _first_line(path: Path) -> tuple[int, str]:
    """Index (0-based) and text of the first non-blank line, to sniff the delimiter."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle):
            if line.strip():
                return number, line
    return -1, ""


def _sniff_sep(line: str) -> str:
    unquoted = re.sub(r'"[^"]*"', "", line)
    counts = {sep: unquoted.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _looks_numeric(field: str) -> bool:
    return bool(re.fullmatch(r"\s*-?[\d.:/\-]+\s*", field))


def _read_csv(path: Path, label: str) -> tuple[pd.DataFrame, Callable[[int], str]]:
    header_at, line = _first_line(path)
    if header_at < 0:
        raise DataError(
            f"{label}: the file is empty; expected a header like Date,Open,High,Low,Close,Volume "
            "and one row per bar"
        )
    sep = _sniff_sep(line)
    fields = [f.strip() for f in line.rstrip("\r\n").split(sep)]
    headerless = all(_looks_numeric(f) for f in fields if f) and len(fields) >= 5
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            skiprows=header_at,
            header=None if headerless else 0,
            skipinitialspace=True,
            encoding="utf-8-sig",
            encoding_errors="replace",
        )
    except (pd.errors.ParserError, UnicodeError) as error:
        detail = str(error).strip().splitlines()[-1]
        raise DataError(f"{label}: cannot parse as delimited text ({detail})") from None
    if headerless:
        frame.columns = _positional_names(fields)
    first_row_line = header_at + (1 if headerless else 2)  # 1-based line of frame row 0
    blank = (frame.apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
    keep = np.flatnonzero(~blank)
    frame = frame.iloc[keep].reset_index(drop=True)
    lines = keep + first_row_line
    return frame, lambda i: f"line {lines[i]}"


def _positional_names(fields: list[str]) -> list[str]:
    """Headerless exports (MetaTrader history, Binance klines): infer the usual layout."""
    has_time = re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", fields[1]) is not None
    names = ["date", "time"] if has_time else ["timestamp"]
    names += ["open", "high", "low", "close", "volume"]
    names = names[: len(fields)]
    return names + [f"extra {i}" for i in range(len(fields) - len(names))]


def _read_parquet(path: Path, label: str) -> tuple[pd.DataFrame, Callable[[int], str]]:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises many types for a corrupt file
        raise DataError(f"{label}: cannot read as Parquet ({type(error).__name__})") from None
    if isinstance(frame.index, pd.DatetimeIndex) or not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    return frame, lambda i: f"row {i}"


# --------------------------------------------------------------------------- parsing


def _pick(columns: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    return next((columns[a] for a in aliases if a in columns), None)


def _stamp_source(frame: pd.DataFrame, columns: dict[str, str]) -> tuple[pd.Series, str] | None:
    """The timestamp column (or Date + Time combined) and its name for messages."""
    date_col, time_col = columns.get("date"), columns.get("time")
    if date_col and time_col and not any(a in columns for a in ("datetime", "timestamp")):
        dates = _yyyymmdd_to_iso(frame[date_col].astype(str).str.strip())
        times = frame[time_col].astype(str).str.strip()
        times = times.where(
            ~times.str.fullmatch(r"\d{6}"),
            times.str.replace(r"(\d\d)(\d\d)(\d\d)", r"\1:\2:\3", regex=True),
        )  # stooq's HHMMSS
        return (dates + " " + times).str.strip(), f"{date_col} + {time_col}"
    chosen = _pick(columns, _STAMP_ALIASES)
    if chosen is None and "" in columns and frame.columns[0] == columns[""]:
        chosen = columns[""]  # backtesting.py's GOOG sample: unnamed first column holds dates
    if chosen is None:
        return None
    return frame[chosen], chosen if _norm(chosen) else "first (unnamed) column"


def _yyyymmdd_to_iso(text: pd.Series) -> pd.Series:
    return text.where(
        ~text.str.fullmatch(r"\d{8}"),
        text.str.replace(r"(\d{4})(\d\d)(\d\d)", r"\1-\2-\3", regex=True),
    )


def _parse_stamps(raw: pd.Series) -> pd.Series:
    """Parse timestamps without guessing per row; returns NaT where a value is unreadable.

    Epoch numbers are UTC by definition, so they come back tz-aware UTC; strings with an
    offset stay tz-aware (mixed offsets, e.g. across DST, are converted to UTC, never dropped).
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    text = raw.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if (numbers.notna() | (text == "")).all() and numbers.notna().any():
        present = numbers.dropna()
        if present.between(18000101, 22001231).all() and text.str.fullmatch(r"\d{8}|").all():
            return pd.to_datetime(text, format="%Y%m%d", errors="coerce")
        biggest = present.abs().max()
        # Unix epoch in s, ms, us or ns: magnitudes are ~1e9, 1e12, 1e15, 1e18 for recent dates.
        unit = ("s", "ms", "us", "ns")[int(np.searchsorted([1e11, 1e14, 1e17], biggest))]
        return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce")
    text = _yyyymmdd_to_iso(text)
    candidates = [_to_datetime(text, "ISO8601")]
    present = text[text != ""]
    if candidates[0].isna().any() and len(present):
        first = present.iloc[0]
        # 01.02.2020 is day-first wherever dots are used; 01/02/2020 is usually US month-first.
        orders = (
            (True, False) if re.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{2,4}.*", first) else (False, True)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            guesses = [guess_datetime_format(first, dayfirst=d) for d in orders]
        for fmt in dict.fromkeys(g for g in guesses if g):
            candidates.append(_to_datetime(text, fmt))
    # Fewest unreadable rows wins; on a tie prefer a monotonic reading (the wrong day/month
    # order scrambles the series), then the conventional order above.
    scores = [
        (
            int(c.isna().sum()),
            not (c.dropna().is_monotonic_increasing or c.dropna().is_monotonic_decreasing),
        )
        for c in candidates
    ]
    best = candidates[scores.index(min(scores))]
    rivals = [c for c, score in zip(candidates, scores, strict=True) if score == min(scores)]
    slashed = len(present) and re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2,4}.*", present.iloc[0])
    if (slashed and min(scores) == (0, False) and len(rivals) > 1
            and not all(r.equals(rivals[0]) for r in rivals[1:])):
        raise AmbiguousDates(str(present.iloc[0]))  # day/month and month/day both fit
    return best


class AmbiguousDates(ValueError):
    """Every date reads as day/month and as month/day (no day above 12 to tell them apart)."""


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    try:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError:  # mixed UTC offsets (e.g. across DST): one common zone, same instants
        return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)


def _to_float(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Float values and a mask of cells that were present but not numbers.

    Thousands separators are tolerated ("1,234.5", "1.234,5"); a lone comma is read as a
    decimal comma (European exports, which use ';' as the delimiter).
    """
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.astype("float64")
        return values, pd.Series(False, index=raw.index)
    text = raw.astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    failed = values.isna() & ~text.str.lower().isin(_NULL_TOKENS)
    if failed.any():
        odd = text[failed].str.replace(r"[\s_']", "", regex=True)
        comma_last = odd.str.rfind(",") > odd.str.rfind(".")
        odd = odd.where(
            ~comma_last,
            odd.str.replace(".", "", regex=False).str.replace(",", ".", regex=False),
        ).str.replace(",", "", regex=False)
        values[failed] = pd.to_numeric(odd, errors="coerce")
        failed = values.isna() & ~text.str.lower().isin(_NULL_TOKENS)
    return values, failed


# --------------------------------------------------------------------------- validation


def _fmt_stamp(stamp: pd.Timestamp) -> str:
    if pd.isna(stamp):
        return ""
    if stamp.tz is None and stamp == stamp.normalize():
        return stamp.strftime("%Y-%m-%d")
    return stamp.isoformat(sep=" ")


def _fmt_num(value: float) -> str:
    return str(float(value))


def _build(frame: pd.DataFrame, label: str, row_label: Callable[[int], str]) -> pd.DataFrame:
    columns: dict[str, str] = {}
    for col in frame.columns:
        columns.setdefault(_norm(col), col)
    found = ", ".join(str(c) if _norm(c) else "<unnamed>" for c in frame.columns)

    picked = {canon: _pick(columns, aliases) for canon, aliases in _ALIASES.items()}
    tick = _pick(columns, ("tickvol", "tick volume"))
    if picked["Volume"] not in (None, tick) and tick is not None:
        real = pd.to_numeric(frame[picked["Volume"]], errors="coerce")
        if (real.fillna(0) == 0).all():  # MetaTrader FX: <VOL> is all zeros, <TICKVOL> is not
            picked["Volume"] = tick
    stamp_source = _stamp_source(frame, columns)
    missing = [c for c in PRICE_COLUMNS if picked[c] is None]
    if stamp_source is None:
        missing.insert(0, "Date")
    if missing:
        raise DataError(
            f"{label}: missing column(s) {', '.join(missing)}; found: {found or 'none'}; "
            "expected a date/time column (Date, Datetime, Timestamp or Time) plus Open, High, "
            "Low, Close (Volume optional)"
        )
    if frame.empty:
        raise DataError(f"{label}: no data rows after the header; expected one row per bar")
    assert stamp_source is not None
    raw_stamps, stamp_name = stamp_source

    def fail(i: int, problem: str, stamp: pd.Timestamp | None = None) -> DataError:
        when = "" if stamp is None or pd.isna(stamp) else f" ({_fmt_stamp(stamp)})"
        return DataError(f"{label} {row_label(i)}{when}: {problem}")

    try:
        stamps = _parse_stamps(raw_stamps)
    except AmbiguousDates as ambiguous:
        raise DataError(
            f"{label}: dates like {str(ambiguous)!r} read both as day/month and as month/day "
            "(no day above 12 tells them apart); write them as YYYY-MM-DD"
        ) from None
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        shown = str(raw_stamps.iloc[i]).strip()
        what = f"cannot read the date {shown!r}" if shown else "the date is empty"
        raise fail(
            i,
            f"{what} in {stamp_name!r}; use ISO dates like 2020-01-23 "
            "(or 2020-01-23 15:30:00), or unix seconds/milliseconds",
        )

    out: dict[str, pd.Series] = {}
    for canon, source in picked.items():
        if source is None:
            continue
        values, failed = _to_float(frame[source])
        rule = {
            "Volume": "Volume must be a number >= 0 (or empty)",
            "COT_Index": "COT_Index must be a number in [-1, 1] (or empty before the first report)",
        }.get(canon, "every bar needs numeric Open, High, Low and Close; drop or fill that row")
        if canon in ("OpenInterest", "UnadjustedClose"):
            rule = f"{canon} must be a number (or empty)"
        nan_ok = canon in _OPTIONAL
        bad = failed | (values.isna() & (not nan_ok))
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            shown = str(frame[source].iloc[i]).strip()
            what = f"{canon} is {shown!r}" if shown else f"{canon} is empty"
            raise fail(i, f"{what}; {rule}", stamps.iloc[i])
        out[canon] = values.reset_index(drop=True)

    _check_bars(out, lambda i, problem: fail(i, problem, stamps.iloc[i]))
    index, order = _time_order(pd.DatetimeIndex(stamps), fail, row_label)
    _check_frequency(index, lambda k, problem: fail(int(order[k]), problem, index[k]))
    return pd.DataFrame(
        {k: v.to_numpy()[order] for k, v in out.items()},
        index=index.as_unit(DEFAULT_UNIT).rename("Date"),
        # plain labels: pandas 3's Arrow-backed strings make every data["Close"] slower, and
        # signals functions look columns up once per backtest, thousands of times in a sweep
        columns=pd.Index(list(out), dtype=object),
    )


def _check_bars(out: Mapping[str, pd.Series | np.ndarray],
                fail: Callable[[int, str], DataError]) -> None:
    """Finite positive prices, Low <= Open, Close <= High, Volume >= 0, COT_Index in [-1, 1]:
    the row-wise rules every bar obeys, for a file's rows and a DataFrame's alike."""
    values = {name: np.asarray(column, dtype=float) for name, column in out.items()}
    for canon in (c for c in PRICE_COLUMNS if c in values):  # the engine asks for Open, Close
        column = values[canon]
        bad = ~np.isfinite(column)
        if bad.any():
            i = int(np.argmax(bad))
            shown = "missing (NaN)" if np.isnan(column[i]) else _fmt_num(column[i])
            raise fail(i, f"{canon} is {shown}; every bar needs finite Open, High, Low and "
                          "Close prices; drop or fill that row")
        bad = column <= 0
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(
                i,
                f"{canon} {_fmt_num(column[i])} is not positive; prices must be "
                "> 0 (back-adjusted series that go negative need an offset)",
            )
    if all(k in values for k in PRICE_COLUMNS):
        _check_ranges(*(values[k] for k in PRICE_COLUMNS), fail)
    for name in ("Volume", "OpenInterest"):
        counts = values.get(name)
        if counts is not None and ((counts < 0) | np.isinf(counts)).any():
            i = int(np.argmax((counts < 0) | np.isinf(counts)))
            what = "negative" if counts[i] < 0 else "not finite"
            raise fail(i, f"{name} {_fmt_num(counts[i])} is {what}; {name} must be >= 0 "
                          "(or empty)")
    cot = values.get("COT_Index")
    if cot is not None:
        outside = np.abs(cot) > 1
        if outside.any():
            i = int(np.argmax(outside))
            raise fail(
                i,
                f"COT_Index {_fmt_num(cot[i])} is outside [-1, 1]; "
                "rescale a 0..100 Williams index with x / 50 - 1",
            )


def _check_ranges(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                  fail: Callable[[int, str], DataError]) -> None:
    """Low <= Open, Close <= High on every bar."""
    checks = [
        (h < lo, lambda i: f"High {_fmt_num(h[i])} is below Low {_fmt_num(lo[i])}"),
        (h < np.maximum(o, c), lambda i: f"High {_fmt_num(h[i])} is below "
            f"{'Open' if o[i] >= c[i] else 'Close'} {_fmt_num(max(o[i], c[i]))}"),
        (lo > np.minimum(o, c), lambda i: f"Low {_fmt_num(lo[i])} is above "
            f"{'Open' if o[i] <= c[i] else 'Close'} {_fmt_num(min(o[i], c[i]))}"),
    ]  # fmt: skip
    for mask, describe in checks:
        if mask.any():
            i = int(np.argmax(mask))
            raise fail(i, f"{describe(i)}; every bar needs Low <= Open, Close <= High")


def _time_order(
    index: pd.DatetimeIndex,
    fail: Callable[..., DataError],
    row_label: Callable[[int], str],
    reverse: bool = True,
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Ascending, unique timestamps; a wholly newest-first file is reversed (``reverse``), not
    rejected: a layout, not corruption. A frame built in code is not reversed behind its
    owner's back (its positions would no longer line up): that is an error naming the fix."""
    order = np.arange(len(index))
    if len(index) > 1 and (np.diff(index.asi8) < 0).all():
        if not reverse:
            raise fail(1, "the index runs newest first; bars must be in ascending time order "
                          "(data.sort_index())", index[1])
        order = order[::-1]
        index = index[::-1]
    steps = np.diff(index.asi8)
    if (steps < 0).any():
        k = int(np.argmax(steps < 0)) + 1
        raise fail(
            int(order[k]),
            f"timestamp is earlier than the previous row's "
            f"{_fmt_stamp(index[k - 1])}; rows must be in ascending time order",
            index[k],
        )
    if (steps == 0).any():
        k = int(np.argmax(steps == 0)) + 1
        raise fail(
            int(order[k]),
            f"duplicate timestamp (same as {row_label(int(order[k - 1]))})"
            "; each bar needs a unique timestamp",
            index[k],
        )
    return index, order


# --------------------------------------------------------------------------- frames and frequency

MIN_BARS = 20
"""Fewer bars than this backtest nothing meaningful (no indicator warms up), so every entry
point refuses them with one line instead of reporting metrics of noise."""

_STEP_CLASSES = (0.9, 4.5, 20.0)  # days: intraday | daily | weekly | monthly bar spacing
_CLASS_NAMES = ("intraday", "daily", "weekly", "monthly")
_MIXED_RUN = 20  # consecutive steps of one spacing that make a stretch of that frequency


def check_frame(frame: object, label: str = "data", min_bars: int = MIN_BARS,
                required: tuple[str, ...] = PRICE_COLUMNS) -> pd.DataFrame:
    """The checks a file gets from :func:`load_ohlcv`, for bars built in code: a DataFrame
    (not a Series) on an ascending, unique ``DatetimeIndex`` with numeric ``Open, High, Low,
    Close`` (finite, > 0, Low <= Open, Close <= High), ``Volume`` >= 0 and ``COT_Index`` in
    [-1, 1] when present, one bar frequency, and at least ``min_bars`` bars (the engine itself
    asks only for ``required`` Open and Close, and one bar). Each failure is a
    one-line :class:`DataError` naming the row (0-based) and its date. The frame is returned
    as given, other columns included: a strategy may read them."""
    if isinstance(frame, pd.Series):
        raise DataError(f"{label} is a pandas Series; pass a DataFrame with Open, High, Low and "
                        "Close columns (and Volume) on a DatetimeIndex")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{label} is a {type(frame).__name__}; pass a DataFrame of bars, the "
                        "path of a CSV or Parquet file, or None for the project's data")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        dated = next((c for c in frame.columns if _norm(c) in _STAMP_ALIASES), None)
        hint = (f"data.set_index(pd.to_datetime(data[{dated!r}]))" if dated is not None
                else "index the frame by its bars' timestamps with pd.to_datetime")
        raise DataError(f"{label}: the index is a {type(index).__name__}, not timestamps; bars "
                        f"need a DatetimeIndex ({hint})")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{label}: missing column(s) {', '.join(missing)}; found: {found}; "
                        "name them Open, High, Low, Close (data.rename(columns=str.title))")

    def fail(i: int, problem: str, stamp: pd.Timestamp | None = None) -> DataError:
        stamp = index[i] if stamp is None else stamp
        when = "" if pd.isna(stamp) else f" ({_fmt_stamp(stamp)})"
        return DataError(f"{label} row {i}{when}: {problem}")

    columns = {}
    for name in (*required, *(c for c in (*PRICE_COLUMNS, *_OPTIONAL) if c not in required)):
        if name not in frame.columns:
            continue
        column = frame[name]
        if isinstance(column, pd.DataFrame):
            raise DataError(f"{label}: {len(column.columns)} columns are named {name}; keep one")
        if not (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)):
            raise DataError(f"{label}: column {name} holds {column.dtype} values, not numbers; "
                            f"convert it with pd.to_numeric(data[{name!r}])")
        columns[name] = column.to_numpy(dtype=float, na_value=np.nan)
    if index.hasnans:
        raise fail(int(np.argmax(index.isna())), "the timestamp is missing (NaT); every bar "
                   "needs one")
    _check_bars(columns, fail)
    _time_order(index, fail, lambda i: f"row {i}", reverse=False)
    _check_frequency(index, fail)
    require_bars(frame, label, min_bars)
    return frame


def require_bars(frame: pd.DataFrame, label: str, min_bars: int = MIN_BARS) -> None:
    """At least ``min_bars`` bars (:data:`MIN_BARS`): fewer backtest nothing meaningful."""
    if len(frame) < min_bars:
        raise DataError(f"{label} has {len(frame)} bar{'s' * (len(frame) != 1)}; a backtest "
                        f"needs at least {min_bars}")


def _step_days(index: pd.DatetimeIndex) -> np.ndarray:
    """Days between consecutive bars, whatever the index's resolution."""
    return np.diff(index.asi8) / (86_400 * _PER_SECOND[np.datetime_data(index.dtype)[0]])


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _check_frequency(index: pd.DatetimeIndex, fail: Callable[[int, str], DataError]) -> None:
    """One bar frequency per series: a stretch of daily bars followed by a stretch of 5-minute
    bars (two exports pasted together) would be annualized as one or the other, so it is an
    error naming the row where the spacing changes. A stretch is ``_MIXED_RUN`` consecutive
    steps of one class (intraday < 0.9 days <= daily < 4.5 <= weekly < 20 <= monthly):
    weekends, holidays and overnight gaps are single steps and never make one."""
    if len(index) <= 2 * _MIXED_RUN:
        return
    classes = np.searchsorted(_STEP_CLASSES, _step_days(index), side="right")
    edges = np.flatnonzero(np.diff(classes)) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [len(classes)])))
    stretches = [int(start) for start, length in zip(starts, lengths, strict=True)
                 if length >= _MIXED_RUN]
    for before, after in zip(stretches, stretches[1:], strict=False):
        if classes[before] != classes[after]:
            names = (bar_frequency(index[at:at + _MIXED_RUN + 1]) for at in (before, after))
            raise fail(after, "the bars change from {} to {} here; one series needs one bar "
                       "frequency (resample one part, e.g. data.resample('1D'), or split the "
                       "file)".format(*names))


def bar_frequency(index: pd.DatetimeIndex) -> str:
    """The bars' spacing in words from the median step: ``"daily"``, ``"weekly"``,
    ``"monthly"``, or the intraday bar size (``"5-minute"``, ``"1-hour"``)."""
    if len(index) < 2:
        return "unknown"
    days = float(np.median(_step_days(index)))
    position = int(np.searchsorted(_STEP_CLASSES, days, side="right"))
    if position:
        return _CLASS_NAMES[position]
    minutes = round(days * 1440)
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes // 60}-hour"
    return f"{minutes}-minute" if minutes else f"{round(days * 86_400)}-second"


def _read_benchmark_column(path: Path) -> pd.Series:
    """A benchmark file of dates and one column of prices or returns (returns: every value
    within ±1 and some negative), as prices; one-line errors as for bars."""
    label = str(path)
    reader = _read_parquet if path.name.lower().endswith(_PARQUET_SUFFIXES) else _read_csv
    raw, row_label = reader(path, label)
    columns = {}
    for col in raw.columns:
        columns.setdefault(_norm(col), col)
    source = _stamp_source(raw, columns)
    others = [c for c in raw.columns if source is None or c != source[1]]
    if source is None or len(others) != 1:
        raise DataError(f"{label}: a benchmark is an OHLCV file or a date column and one column "
                        f"of prices or returns; found: {', '.join(map(str, raw.columns))}")
    stamps = _parse_stamps(source[0])
    values, failed = _to_float(raw[others[0]])
    bad = np.flatnonzero((stamps.isna() | failed | values.isna()).to_numpy())
    if bad.size:
        raise DataError(f"{label} {row_label(int(bad[0]))}: a benchmark row needs a date and a "
                        "number")
    def fail(i: int, problem: str, stamp=None) -> DataError:
        return DataError(f"{label} {row_label(i)}: {problem}")

    index, order = _time_order(pd.DatetimeIndex(stamps), fail, row_label)
    numbers = values.to_numpy()[order]
    if not np.isfinite(numbers).all():
        raise DataError(f"{label}: a benchmark's values must be finite numbers")
    if (np.abs(numbers) < 1).all() and (numbers < 0).any():  # returns: compound them
        numbers = np.cumprod(1.0 + numbers)
    elif (numbers <= 0).any():
        raise DataError(f"{label}: benchmark prices must be > 0 (or give returns within ±1)")
    return pd.Series(numbers, index=index.as_unit(DEFAULT_UNIT).rename("Date"))
