"""SYNTHETIC sample data: a made-up futures market and its made-up COT reports.

Nothing here is market data. The point is a sample that ships with the package, needs no
download or licence, and still has what the bundled strategies look for: Hurst-style cycles
(so FLD crossings mean something), trends, realistic OHLC bars, and commercials that act as
contrarian hedgers (so a COT index carries some information) -- weakly, as in real markets,
so that backtests on it do not look like a money machine. Everything is drawn from
``numpy.random.default_rng(seed)`` and written with fixed formatting, so the files are
byte-for-byte reproducible: ``python -m meridian.data._synthetic`` regenerates them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240611
START, END = "2012-01-02", "2024-12-31"
MARKET = "MERIDIAN SYNTHETIC FUTURES - SAMPLE EXCHANGE (SYNTHETIC DATA)"
CODE = "999999"
COT_WEEKS_BEFORE = 164  # > 156: the 3-year COT index is defined from the first price bar
SAMPLES = Path(__file__).resolve().parent / "samples"

# The first 17 columns of CFTC's legacy futures-only annual.txt, same names, order and the
# leading space of " Total Reportable Positions-Long (All)".
COT_HEADER = (
    "Market and Exchange Names", "As of Date in Form YYMMDD", "As of Date in Form YYYY-MM-DD",
    "CFTC Contract Market Code", "CFTC Market Code in Initials", "CFTC Region Code",
    "CFTC Commodity Code", "Open Interest (All)", "Noncommercial Positions-Long (All)",
    "Noncommercial Positions-Short (All)", "Noncommercial Positions-Spreading (All)",
    "Commercial Positions-Long (All)", "Commercial Positions-Short (All)",
    " Total Reportable Positions-Long (All)", "Total Reportable Positions-Short (All)",
    "Nonreportable Positions-Long (All)", "Nonreportable Positions-Short (All)",
)  # fmt: skip

# Tuned so the sample is not a money machine: noise dominates, the cycles and the COT index
# carry a little information. Over many seeds, FLD (defaults) averages a Sharpe of about 0.55
# (0.5 without the COT filter), SMA cross about 0.25, and the COT index correlates about 0.1
# with the next 20 days' return; the shipped seed is a typical draw (see samples/README.md).
# Random-walk trend: daily drift and root-mean-square volatility of log price; Student-t
# shocks (fat tails) scaled by a wandering volatility (AR(1) in log: persistence, shock size).
TREND_DRIFT, TREND_VOL, TAIL_DF = 0.00005, 0.011, 8
VOL_PERSISTENCE, VOL_SHOCK = 0.985, 0.04
# Nominal Hurst cycle wavelengths (trading days) and log-price amplitudes.
CYCLES = ((20, 0.0065), (40, 0.011), (80, 0.02), (160, 0.033))
NOISE = 0.003  # i.i.d. log-price noise on top
# Commercials' net position: a hedge against the price (stretch above its COT_MEAN_WEEKS mean,
# COT_MOMENTUM_WEEKS momentum with weight COT_MOMENTUM_WEIGHT) plus AR(1) noise.
COT_MEAN_WEEKS, COT_MOMENTUM_WEEKS, COT_MOMENTUM_WEIGHT = 26, 13, 0.3
COT_NOISE_AR, COT_NOISE = 0.8, 0.45


def generate_ohlcv(seed: int = SEED, start: str = START, end: str = END) -> pd.DataFrame:
    """SYNTHETIC daily OHLCV on business days: random-walk trend + cycles + noise.

    log(Close) = random walk (~1.2%/day, Student-t shocks, volatility wandering slowly) + sum
    of sine cycles (20/40/80/160 days, phase and amplitude drifting) + daily noise. Open is the
    previous close with a small gap; High/Low extend beyond the body in proportion to the
    day's volatility; prices are rounded to a 0.01 tick.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end, name="Date")
    n = len(dates)
    t = np.arange(n)
    shocks = rng.standard_t(TAIL_DF, n) * np.sqrt((TAIL_DF - 2) / TAIL_DF)  # unit variance
    log_vol = np.zeros(n)
    vol_shocks = rng.normal(0, VOL_SHOCK, n)
    for i in range(1, n):  # AR(1) over ~3,400 bars, generated once, offline
        log_vol[i] = VOL_PERSISTENCE * log_vol[i - 1] + vol_shocks[i]
    swing = np.exp(log_vol)
    vol = TREND_VOL * swing / np.sqrt(np.mean(swing**2))
    log_close = np.log(80.0) + np.cumsum(TREND_DRIFT + vol * shocks)
    for wavelength, amplitude in CYCLES:
        phase = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3 / wavelength, n))
        swell = 1 + 0.35 * np.sin(2 * np.pi * t / (9.3 * wavelength) + rng.uniform(0, 2 * np.pi))
        log_close += amplitude * swell * np.sin(2 * np.pi * t / wavelength + phase)
    log_close += rng.normal(0, NOISE, n)

    close = np.exp(log_close)
    prev = np.concatenate(([close[0]], close[:-1]))
    open_ = prev * np.exp(rng.normal(0, 0.0025, n))
    wick_up = np.exp(np.abs(rng.normal(0, 0.55 * vol)))
    wick_down = np.exp(-np.abs(rng.normal(0, 0.55 * vol)))
    open_, close = np.round(open_, 2), np.round(close, 2)
    high = np.maximum(np.round(np.maximum(open_, close) * wick_up, 2), np.maximum(open_, close))
    low = np.minimum(np.round(np.minimum(open_, close) * wick_down, 2), np.minimum(open_, close))
    move = np.abs(np.log(close / open_))
    volume = np.floor(60_000 * np.exp(rng.normal(0, 0.3, n)) * (1 + 25 * move))
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume},
        index=dates,
    )


