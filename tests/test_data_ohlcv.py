"""load_ohlcv: the export layouts people try, and one-line errors that point at the bad row."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meridian.data import load_ohlcv
from meridian.exceptions import DataError

GOOD_ROWS = "2020-01-02,10,11,9,10.5,100\n2020-01-03,10.5,11.5,10,11,200\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_ohlcv(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert path.name in message, message
    return message


def assert_bars(frame: pd.DataFrame, first: str, volume: bool = True) -> None:
    expected = ["Open", "High", "Low", "Close"] + (["Volume"] if volume else [])
    assert list(frame.columns) == expected
    assert frame.index.name == "Date"
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.dtypes == "float64").all()
    assert frame.index[0] == pd.Timestamp(first)


# --------------------------------------------------------------------------- layouts


def test_yahoo_layout_ignores_adj_close(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,10,11,9,10.5,10.4,100\n2020-01-03,10.5,11.5,10,11,10.9,200\n"
    )
    frame = load_ohlcv(write(tmp_path, "AAPL.csv", text))
    assert_bars(frame, "2020-01-02")
    assert frame["Close"].tolist() == [10.5, 11.0]
    assert frame["Volume"].tolist() == [100.0, 200.0]


def test_stooq_layout_and_gzip(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n" + GOOD_ROWS
    frame = load_ohlcv(write(tmp_path, "spx_d.csv", text))
    assert_bars(frame, "2020-01-02")
    zipped = tmp_path / "spx_d.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    pd.testing.assert_frame_equal(load_ohlcv(zipped), frame)


def test_stooq_ascii_with_yyyymmdd_and_hhmmss(tmp_path: Path) -> None:
    text = (
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        "AAPL.US,5,20200102,153000,1,2,0.5,1.5,3,0\nAAPL.US,5,20200102,153500,1,2,0.5,1.5,3,0\n"
    )
    frame = load_ohlcv(write(tmp_path, "aapl.txt", text))
    assert list(frame.index) == [pd.Timestamp("2020-01-02 15:30"), pd.Timestamp("2020-01-02 15:35")]


def test_goog_style_unnamed_date_column(tmp_path: Path) -> None:
    text = (
        ",Open,High,Low,Close,Volume\n"
        "2004-08-19,100.0,104.06,95.96,100.34,22351900\n"
        "2004-08-20,101.01,109.08,100.5,108.31,11428600\n"
    )
    frame = load_ohlcv(write(tmp_path, "GOOG.csv", text))
    assert_bars(frame, "2004-08-19")
    assert frame["High"].iloc[1] == 109.08


def test_tradingview_unix_seconds_are_utc(tmp_path: Path) -> None:
    text = "time,open,high,low,close,Volume\n1577923200,1,2,0.5,1.5,3\n1578009600,1,2,0.5,1.5,3\n"
    frame = load_ohlcv(write(tmp_path, "CME_MINI_ES1!, 1D.csv", text))
    assert list(frame.index) == [
        pd.Timestamp("2020-01-02", tz="UTC"),
        pd.Timestamp("2020-01-03", tz="UTC"),
    ]
    assert frame.index.name == "Date"


def test_epoch_milliseconds(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume\n1577923200000,1,2,0.5,1.5,3\n"
    frame = load_ohlcv(write(tmp_path, "btc.csv", text))
    assert frame.index[0] == pd.Timestamp("2020-01-02", tz="UTC")


def test_headerless_binance_klines(tmp_path: Path) -> None:
    text = (
        "1577923200000,7200.1,7250.0,7100.0,7150.5,1200.5,1578009599999,8600000,9000\n"
        "1578009600000,7150.5,7400.0,7140.0,7350.0,1500.0,1578095999999,11000000,9500\n"
    )
    frame = load_ohlcv(write(tmp_path, "BTCUSDT-1d-2020-01.csv", text))
    assert frame.index[1] == pd.Timestamp("2020-01-03", tz="UTC")
    assert frame["Close"].tolist() == [7150.5, 7350.0]


def test_semicolon_with_decimal_commas_and_day_first_dates(tmp_path: Path) -> None:
    text = (
        "Date;Open;High;Low;Close;Volume\n"
        "02.01.2020;1,5;2,0;1,0;1,8;100\n03.01.2020;1,8;2,1;1,7;2,0;90\n"
    )
    frame = load_ohlcv(write(tmp_path, "dax.csv", text))
    assert_bars(frame, "2020-01-02")
    assert frame["Open"].tolist() == [1.5, 1.8]


def test_tab_separated(tmp_path: Path) -> None:
    text = "Date\tOpen\tHigh\tLow\tClose\n2020-01-02\t1\t2\t0.5\t1.5\n"
    assert_bars(load_ohlcv(write(tmp_path, "tab.txt", text)), "2020-01-02", volume=False)


def test_separate_date_and_time_columns(tmp_path: Path) -> None:
    text = (
        " date , TIME ,o,h,l,c,v\n2020-01-02,09:30,1,2,0.5,1.5,3\n2020-01-02,09:31,1,2,0.5,1.5,3\n"
    )
    frame = load_ohlcv(write(tmp_path, "intraday.csv", text))
    assert list(frame.index) == [pd.Timestamp("2020-01-02 09:30"), pd.Timestamp("2020-01-02 09:31")]
    assert frame["Volume"].tolist() == [3.0, 3.0]


def test_metatrader_brackets_prefers_tick_volume_when_real_volume_is_zero(tmp_path: Path) -> None:
    text = (
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
        "2020.01.02\t00:00:00\t1.1213\t1.1225\t1.1170\t1.1172\t5321\t0\t1\n"
        "2020.01.02\t01:00:00\t1.1172\t1.1180\t1.1160\t1.1175\t4100\t0\t1\n"
    )
    frame = load_ohlcv(write(tmp_path, "EURUSD_H1.csv", text))
    assert frame.index[1] == pd.Timestamp("2020-01-02 01:00")
    assert frame["Volume"].tolist() == [5321.0, 4100.0]


def test_datetime_column_with_offset_stays_tz_aware(tmp_path: Path) -> None:
    text = (
        "Datetime,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02 09:30:00-05:00,1,2,0.5,1.5,1.5,3\n2020-01-02 09:31:00-05:00,1,2,0.5,1.5,1.5,3\n"
    )
    frame = load_ohlcv(write(tmp_path, "spy_1m.csv", text))
    assert frame.index.tz is not None
    assert frame.index[0] == pd.Timestamp("2020-01-02 14:30", tz="UTC")  # same instant
    assert frame.index[0].hour == 9  # wall clock not shifted


def test_newest_first_export_is_reversed(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close\n2020-01-03,10.5,11.5,10,11\n2020-01-02,10,11,9,10.5\n"
    frame = load_ohlcv(write(tmp_path, "newest_first.csv", text))
    assert_bars(frame, "2020-01-02", volume=False)
    assert frame["Close"].tolist() == [10.5, 11.0]


def test_cot_index_column_passes_through(tmp_path: Path) -> None:
    text = (
        "date,open,high,low,close,extra,cot_index\n"
        "2020-01-02,1,2,0.5,1.5,x,\n2020-01-03,1,2,0.5,1.5,y,0.25\n"
    )
    frame = load_ohlcv(write(tmp_path, "with_cot.csv", text))
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "COT_Index"]
    assert np.isnan(frame["COT_Index"].iloc[0]) and frame["COT_Index"].iloc[1] == 0.25


def test_parquet_with_datetime_index_and_with_date_column(tmp_path: Path) -> None:
    index = pd.date_range("2021-03-01", periods=3, freq="B", name="Date")
    frame = pd.DataFrame(
        {"open": [1.0, 2, 3], "high": [2.0, 3, 4], "low": [0.5, 1, 2], "close": [1.5, 2.5, 3.5],
         "volume": [1, 2, 3], "junk": ["a", "b", "c"]},
        index=index,
    )  # fmt: skip
    frame.to_parquet(tmp_path / "indexed.parquet")
    frame.reset_index().rename(columns={"Date": "timestamp"}).to_parquet(tmp_path / "column.pq")
    for name in ("indexed.parquet", "column.pq"):
        loaded = load_ohlcv(tmp_path / name)
        assert_bars(loaded, "2021-03-01")
        assert loaded["Close"].tolist() == [1.5, 2.5, 3.5]


def test_parquet_errors_use_zero_based_rows(tmp_path: Path) -> None:
    index = pd.date_range("2021-03-01", periods=3, freq="B", name="Date")
    frame = pd.DataFrame({"Open": 1.0, "High": [2.0, 2, 0.9], "Low": 1.0, "Close": 1.5}, index)
    frame.to_parquet(tmp_path / "bad.parquet")
    message = error_of(tmp_path / "bad.parquet")
    assert "row 2 (2021-03-03)" in message and "High 0.9 is below Low 1.0" in message


def test_twelve_years_of_daily_bars_round_trip(tmp_path: Path) -> None:
    index = pd.bdate_range("2010-01-01", "2021-12-31", name="Date")
    close = 100 + np.sin(np.arange(len(index)) / 10)
    frame = pd.DataFrame(
        {"Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Volume": 1000.0},
        index=index,
    )
    frame.to_csv(tmp_path / "long.csv")
    loaded = load_ohlcv(tmp_path / "long.csv")
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False, check_column_type=False)
    assert loaded.columns.dtype == object  # plain labels: fast column lookups in signals


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nowhere.csv")
    assert "not found" in message


def test_missing_columns_are_named_with_columns_found(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "prices.csv", "Date,Open,Close\n2020-01-02,1,2\n"))
    assert "missing column(s) High, Low" in message
    assert "found: Date, Open, Close" in message


def test_missing_date_column(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "prices.csv", "Open,High,Low,Close\n1,2,0.5,1.5\n"))
    assert "missing column(s) Date" in message


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    assert "empty" in error_of(write(tmp_path, "empty.csv", ""))
    assert "no data rows" in error_of(write(tmp_path, "header.csv", "Date,Open,High,Low,Close\n"))


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ("2020-13-45,10,11,9,10\n", "line 3: cannot read the date '2020-13-45'"),
        (",10,11,9,10\n", "line 3: the date is empty"),
        ("2020-01-03,null,null,null,null\n", "line 3 (2020-01-03): Open is 'null'"),
        ("2020-01-03,10,,9,10\n", "line 3 (2020-01-03): High is empty"),
        ("2020-01-03,10,11,abc,10\n", "line 3 (2020-01-03): Low is 'abc'"),
        ("2020-01-03,10,11,9,-1\n", "line 3 (2020-01-03): Close -1.0 is not positive"),
        ("2020-01-03,0,11,9,10\n", "line 3 (2020-01-03): Open 0.0 is not positive"),
        ("2020-01-03,101.8,101.5,102.0,101.7\n",
         "line 3 (2020-01-03): High 101.5 is below Low 102.0; every bar needs Low <= Open, "
         "Close <= High"),
        ("2020-01-03,10,11,9,11.5\n", "line 3 (2020-01-03): High 11.0 is below Close 11.5"),
        ("2020-01-03,10,11,9.5,9.2\n", "line 3 (2020-01-03): Low 9.5 is above Close 9.2"),
        ("2020-01-01,10,11,9,10\n", "line 3 (2020-01-01): timestamp is earlier than the "
         "previous row's 2020-01-02; rows must be in ascending time order"),
        ("2020-01-02,10,11,9,10\n", "line 3 (2020-01-02): duplicate timestamp (same as line 2)"),
    ],
)  # fmt: skip
def test_bad_rows_name_file_line_date_and_problem(tmp_path: Path, rows: str, fragment: str) -> None:
    text = "Date,Open,High,Low,Close\n2020-01-02,10,11,9,10\n" + rows + "2020-01-06,10,11,9,10\n"
    message = error_of(write(tmp_path, "prices.csv", text))
    assert fragment in message


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    text = "\nDate,Open,High,Low,Close\n2020-01-02,10,11,9,10\n\n2020-01-03,10,9,11,10\n"
    message = error_of(write(tmp_path, "gaps.csv", text))
    assert "line 5 (2020-01-03): High 9.0 is below Low 11.0" in message


def test_unsorted_file_reports_first_out_of_order_row(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close\n"
        "2020-01-02,1,2,0.5,1\n2020-01-06,1,2,0.5,1\n2020-01-03,1,2,0.5,1\n"
    )
    message = error_of(write(tmp_path, "shuffled.csv", text))
    assert "line 4 (2020-01-03): timestamp is earlier than the previous row's 2020-01-06" in message


def test_negative_volume_and_out_of_range_cot_index(tmp_path: Path) -> None:
    volume = write(
        tmp_path, "vol.csv", "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1,-5\n"
    )
    assert "line 2 (2020-01-02): Volume -5.0 is negative" in error_of(volume)
    cot = write(
        tmp_path, "cot.csv", "Date,Open,High,Low,Close,COT_Index\n2020-01-02,1,2,0.5,1,85\n"
    )
    assert "line 2 (2020-01-02): COT_Index 85.0 is outside [-1, 1]" in error_of(cot)


# --------------------------------------------------------------------------- one validation


def _frame(bars: int = 60, freq: str = "B", start: str = "2024-01-02") -> pd.DataFrame:
    index = pd.date_range(start, periods=bars, freq=freq)
    close = 100 + np.arange(bars) * 0.1
    return pd.DataFrame({"Open": close, "High": close + 1, "Low": close - 1, "Close": close,
                         "Volume": 10.0}, index=index)


def _with(column: str, row: int, value: float) -> pd.DataFrame:
    frame = _frame()
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _frame().iloc[::-1], "data row 1 (2024-03-22): the index runs newest first"),
        (lambda: pd.concat([_frame().iloc[:10], _frame().iloc[9:]]),
         "data row 10 (2024-01-15): duplicate timestamp (same as row 9)"),
        (lambda: _frame().iloc[[0, 2, 1, *range(3, 60)]],
         "data row 2 (2024-01-03): timestamp is earlier than the previous row's 2024-01-04"),
        (lambda: _with("Close", 5, np.nan), "data row 5 (2024-01-09): Close is missing (NaN)"),
        (lambda: _with("High", 7, np.inf), "data row 7 (2024-01-11): High is inf"),
        (lambda: _with("Low", 3, -1.0), "data row 3 (2024-01-05): Low -1.0 is not positive"),
        (lambda: _with("Low", 4, 500.0), "data row 4 (2024-01-08): High 101.4 is below Low 500.0"),
        (lambda: _with("Volume", 2, -3.0), "data row 2 (2024-01-04): Volume -3.0 is negative"),
        (lambda: _frame().iloc[:1], "data has 1 bar; a backtest needs at least 20"),
        (lambda: _frame().reset_index(), "the index is a RangeIndex, not timestamps"),
        (lambda: _frame()["Close"], "data is a pandas Series; pass a DataFrame"),
        (lambda: _frame().rename(columns=str.lower), "missing column(s) Open, High, Low, Close"),
        (lambda: _frame().astype({"Close": str}), "column Close holds"),
        (lambda: [1.0, 2.0], "data is a list; pass a DataFrame of bars"),
    ],
    ids=["descending", "duplicate", "unsorted", "nan", "inf", "non-positive", "high-below-low",
         "negative-volume", "one-bar", "range-index", "series", "lower-case", "text", "list"],
)
def test_a_bad_frame_is_the_same_one_line_error_as_a_bad_file(make, message):
    from meridian import run_backtest

    with pytest.raises(DataError) as caught:
        run_backtest("sma_cross", {"fast": 5, "slow": 10}, data=make())
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_frame_keeps_its_own_columns_and_is_not_copied():
    from meridian.data import check_frame

    frame = _frame().assign(Signal=1.0)
    assert check_frame(frame) is frame and "Signal" in frame.columns


def test_inf_in_a_file_is_refused(tmp_path):
    path = write(tmp_path, "inf.csv", "Date,Open,High,Low,Close\n2020-01-02,1,inf,0.5,1\n")
    assert "line 2 (2020-01-02): High is inf" in error_of(path)


def _mixed() -> pd.DataFrame:
    daily = _frame(100)
    minutes = _frame(200, "5min", "2024-06-03 09:30")
    return pd.concat([daily, minutes])


def test_a_series_mixing_daily_and_intraday_bars_is_one_line(tmp_path):
    from meridian.data import check_frame

    with pytest.raises(DataError, match=r"row 100 \(2024-06-03 09:30:00\): the bars change from "
                                        "daily to 5-minute here"):
        check_frame(_mixed())
    path = tmp_path / "mixed.csv"
    _mixed().rename_axis("Date").to_csv(path)
    assert "line 102 (2024-06-03 09:30:00): the bars change from daily to 5-minute" \
        in error_of(path)


def test_weekends_holidays_and_overnight_gaps_are_not_a_change_of_frequency():
    from meridian.data import check_frame

    hours = pd.date_range("2024-01-01", periods=24 * 60, freq="h")
    sessions = hours[(hours.hour >= 9) & (hours.hour < 16) & (hours.day_of_week < 5)]
    frame = _frame(len(sessions)).set_axis(sessions)
    daily = _frame(400).drop(_frame(400).index[[50, 51, 52, 200]])  # a missing week, a holiday
    assert check_frame(frame) is frame and check_frame(daily) is daily


@pytest.mark.parametrize(("freq", "words"), [("B", "daily"), ("D", "daily"), ("W", "weekly"),
                                             ("MS", "monthly"), ("5min", "5-minute"),
                                             ("h", "1-hour"), ("4h", "4-hour")])
def test_bar_frequency_in_words(freq, words):
    from meridian.data.ohlcv import bar_frequency

    assert bar_frequency(pd.date_range("2020-01-01", periods=50, freq=freq)) == words


def test_a_gzip_bomb_is_refused_before_it_is_unpacked_into_memory(tmp_path):
    import resource
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    parts = [packer.compress(b"Date,Open,High,Low,Close\n")]
    newlines = b"\n" * (16 << 20)
    parts += [packer.compress(newlines) for _ in range(66)]  # 1.03 GiB of blank lines
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(b"".join(parts) + packer.flush())
    assert path.stat().st_size < 2 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert "prices.csv.gz: unpacks to more than 1,024 MiB; refusing it" in error_of(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # streamed and counted, never held


def test_a_broken_gzip_is_one_line(tmp_path):
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert "prices.csv.gz: not a readable gzip file" in error_of(path)


def test_a_device_is_not_a_data_file():
    assert "/dev/zero: file is not a regular file; pass the path of a CSV or Parquet" in \
        error_of(Path("/dev/zero"))
