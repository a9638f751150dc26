"""COT: both CFTC header variants, market choice, the Williams index and release-lag alignment."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meridian.data import align_to_bars, attach_cot, cot_index, read_cot, release_dates
from meridian.exceptions import DataError, ParameterError

SPACED_HEADER = (
    '"Market and Exchange Names","As of Date in Form YYMMDD","As of Date in Form YYYY-MM-DD",'
    '"CFTC Contract Market Code","CFTC Market Code in Initials","CFTC Region Code",'
    '"CFTC Commodity Code","Open Interest (All)","Noncommercial Positions-Long (All)",'
    '"Noncommercial Positions-Short (All)","Noncommercial Positions-Spreading (All)",'
    '"Commercial Positions-Long (All)","Commercial Positions-Short (All)",'
    '" Total Reportable Positions-Long (All)","Total Reportable Positions-Short (All)",'
    '"Nonreportable Positions-Long (All)","Nonreportable Positions-Short (All)"'
)
CRUDE = "CRUDE OIL, LIGHT SWEET - NEW YORK MERCANTILE EXCHANGE"
GOLD = "GOLD - COMMODITY EXCHANGE INC."


def spaced_row(
    name: str, day: str, code: str, oi: int, ncl: int, ncs: int, cl: int, cs: int
) -> str:
    """A row as CFTC writes it: quoted name, unquoted code, space-padded counts."""
    stamp = pd.Timestamp(day)
    counts = [oi, ncl, ncs, 1000, cl, cs, ncl + 1000 + cl, ncs + 1000 + cs, 10, 10]
    padded = ",".join(f"{c:>9d}" for c in counts)
    return f'"{name}",{stamp:%y%m%d},{day},{code},CME ,00,{code[:3]} ,{padded}'


def write_annual_zip(path: Path, rows: list[str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annual.txt", "\r\n".join([SPACED_HEADER, *rows]) + "\r\n")
    return path


@pytest.fixture
def annual_zip(tmp_path: Path) -> Path:
    rows = [  # CFTC lists newest first
        spaced_row(CRUDE, "2023-11-21", "067651", 1_700_000, 300_000, 100_000, 700_000, 900_000),
        spaced_row(CRUDE, "2023-11-14", "067651", 1_690_000, 290_000, 110_000, 710_000, 880_000),
        spaced_row(GOLD, "2023-11-21", "088691", 450_000, 200_000, 50_000, 60_000, 230_000),
        spaced_row(GOLD, "2023-11-14", "088691", 440_000, 190_000, 55_000, 65_000, 220_000),
    ]
    return write_annual_zip(tmp_path / "deacot2023.zip", rows)


def test_reads_spaced_headers_from_zipped_annual_txt(annual_zip: Path) -> None:
    cot = read_cot(annual_zip, market="067651")
    assert list(cot.columns) == [
        "market", "open_interest", "comm_long", "comm_short", "noncomm_long", "noncomm_short",
        "net", "comm_net", "release",
    ]  # fmt: skip
    assert cot.index.name == "as_of"
    assert list(cot.index) == [pd.Timestamp("2023-11-14"), pd.Timestamp("2023-11-21")]
    assert (cot["market"] == CRUDE).all()  # the quoted comma did not split the name
    assert cot["comm_long"].tolist() == [710_000, 700_000]
    assert cot["comm_net"].tolist() == [710_000 - 880_000, 700_000 - 900_000]
    assert cot["noncomm_short"].tolist() == [110_000, 100_000]
    assert list(cot["release"]) == [pd.Timestamp("2023-11-17"), pd.Timestamp("2023-11-27")]


def test_reads_underscore_headers_with_thousands_separators(tmp_path: Path) -> None:
    text = (
        "Market_and_Exchange_Names,As_of_Date_In_Form_YYMMDD,Report_Date_as_YYYY-MM-DD,"
        "CFTC_Contract_Market_Code,Open_Interest_All,NonComm_Positions_Long_All,"
        "NonComm_Positions_Short_All,Comm_Positions_Long_All,Comm_Positions_Short_All\n"
        f'"{GOLD}",231114,2023-11-14,088691,"440,000","190,000","55,000","65,000","220,000"\n'
        f'"{GOLD}",231121,2023-11-21,088691,450 000,200 000,50 000,60 000,230 000\n'
    )
    path = tmp_path / "cot_underscore.csv"
    path.write_text(text)
    cot = read_cot(path)  # a single market needs no market=
    assert cot["open_interest"].tolist() == [440_000, 450_000]
    assert cot["comm_net"].tolist() == [65_000 - 220_000, 60_000 - 230_000]
    assert cot["noncomm_long"].tolist() == [190_000, 200_000]


def test_yymmdd_only_file(tmp_path: Path) -> None:
    text = (
        "Market and Exchange Names,As of Date in Form YYMMDD,Open Interest (All),"
        "Noncommercial Positions-Long (All),Noncommercial Positions-Short (All),"
        "Commercial Positions-Long (All),Commercial Positions-Short (All)\n"
        "WHEAT,050104,10,1,2,3,4\nWHEAT,991228,10,1,2,3,4\n"
    )
    path = tmp_path / "old.txt"
    path.write_text(text)
    assert list(read_cot(path).index) == [pd.Timestamp("1999-12-28"), pd.Timestamp("2005-01-04")]


def test_market_by_name_substring_case_insensitive(annual_zip: Path) -> None:
    assert (read_cot(annual_zip, market="gold - commodity")["market"] == GOLD).all()
    assert (read_cot(annual_zip, market="light sweet")["market"] == CRUDE).all()


@pytest.mark.parametrize(
    ("market", "fragment"),
    [
        (None, "holds 2 markets, choose one with market="),
        ("silver", "no market matches 'silver'"),
        ("exchange", "market 'exchange' matches 2 markets"),
    ],
)
def test_market_selection_errors_list_the_markets(
    annual_zip: Path, market: str | None, fragment: str
) -> None:
    with pytest.raises(DataError) as caught:
        read_cot(annual_zip, market=market)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert CRUDE in message and GOLD in message


def test_several_years_concatenate_and_drop_duplicate_rows(tmp_path: Path) -> None:
    row_a = spaced_row(GOLD, "2022-12-27", "088691", 400_000, 1, 2, 3, 4)
    row_b = spaced_row(GOLD, "2023-01-03", "088691", 410_000, 1, 2, 5, 4)
    first = write_annual_zip(tmp_path / "deacot2022.zip", [row_a, row_b])
    second = write_annual_zip(tmp_path / "deacot2023.zip", [row_b])
    cot = read_cot([second, first], market="088691")
    assert list(cot.index) == [pd.Timestamp("2022-12-27"), pd.Timestamp("2023-01-03")]
    assert cot["comm_net"].tolist() == [-1, 1]


def test_conflicting_versions_of_a_report_are_an_error(tmp_path: Path) -> None:
    one = write_annual_zip(tmp_path / "a.zip", [spaced_row(GOLD, "2023-01-03", "1", 9, 1, 2, 3, 4)])
    two = write_annual_zip(tmp_path / "b.zip", [spaced_row(GOLD, "2023-01-03", "1", 9, 1, 2, 5, 4)])
    with pytest.raises(DataError, match="two different reports"):
        read_cot([one, two])


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="COT file not found"):
        read_cot(tmp_path / "deacot1999.zip")
    wrong = tmp_path / "prices.csv"
    wrong.write_text("Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1\n")
    with pytest.raises(DataError, match="not a CFTC COT file"):
        read_cot(wrong)
    bad = write_annual_zip(
        tmp_path / "bad.zip",
        [spaced_row(GOLD, "2023-01-03", "1", 9, 1, 2, 3, 4).replace("        3,", "      x3,")],
    )
    with pytest.raises(DataError, match=r"bad\.zip:annual\.txt line 2 .*comm_long is 'x3'"):
        read_cot(bad)


def test_cot_index_hand_computed_lookback_3() -> None:
    net = pd.Series(
        [0, 8, 2, 20, 20, 20, -10], index=pd.date_range("2023-01-03", periods=7, freq="7D")
    )
    index = cot_index(net, lookback=3)
    # windows: [0,8,2] -> (2-0)/8=.25 -> -.5; [8,2,20] -> 1; [2,20,20] -> 1; flat -> 0; -10 -> -1
    expected = [np.nan, np.nan, -0.5, 1.0, 1.0, 0.0, -1.0]
    np.testing.assert_allclose(index.to_numpy(), expected)
    assert index.index.equals(net.index)
    with pytest.raises(ParameterError):
        cot_index(net, lookback=0)


@pytest.mark.parametrize(
    ("as_of", "released"),
    [
        ("2023-11-14", "2023-11-17"),  # ordinary week: Tuesday -> Friday
        ("2023-11-21", "2023-11-27"),  # Thanksgiving Thursday -> Monday
        ("2023-09-05", "2023-09-11"),  # Labor Day Monday -> Monday after
        ("2020-12-22", "2020-12-28"),  # Christmas on the Friday itself -> Monday
        ("2023-07-03", "2023-07-07"),  # Monday as-of (July 4 Tuesday) -> Friday
        ("2023-11-15", "2023-11-20"),  # Wednesday as-of: +3 days is Saturday -> Monday
        ("2023-11-17", "2023-11-20"),  # Friday as-of: never before the next business day
    ],
)
def test_release_dates(as_of: str, released: str) -> None:
    result = release_dates(pd.DatetimeIndex([as_of]))
    assert result[0] == pd.Timestamp(released)


def test_release_dates_vectorized_and_sorted_input_order_kept() -> None:
    as_of = pd.DatetimeIndex(["2023-11-21", "2023-11-14"])
    assert list(release_dates(as_of)) == [pd.Timestamp("2023-11-27"), pd.Timestamp("2023-11-17")]


def reports() -> tuple[pd.Series, pd.DatetimeIndex]:
    values = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2023-11-14", "2023-11-21"]))
    return values, release_dates(values.index)  # Fri 2023-11-17, Mon 2023-11-27


def test_report_is_invisible_until_the_bar_after_its_release() -> None:
    values, release = reports()
    bars = pd.bdate_range("2023-11-13", "2023-11-30")
    aligned = align_to_bars(values, release, bars)
    assert aligned.index.equals(bars)
    by_day = aligned.to_dict()
    for day in pd.bdate_range("2023-11-13", "2023-11-17"):  # up to and including Friday
        assert np.isnan(by_day[day])
    for day in pd.bdate_range("2023-11-20", "2023-11-27"):  # Monday release day still old
        assert by_day[day] == 1.0
    for day in pd.bdate_range("2023-11-28", "2023-11-30"):  # visible from Tuesday's bar
        assert by_day[day] == 2.0


def test_alignment_compares_local_calendar_dates_of_tz_aware_bars() -> None:
    values, release = reports()
    bars = pd.date_range(
        "2023-11-17 09:30", periods=4 * 24 * 2, freq="30min", tz="America/New_York"
    )
    aligned = align_to_bars(values, pd.Series(release, index=values.index), bars)
    friday = aligned[bars.date == pd.Timestamp("2023-11-17").date()]
    assert friday.isna().all()  # even the 16:00 bar after the 15:30 release
    assert (aligned[bars.date >= pd.Timestamp("2023-11-18").date()] == 1.0).all()


def test_alignment_never_looks_ahead_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    as_of = pd.date_range("2020-01-07", periods=120, freq="W-TUE")
    values = pd.Series(rng.normal(size=len(as_of)), index=as_of)
    release = release_dates(as_of)
    bars = pd.bdate_range("2019-12-01", "2022-06-30")
    aligned = align_to_bars(values, release, bars)
    for bar, got in aligned.items():
        public = values[release < bar]
        expected = public.iloc[-1] if len(public) else np.nan
        assert got == expected or (np.isnan(got) and np.isnan(expected)), bar


def test_attach_cot_adds_aligned_index_to_a_copy(tmp_path: Path) -> None:
    as_of = pd.date_range("2023-01-03", periods=10, freq="W-TUE")
    rows = [
        spaced_row(GOLD, f"{day:%Y-%m-%d}", "088691", 1000, 100, 100, 300 + 10 * i, 400)
        for i, day in enumerate(as_of)
    ]
    path = write_annual_zip(tmp_path / "gold.zip", rows)
    bars = pd.bdate_range("2023-01-02", "2023-03-31", name="Date")
    ohlcv = pd.DataFrame({"Open": 1.0, "High": 2.0, "Low": 0.5, "Close": 1.5}, index=bars)
    out = attach_cot(ohlcv, path, lookback=3)
    assert "COT_Index" not in ohlcv.columns
    assert list(out.columns) == ["Open", "High", "Low", "Close", "COT_Index"]
    # Rising net -> +1 once 3 reports exist. The 3rd is as of Tue Jan 17, a week with Martin
    # Luther King Day (Mon Jan 16): released Mon Jan 23, so first usable on Tue Jan 24.
    assert out.loc[:"2023-01-23", "COT_Index"].isna().all()
    assert out.loc["2023-01-24", "COT_Index"] == 1.0
    with pytest.raises(DataError, match="no bar gets a COT index"):
        attach_cot(ohlcv.loc[:"2023-01-23"], path, lookback=3)


DISAGG_HEADER = (
    "Market_and_Exchange_Names,As_of_Date_In_Form_YYMMDD,Report_Date_as_YYYY-MM-DD,"
    "CFTC_Contract_Market_Code,Open_Interest_All,Prod_Merc_Positions_Long_All,"
    "Prod_Merc_Positions_Short_All,Swap_Positions_Long_All,Swap__Positions_Short_All,"
    "M_Money_Positions_Long_All,M_Money_Positions_Short_All"
)
TFF_HEADER = (
    "Market_and_Exchange_Names,As_of_Date_In_Form_YYMMDD,Report_Date_as_YYYY-MM-DD,"
    "CFTC_Contract_Market_Code,Open_Interest_All,Dealer_Positions_Long_All,"
    "Dealer_Positions_Short_All,Asset_Mgr_Positions_Long_All,Asset_Mgr_Positions_Short_All,"
    "Lev_Money_Positions_Long_All,Lev_Money_Positions_Short_All"
)


def test_disaggregated_and_tff_reports_with_a_trader_group(tmp_path: Path) -> None:
    disagg = tmp_path / "fut_disagg_txt_2023.zip"
    with zipfile.ZipFile(disagg, "w") as archive:
        archive.writestr("f_year.txt", "\n".join([
            DISAGG_HEADER,
            f'"{GOLD}",230103,2023-01-03,088691,500000,10,20,30,40,150000,50000',
            f'"{GOLD}",230110,2023-01-10,088691,510000,11,21,31,41,140000,60000',
            f'"{CRUDE}",230103,2023-01-03,067651,900000,1,2,3,4,5,6',
        ]) + "\n")
    money = read_cot(disagg, "088691", group="managed_money")
    assert money["net"].tolist() == [100_000, 80_000]
    assert read_cot(disagg, "gold", group="swap_dealers")["net"].tolist() == [-10, -10]
    assert "comm_net" not in money and list(money["release"]) == list(
        release_dates(money.index))
    tff = tmp_path / "FinFut23.txt"
    tff.write_text("\n".join([
        TFF_HEADER,
        '"E-MINI S&P 500 - CHICAGO MERCANTILE EXCHANGE",230103,2023-01-03,13874A,2000000,'
        '100,200,900000,300000,250000,700000',
    ]) + "\n")
    levered = read_cot(tff, group="leveraged_funds")
    assert levered["net"].tolist() == [-450_000] and levered["lev_long"].tolist() == [250_000]
    with pytest.raises(DataError, match="no commercials columns; this file's trader groups are "
                                        "dealers, asset_managers, leveraged_funds"):
        read_cot(tff)
    with pytest.raises(DataError, match="'whales' is not a trader group"):
        read_cot(tff, group="whales")
    with pytest.raises(DataError, match="close matches: GOLD - COMMODITY EXCHANGE INC."):
        read_cot(disagg, "GOLF", group="managed_money")


def test_a_zip_that_unpacks_past_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "deacot2024.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("annual.txt", "w", force_zip64=True) as member:
        member.write(b"Market_and_Exchange_Names,As_of_Date_In_Form_YYMMDD\n")
        block = b" " * (16 << 20)
        for _ in range(65):  # 1.02 GiB declared in the zip's directory
            member.write(block)
    assert path.stat().st_size < 20 << 20
    with pytest.raises(DataError, match=r"deacot2024.zip: unpacks to more than 1,024 MiB"):
        read_cot(path)