def generate_cot(ohlcv: pd.DataFrame, seed: int = SEED + 1) -> pd.DataFrame:
    """SYNTHETIC weekly legacy COT reports (Tuesdays) in CFTC's annual.txt column layout.

    Commercials hedge against the price: their net position falls when the price is above its
    half-year mean and after rallies, plus persistent noise. Large speculators mirror them.
    The history starts ``COT_WEEKS_BEFORE`` weeks before the first bar; for those weeks the
    price is a backward random walk from the first close (also synthetic).
    """
    rng = np.random.default_rng(seed)
    first, last = ohlcv.index[0], ohlcv.index[-1]
    as_of = pd.date_range(first - pd.Timedelta(weeks=COT_WEEKS_BEFORE), last, freq="W-TUE")
    weekly = np.log(ohlcv["Close"]).reindex(as_of, method="ffill").to_numpy(copy=True)
    before = np.isnan(weekly)
    m = int(before.sum())
    back = np.cumsum(rng.normal(0, TREND_VOL * np.sqrt(5), m))[::-1]  # weekly steps
    slow_wavelength, slow_amplitude = CYCLES[-1]  # the slowest cycle; 5 bars a week
    turns = np.arange(-m, 0) * 5 / slow_wavelength
    wave = slow_amplitude * np.sin(2 * np.pi * turns + rng.uniform(0, 2 * np.pi))
    weekly[before] = weekly[m] - back + wave - wave[-1]

    price = pd.Series(weekly)
    stretch = price - price.rolling(COT_MEAN_WEEKS, min_periods=1).mean()
    momentum = (price - price.shift(COT_MOMENTUM_WEEKS)).fillna(0.0)
    w = COT_MOMENTUM_WEIGHT
    hedge = -((1 - w) * stretch / stretch.std() + w * momentum / momentum.std()).to_numpy()
    noise = np.zeros(len(as_of))
    shocks = rng.normal(0, COT_NOISE, len(as_of))
    for i in range(1, len(as_of)):  # AR(1) over ~850 weekly rows, generated once, offline
        noise[i] = COT_NOISE_AR * noise[i - 1] + shocks[i]
    comm = np.clip(0.11 * (hedge + noise), -0.3, 0.3)
    spec = np.clip(-0.8 * comm + rng.normal(0, 0.02, len(as_of)), -0.3, 0.3)

    drift = np.zeros(len(as_of))
    steps = rng.normal(0, 0.03, len(as_of))
    for i in range(1, len(as_of)):
        drift[i] = 0.97 * drift[i - 1] + steps[i]
    oi = np.round(250_000 * np.exp(drift))
    spread = np.round(oi * 0.08)
    comm_long, comm_short = np.round(oi * (0.42 + comm / 2)), np.round(oi * (0.42 - comm / 2))
    spec_long, spec_short = np.round(oi * (0.22 + spec / 2)), np.round(oi * (0.22 - spec / 2))
    report_long = spec_long + spread + comm_long
    report_short = spec_short + spread + comm_short
    columns = (
        [MARKET] * len(as_of), as_of.strftime("%y%m%d"), as_of.strftime("%Y-%m-%d"),
        [CODE] * len(as_of), ["SYN"] * len(as_of), ["00"] * len(as_of), ["999"] * len(as_of),
        oi, spec_long, spec_short, spread, comm_long, comm_short, report_long, report_short,
        oi - report_long, oi - report_short,
    )  # fmt: skip
    frame = pd.DataFrame(dict(zip(COT_HEADER, columns, strict=True)))
    counts = list(COT_HEADER[7:])
    frame[counts] = frame[counts].astype("int64")
    return frame


