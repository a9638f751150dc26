"""The COT release calendar: holidays, the shutdown backlogs, a user's table, and no look-ahead
across a shutdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meridian.data import align_to_bars, attach_cot, load_sample
from meridian.data._synthetic import _write_cot, generate_cot
from meridian.data.calendar import BACKLOGS, read_release_table, release_dates
from meridian.exceptions import DataError
from meridian.record import data_provenance


@pytest.mark.parametrize(("as_of", "released"), [
    ("2013-10-01", "2013-10-25"),  # 2013: nothing published while closed
    ("2018-12-24", "2019-02-01"),  # 2018-19: Monday's data (Christmas Tuesday), Feb 1
    ("2019-01-29", "2019-02-19"),  # then Tuesdays and Fridays
    ("2019-03-05", "2019-03-08"),  # current again: the Friday after
    ("2025-09-30", "2025-11-19"),  # 2025: the CFTC's schedule, first on a Wednesday
    ("2025-11-10", "2025-12-12"),  # Monday's data (Veterans Day Tuesday), keyed by its week
    ("2024-03-05", "2024-03-08"),  # an ordinary week
    ("2023-11-21", "2023-11-27"),  # Thanksgiving: the holiday rule
])
def test_release_dates_know_the_shutdown_backlogs(as_of, released):
    assert release_dates(pd.DatetimeIndex([as_of]))[0] == pd.Timestamp(released)


def test_every_backlog_release_is_after_its_week_and_in_order():
    keys = pd.to_datetime([row[0] for row in BACKLOGS])
    days = pd.to_datetime([row[1] for row in BACKLOGS])
    assert (keys.day_of_week == 1).all()  # keyed by the Tuesday of the week
    assert ((days - keys).days > 3).all() and days.is_monotonic_increasing


def test_no_look_ahead_across_a_shutdown():
    """Each bar sees only reports released before its date: through the 2018-19 backlog the
    bars keep the last report published before it (as of Dec 18, 2018) until Feb 4, 2019."""
    as_of = pd.date_range("2018-09-04", "2019-06-25", freq="W-TUE")
    values = pd.Series(np.arange(len(as_of), dtype=float), index=as_of)
    release = release_dates(as_of)
    bars = pd.bdate_range("2018-10-01", "2019-06-28")
    aligned = align_to_bars(values, release, bars)
    for bar, value in aligned.dropna().items():
        report = int(value)
        assert release[report] < bar  # public before the bar's day
    last_before = values[pd.Timestamp("2018-12-18")]
    held = aligned.loc["2018-12-24":"2019-02-01"]
    assert (held == last_before).all()
    assert aligned[pd.Timestamp("2019-02-04")] == values[pd.Timestamp("2018-12-25")]


def test_a_users_release_table_overrides_and_is_recorded(tmp_path: Path):
    prices = load_sample(with_cot=False)
    cot_file = tmp_path / "cot.csv"

    _write_cot(generate_cot(prices, 7), cot_file)
    plain = attach_cot(prices, cot_file)
    table = tmp_path / "releases.csv"
    # every report of 2020 released four weeks late
    rows = [f"{d:%Y-%m-%d},{d + pd.Timedelta(days=28):%Y-%m-%d}"
            for d in pd.date_range("2020-01-07", "2020-12-29", freq="W-TUE")]
    table.write_text("as_of,release\n" + "\n".join(rows) + "\n")
    late = attach_cot(prices, cot_file, releases=table)
    assert not plain["COT_Index"].equals(late["COT_Index"])
    assert plain["COT_Index"].loc[:"2019-12-31"].equals(late["COT_Index"].loc[:"2019-12-31"])
    provenance = data_provenance(late)
    assert str(table) in provenance["cot_calendar"] and "shutdown" in provenance["cot_calendar"]
    assert len(provenance["cot_sha256"]) == 64
    assert "shutdown backlogs" in data_provenance(plain)["cot_calendar"]
    parsed, digest = read_release_table(table)
    assert len(parsed) == 52 and len(digest) == 64


@pytest.mark.parametrize(("text", "message"), [
    ("as_of,release\n2020-01-07,someday\n", "line 2: expected 'as-of date, release date'"),
    ("2020-01-07,2020-01-01\n", "line 1: release 2020-01-01 is before the as-of date"),
    ("as_of,release\n", "no rows"),
])
def test_a_bad_release_table_is_one_line(tmp_path: Path, text, message):
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_release_table(path)
    with pytest.raises(DataError, match="not found"):
        read_release_table(tmp_path / "missing.csv")


def test_load_market_data_passes_the_group_and_the_release_table(tmp_path: Path):
    from meridian.data import SAMPLE_COT, SAMPLE_OHLCV, load_market_data

    table = tmp_path / "releases.csv"
    table.write_text("2015-01-06,2015-03-31\n")
    frame, note = load_market_data(SAMPLE_OHLCV, SAMPLE_COT, cot_group="noncommercials",
                                   cot_releases=table)
    assert "(noncommercials)" in note and str(table) in frame.attrs["cot_calendar"]
    plain, _ = load_market_data(SAMPLE_OHLCV, SAMPLE_COT)
    assert not frame["COT_Index"].equals(plain["COT_Index"])
