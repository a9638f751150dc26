"""CFTC Commitments of Traders: from the published files to a look-ahead-free bar series.

The legacy futures-only report counts positions as of Tuesday's close but publishes them on
Friday at 15:30 ET (later in holiday weeks). A backtest that uses the report on the Tuesday
it describes, or on the Friday bar itself, trades on information nobody had; the functions
here keep the as-of date and the release date apart and only ever look at what was public
before a bar opened — by the release calendar of :mod:`meridian.data.calendar`, which knows the
holidays and the government-shutdown backlogs.
"""

from __future__ import annotations

import difflib
import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from meridian._files import check_unpacked, file_sha256
from meridian.data.calendar import BUILT_IN, read_release_table, release_dates
from meridian.data.ohlcv import DEFAULT_UNIT
from meridian.exceptions import DataError, ParameterError

# Output field -> headers (lower-cased, only letters and digits) of both CFTC layouts: the
# annual.txt one with spaces ("Commercial Positions-Long (All)") and the underscore one
# ("Comm_Positions_Long_All").
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    # trader group -> (column prefix, header stems of its "Long"/"Short" (All) columns)
    "commercials": ("comm", ("commercialpositions", "commpositions")),
    "noncommercials": ("noncomm", ("noncommercialpositions", "noncommpositions")),
    "producers": ("prod", ("prodmercpositions",)),  # disaggregated: producer/merchant
    "swap_dealers": ("swap", ("swappositions",)),
    "managed_money": ("mm", ("mmoneypositions",)),
    "other_reportables": ("other", ("otherreptpositions",)),
    "dealers": ("dealer", ("dealerpositions",)),  # TFF (traders in financial futures)
    "asset_managers": ("asset", ("assetmgrpositions",)),
    "leveraged_funds": ("lev", ("levmoneypositions",)),
}
"""Every trader group of the legacy, disaggregated and TFF reports, as ``group=`` takes it."""
_FIELDS: dict[str, tuple[str, ...]] = {
    "market": ("marketandexchangenames",),
    "code": ("cftccontractmarketcode",),
    "date": ("asofdateinformyyyymmdd", "reportdateasyyyymmdd"),
    "yymmdd": ("asofdateinformyymmdd", "asofdateinformyymmdd"),
    "open_interest": ("openinterestall",),
    **{f"{prefix}_{side}": tuple(f"{stem}{side}all" for stem in stems)
       for prefix, stems in GROUPS.values() for side in ("long", "short")},
}
POSITION_COLUMNS = ("open_interest", *(f"{prefix}_{side}" for prefix, _ in GROUPS.values()
                                       for side in ("long", "short")))
_LISTED = 10  # market names shown when the choice is missing or ambiguous