def write_samples(directory: str | Path = SAMPLES, seed: int = SEED) -> tuple[Path, Path]:
    """Write ``sample_ohlcv.csv`` and ``sample_cot.csv`` (CFTC layout) with fixed formatting."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ohlcv = generate_ohlcv(seed)
    cot = generate_cot(ohlcv, seed + 1)

    ohlcv_path = directory / "sample_ohlcv.csv"
    _write_ohlcv(ohlcv, ohlcv_path)

    cot_path = directory / "sample_cot.csv"
    _write_cot(cot, cot_path)
    return ohlcv_path, cot_path


def _write_ohlcv(ohlcv: pd.DataFrame, path: Path) -> None:
    text = ohlcv.astype({"Volume": "int64"}).to_csv(
        float_format="%.2f", date_format="%Y-%m-%d", lineterminator="\n"
    )
    path.write_bytes(text.encode("ascii"))


def _write_cot(cot: pd.DataFrame, path: Path) -> None:
    lines = [",".join(f'"{name}"' for name in COT_HEADER)]
    for row in cot.itertuples(index=False):  # ~850 rows per market, written once
        name, yymmdd, iso, code, initials, region, commodity, *counts = row
        numbers = ",".join(f"{value:>9d}" for value in counts)
        lines.append(f'"{name}",{yymmdd},{iso},{code},{initials},{region},{commodity},{numbers}')
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii"))


UNIVERSE_MARKETS = (  # name, CFTC-style code, seed offset, price scale, first date, share dropped
    ("SYN EQUITY INDEX", "999901", 11, 50.0, "2015-01-02", 0.0),
    ("SYN TREASURY BOND", "999902", 12, 1.5, "2015-01-02", 0.0),
    ("SYN CRUDE OIL", "999903", 13, 0.8, "2015-01-02", 0.02),
    ("SYN GOLD", "999904", 14, 20.0, "2017-01-02", 0.01),
)
"""The example universe's SYNTHETIC markets: different price levels, one starting later and
two missing some days (different calendars), all in one multi-market COT file."""


def write_universe(directory: str | Path, seed: int = SEED) -> list[Path]:
    """Write the example universe's SYNTHETIC data: ``<code>.csv`` per market and one
    ``cot.csv`` holding every market's reports (CFTC layout); returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written, reports = [], []
    for name, code, offset, price_scale, first, dropped in UNIVERSE_MARKETS:
        ohlcv = generate_ohlcv(seed + offset, start=first)
        ohlcv[["Open", "High", "Low", "Close"]] = (ohlcv[["Open", "High", "Low", "Close"]]
                                                   * price_scale).round(2)
        if dropped:
            keep = np.random.default_rng(seed + offset).random(len(ohlcv)) >= dropped
            ohlcv = ohlcv[keep]
        path = directory / f"{code}.csv"
        _write_ohlcv(ohlcv, path)
        written.append(path)
        cot = generate_cot(ohlcv, seed + offset + 100)
        cot["Market and Exchange Names"] = f"{name} - SAMPLE EXCHANGE (SYNTHETIC DATA)"
        cot["CFTC Contract Market Code"] = code
        reports.append(cot)
    _write_cot(pd.concat(reports, ignore_index=True), directory / "cot.csv")
    return [*written, directory / "cot.csv"]


UNIVERSE_DATA = Path(__file__).resolve().parents[1] / "_examples" / "universes" / "data"

if __name__ == "__main__":
    for written in [*write_samples(), *write_universe(UNIVERSE_DATA)]:
        print(f"wrote {written} (SYNTHETIC data, seed {SEED})")