def read_cot(paths: str | Path | Sequence[str | Path], market: str | None = None,
             group: str = "commercials") -> pd.DataFrame:
    """Read COT files (.zip holding annual.txt, f_year.txt, FinFutYY.txt…, or .txt / .csv) of
    the legacy, disaggregated or TFF report, in either CFTC layout, for one market.

    ``market`` is a CFTC contract market code (exact, e.g. ``"088691"``) or a case-insensitive
    part of the market name (``"gold - commodity"``); it may be omitted when the files hold a
    single market. Several files (years) are concatenated; identical report rows are dropped.

    Returns one row per weekly report, indexed by ``as_of`` (the Tuesday the positions refer
    to), with ``market``, ``open_interest``, each trader group's ``<prefix>_long`` and
    ``<prefix>_short`` the files hold (``comm_``, ``noncomm_``, ``mm_``, ``prod_``, ``swap_``,
    ``other_``, ``dealer_``, ``asset_``, ``lev_``), ``net`` (``group``'s long − short; a
    :data:`GROUPS` name), ``comm_net`` when the file has commercials, and ``release`` (see
    :func:`release_dates`).
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise DataError("read_cot: no COT file given; pass a path or a list of paths")
    if group not in GROUPS:
        raise DataError(f"COT group {group!r} is not a trader group; use one of "
                        f"{', '.join(GROUPS)}")
    raw = pd.concat([_read_table(Path(p), group) for p in items], ignore_index=True)
    if raw.empty:
        names = ", ".join(str(p) for p in items)
        raise DataError(f"{names}: no COT report rows; expected CFTC legacy futures-only data")
    chosen = _select_market(raw, market, ", ".join(Path(p).name for p in items))
    table = _parse_rows(raw.loc[chosen].reset_index(drop=True))
    present = [c for c in POSITION_COLUMNS if c in table]
    key = ["as_of", *present]
    table = table.drop_duplicates(subset=key).sort_values("as_of", kind="stable")
    clash = table["as_of"].duplicated(keep=False).to_numpy()
    if clash.any():
        first, second = table.loc[clash].iloc[:2].itertuples()
        raise DataError(
            f"{first.source} line {first.line} and {second.source} line {second.line}: two "
            f"different reports for {first.market!r} as of {first.as_of:%Y-%m-%d}; keep one "
            "version of each weekly report"
        )
    out = table.set_index(pd.DatetimeIndex(table["as_of"], name="as_of"))
    out = out[["market", *present]].astype({c: "int64" for c in present})
    prefix = GROUPS[group][0]
    out["net"] = out[f"{prefix}_long"] - out[f"{prefix}_short"]
    if "comm_long" in out:
        out["comm_net"] = out["comm_long"] - out["comm_short"]
    out["release"] = release_dates(out.index)
    return out


def cot_index(net: pd.Series, lookback: int = 156) -> pd.Series:
    """Williams COT index of a net position, rescaled to [-1, 1].

    ``x = (net - min_N) / (max_N - min_N)`` over the last N = ``lookback`` reports including
    the current one, then ``index = 2 * x - 1``: +1 when commercials are the most net long of
    the window (bullish for a contrarian reading), -1 the most net short. Williams' 0..100
    scale maps as ``index = W / 50 - 1`` (his 80/20 thresholds are +0.6/-0.6). The first
    ``lookback - 1`` reports have no value (NaN); a flat window (max == min) gives 0.0.
    """
    if isinstance(lookback, bool) or not isinstance(lookback, int | np.integer) or lookback < 1:
        raise ParameterError(f"cot_index: lookback must be a whole number >= 1, got {lookback!r}")
    net = pd.Series(net, dtype="float64")
    low = net.rolling(lookback, min_periods=lookback).min()
    span = net.rolling(lookback, min_periods=lookback).max() - low
    scaled = 2.0 * (net - low) / span.where(span > 0) - 1.0
    return scaled.mask(span == 0, 0.0).rename("COT_Index")


def align_to_bars(
    values: pd.Series,
    release: pd.DatetimeIndex | pd.Series,
    bars: pd.DatetimeIndex,
) -> pd.Series:
    """Each bar gets the latest report published *before* that bar's calendar date.

    ``values`` is indexed by as-of date and ``release`` gives each report's release date
    (positionally, or as a Series on the same index). A report released on day R is usable from
    the first bar dated after R: Friday's 15:30 release is not on Friday's bar, and a release
    that slipped to Monday first shows on Tuesday. Bars before any usable report get NaN.
    tz-aware bars are compared by their local calendar date.
    """
    values = pd.Series(values)
    if isinstance(release, pd.Series):
        same = release.index.equals(values.index)
        release = release.reindex(values.index) if not same else release
    release_index = pd.DatetimeIndex(release)
    if len(release_index) != len(values):
        raise DataError(
            f"align_to_bars: {len(release_index)} release dates for {len(values)} reports; "
            "pass one release date per report"
        )
    if release_index.hasnans:
        raise DataError("align_to_bars: some reports have no release date")
    if not isinstance(bars, pd.DatetimeIndex):
        raise DataError("align_to_bars: bars must be a DatetimeIndex (the OHLCV index)")
    if release_index.tz is not None:
        release_index = release_index.tz_localize(None)
    order_by_asof = np.argsort(values.index.to_numpy(), kind="stable")
    rel_days = release_index.normalize().to_numpy().astype("datetime64[D]")[order_by_asof]
    vals = values.to_numpy(dtype="float64")[order_by_asof]

    by_release = np.argsort(rel_days, kind="stable")
    # Among the reports public so far, the newest by as-of date (releases never reorder in
    # practice, but a hand-made release list might).
    newest = np.maximum.accumulate(by_release)
    local = bars.tz_localize(None) if bars.tz is not None else bars
    bar_days = local.normalize().to_numpy().astype("datetime64[D]")
    public = np.searchsorted(rel_days[by_release], bar_days, side="left")  # release < bar day
    out = np.full(len(bars), np.nan)
    seen = public > 0
    out[seen] = vals[newest[public[seen] - 1]]
    return pd.Series(out, index=bars, name=values.name)


def attach_cot(
    ohlcv: pd.DataFrame,
    cot_path: str | Path | Sequence[str | Path],
    market: str | None = None,
    lookback: int = 156,
    releases: str | Path | None = None,
    group: str = "commercials",
) -> pd.DataFrame:
    """Copy of ``ohlcv`` with a ``COT_Index`` column built from a trader group's net position
    (``group``: commercials by default; managed_money, producers, swap_dealers of the
    disaggregated report, leveraged_funds, asset_managers, dealers of the TFF report…).

    The index (see :func:`cot_index`) is computed on weekly reports and then placed on the
    bars by :func:`align_to_bars`, so every bar only sees reports released before it — by
    the release calendar of :mod:`meridian.data.calendar` (holidays and the shutdown
    backlogs), with your own release table (``releases``, a CSV) over it. The frame's
    ``attrs`` record the COT files' SHA-256 and the calendar used; runs keep both.
    """
    if not isinstance(ohlcv.index, pd.DatetimeIndex):
        raise DataError("attach_cot: ohlcv must be indexed by a DatetimeIndex (use load_ohlcv)")
    cot = read_cot(cot_path, market, group)
    calendar = BUILT_IN
    if releases:
        table, digest = read_release_table(releases)
        cot["release"] = release_dates(cot.index, table)
        calendar = f"{Path(releases).absolute()} (SHA-256 {digest[:16]}) over {BUILT_IN}"
    index = cot_index(cot["net"], lookback)
    aligned = align_to_bars(index, cot["release"], ohlcv.index)
    if len(ohlcv) and aligned.isna().all():
        defined = index.dropna()
        source = cot["market"].iloc[-1]
        if defined.empty:
            why = f"it has {len(cot)} weekly reports and lookback={lookback} needs that many"
        else:
            first = cot.loc[defined.index[0]]
            why = (
                f"its first COT index value (as of {defined.index[0]:%Y-%m-%d}) is released "
                f"{first['release']:%Y-%m-%d}, after the last bar {ohlcv.index[-1]:%Y-%m-%d}"
            )
        raise DataError(
            f"attach_cot: no bar gets a COT index from {source!r}: {why}; use COT "
            "files covering the price history plus lookback weeks before it"
        )
    out = ohlcv.copy()
    out["COT_Index"] = aligned.to_numpy()
    paths = [cot_path] if isinstance(cot_path, str | Path) else list(cot_path)
    out.attrs["cot_path"] = ", ".join(str(Path(p).absolute()) for p in paths)
    out.attrs["cot_sha256"] = ", ".join(file_sha256(Path(p)) for p in paths)
    out.attrs["cot_calendar"] = calendar
    return out


# --------------------------------------------------------------------------- reading


def _key(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def _read_table(path: Path, group: str = "commercials") -> pd.DataFrame:
    """The needed columns of one file as strings, with source name and 1-based line numbers."""
    label = str(path)
    if not path.is_file():
        raise DataError(
            f"{label}: COT file not found; download e.g. deacot2024.zip from "
            "cftc.gov (legacy futures-only) and pass its path"
        )
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [
                    n
                    for n in archive.namelist()
                    if n.lower().endswith((".txt", ".csv")) and not n.endswith("/")
                ]
                if len(members) != 1:
                    raise DataError(
                        f"{label}: expected one .txt/.csv file inside the zip "
                        f"(like annual.txt), found {members or 'none'}"
                    )
                check_unpacked(archive.getinfo(members[0]).file_size, label)
                payload = archive.read(members[0])
        except zipfile.BadZipFile:
            raise DataError(f"{label}: not a valid zip archive") from None
        label = f"{label}:{members[0]}"
    else:
        payload = path.read_bytes()
    try:
        frame = pd.read_csv(
            io.BytesIO(payload),
            dtype=str,
            na_filter=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty; expected CFTC legacy COT data") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise DataError(f"{label}: cannot parse as comma-separated text ({detail})") from None
    headers = {_key(h): h for h in frame.columns}
    picked = {
        field: next((headers[a] for a in aliases if a in headers), None)
        for field, aliases in _FIELDS.items()
    }
    prefix = GROUPS[group][0]
    needed = ("market", "open_interest", f"{prefix}_long", f"{prefix}_short")
    missing = [f for f in needed if picked[f] is None]
    if picked["market"] is not None and picked["open_interest"] is not None and missing:
        has = [name for name, (p, _) in GROUPS.items() if picked[f"{p}_long"] is not None]
        raise DataError(f"{label}: no {group} columns; this file's trader groups are "
                        f"{', '.join(has) or 'none'} (group= picks one)")
    if picked["date"] is None and picked["yymmdd"] is None:
        missing.insert(1, "date")
    if missing:
        shown = ", ".join(str(h).strip() for h in frame.columns[:12])
        raise DataError(
            f"{label}: not a CFTC COT file, missing {', '.join(missing)} "
            f"(e.g. 'Commercial Positions-Long (All)'); columns found: {shown or 'none'}"
        )
    table = pd.DataFrame({f: frame[c].str.strip() for f, c in picked.items()
                          if c is not None and (f in needed or f not in POSITION_COLUMNS
                                                or f.startswith(("comm_", "noncomm_")))})
    table["source"] = label
    table["line"] = np.arange(2, len(frame) + 2)  # header is line 1
    return table


def _markets(raw: pd.DataFrame) -> pd.Series:
    """Key that identifies a market: its contract code when the file has one, else its name."""
    return raw["code"] if "code" in raw else raw["market"]


def _select_market(raw: pd.DataFrame, market: str | None, files: str) -> np.ndarray:
    keys = _markets(raw)
    names = raw["market"]

    def listing(mask: pd.Series | None = None) -> str:
        shown = names if mask is None else names[mask]
        unique = sorted(shown.drop_duplicates())
        more = f" ... and {len(unique) - _LISTED} more" if len(unique) > _LISTED else ""
        return "; ".join(unique[:_LISTED]) + more

    if market is None:
        if keys.nunique() == 1:
            return np.ones(len(raw), dtype=bool)
        raise DataError(
            f"{files}: holds {keys.nunique()} markets, choose one with market= (code "
            f"or part of the name); available: {listing()}"
        )
    wanted = str(market).strip()
    if "code" in raw and (raw["code"] == wanted).any():
        return (raw["code"] == wanted).to_numpy()
    folded = names.str.casefold()
    for hits in (folded == wanted.casefold(), folded.str.contains(wanted.casefold(), regex=False)):
        matched = keys[hits].unique()
        if len(matched) == 1:
            return keys.isin(matched).to_numpy()
        if len(matched) > 1:
            raise DataError(
                f"{files}: market {wanted!r} matches {len(matched)} markets, use a "
                f"longer name or the contract code; matches: {listing(hits)}"
            )
    # CFTC names are "MARKET - EXCHANGE": compare with the market part as well as the whole
    full = {}
    for name in sorted(names.drop_duplicates()):
        full.setdefault(name.upper(), name)
        full.setdefault(name.split(" - ")[0].strip().upper(), name)
    close = list(dict.fromkeys(full[hit] for hit in difflib.get_close_matches(
        wanted.upper(), list(full), 3, 0.6)))
    hint = f"; close matches: {'; '.join(close)}" if close else f"; available: {listing()}"
    raise DataError(f"{files}: no market matches {wanted!r} (contract code or part of the "
                    f"name){hint}")


def _parse_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Dates and position counts of the selected market's rows; errors name file and line."""

    def fail(i: int, problem: str) -> DataError:
        row = rows.iloc[i]
        return DataError(f"{row['source']} line {row['line']} ({row['market']}): {problem}")

    if "date" in rows:
        dates = pd.to_datetime(rows["date"], format="ISO8601", errors="coerce")
        if dates.isna().any():  # the spreadsheet export writes 01/03/2023
            dates = dates.fillna(pd.to_datetime(rows["date"], format="%m/%d/%Y", errors="coerce"))
        column, hint = "As of Date in Form YYYY-MM-DD", "YYYY-MM-DD"
    else:
        dates = pd.to_datetime(rows["yymmdd"].str.zfill(6), format="%y%m%d", errors="coerce")
        column, hint = "As of Date in Form YYMMDD", "YYMMDD"
    if dates.isna().any():
        i = int(np.argmax(dates.isna().to_numpy()))
        shown = rows["date" if "date" in rows else "yymmdd"].iloc[i]
        raise fail(i, f"cannot read the report date {shown!r} in '{column}'; expected {hint}")
    parsed = pd.DataFrame(
        {
            "as_of": dates.dt.normalize().dt.as_unit(DEFAULT_UNIT),
            "market": rows["market"],
            "source": rows["source"],
            "line": rows["line"],
        }
    )
    for field in [c for c in POSITION_COLUMNS if c in rows]:
        text = rows[field].str.replace(r"[,\s]", "", regex=True)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = (numbers.isna() | (numbers < 0) | (numbers % 1 != 0)).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(
                i,
                f"{field} is {rows[field].iloc[i]!r} on {dates.iloc[i]:%Y-%m-%d}; "
                "positions must be whole numbers >= 0",
            )
        parsed[field] = numbers.to_numpy()
    return parsed
