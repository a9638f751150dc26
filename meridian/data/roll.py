"""Continuous futures from one file per contract: :func:`roll_contracts` and ``meridian data
roll``.

A futures strategy trades one series, but the exchange lists contracts that expire. The
contracts are put in order of their last bar and the series holds one at a time:

* **When to roll** (``roll``): ``volume`` (or ``open_interest``) — on the first bar ``t`` both
  contracts trade on where the next contract's Volume (OpenInterest) exceeds the current one's;
  ``calendar:N`` — ``N`` bars before the current contract's last bar (its expiry, known in
  advance). A contract's last shared bar forces the roll at the latest (reason ``expiry``);
  contracts still trading (the data's last bar) are never forced to roll by the data ending.
* **No look-ahead:** the roll decided at bar ``t``'s close takes effect on the next contract's
  first bar after ``t``; bar ``t`` itself is still the current contract's. So a strategy never
  sees a contract before the moment a trader would have moved to it.
* **Adjustment** (``adjust``), back-adjusted so the newest contract's prices are the real ones,
  from both contracts' closes on the decision bar: ``ratio`` multiplies all earlier bars by
  ``to_close / from_close`` (returns are preserved, prices stay positive); ``difference`` adds
  ``to_close − from_close`` (price changes are preserved; early prices can reach zero);
  ``none`` splices the raw prices (every roll is a jump).

The result keeps the held contract's own close as ``UnadjustedClose`` (whole contracts are
sized on it, :mod:`meridian.engine.backtest`), its ``Volume`` and ``OpenInterest``, and the
``Contract`` name; the roll log says for each roll when it was decided and took effect, from
and to which contract, both closes and the gap.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from meridian._files import write_atomic
from meridian.data.ohlcv import PRICE_COLUMNS, load_ohlcv
from meridian.exceptions import DataError

ROLL_RULES = ("volume", "open_interest", "calendar:N")
ADJUSTMENTS = ("ratio", "difference", "none")
_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".txt.gz", ".tsv.gz", ".parquet", ".pq")
_COMPARED = {"volume": "Volume", "open_interest": "OpenInterest"}
LOG_COLUMNS = ("decided", "effective", "from", "to", "from_close", "to_close", "gap", "reason")


def parse_roll(rule: str) -> tuple[str, int]:
    """``"volume"`` → ``("volume", 0)``; ``"calendar:5"`` → ``("calendar", 5)``."""
    text = str(rule).strip().lower().replace("-", "_")
    if text in _COMPARED:
        return text, 0
    match = re.fullmatch(r"calendar:(\d{1,4})", text)
    if match:
        return "calendar", int(match.group(1))
    raise DataError(f"roll rule {rule!r}: use volume, open_interest or calendar:N (roll N bars "
                    "before the contract's last bar, e.g. calendar:5)")


def contract_files(folder: str | Path) -> list[Path]:
    """The contract files in ``folder`` (CSV or Parquet; the file name is the contract)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass the folder holding one CSV or Parquet "
                        "file per contract")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".")
                   and p.name.lower().endswith(_SUFFIXES) and ".rolls." not in p.name)
    if not files:
        raise DataError(f"{folder}: no contract files; expected one CSV or Parquet file per "
                        "contract (e.g. CLZ24.csv) with Date, Open, High, Low, Close, Volume")
    return files


def _name(path: Path) -> str:
    name = path.name
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_contracts(folder: str | Path, need: str | None = None) -> list[tuple[str, pd.DataFrame]]:
    """Each contract's bars (validated like any OHLCV file), in order of expiry: their last
    bar, and for contracts still trading (the same last bar) the month code of their names
    (``CLZ24`` before ``CLF25``). ``need`` is a column every contract must have (``Volume``
    for a volume roll)."""
    contracts = []
    for path in contract_files(folder):
        frame = load_ohlcv(path)
        if need and (need not in frame.columns or frame[need].isna().all()):
            rule = "volume" if need == "Volume" else "open_interest"
            raise DataError(f"{path}: no {need} column; --roll {rule} compares the contracts' "
                            f"{need} (or roll by the calendar: --roll calendar:5)")
        contracts.append((_name(path), frame))
    contracts.sort(key=lambda item: (item[1].index[-1], _month_code(item[0]) or (0, 0)))
    for (first, a), (second, b) in zip(contracts, contracts[1:], strict=False):
        if a.index[-1] == b.index[-1] and not (_month_code(first) and _month_code(second)
                                               and _month_code(first) != _month_code(second)):
            raise DataError(f"{first} and {second} both end on {_day(a.index[-1])}, so neither "
                            "succeeds the other; name still-trading contracts by their expiry "
                            "month (CLZ24, CLF25) or remove the copy")
    return contracts


_MONTHS = "FGHJKMNQUVXZ"  # the exchanges' month codes, January to December


def _month_code(name: str) -> tuple[int, int] | None:
    """(year, month) from a contract name ending in a month code and year: ``CLZ24``,
    ``ESH2025``; None otherwise."""
    match = re.search(r"([FGHJKMNQUVXZ])(\d{2}|\d{4})$", name.upper())
    if not match:
        return None
    year = int(match.group(2))
    year += 0 if year >= 100 else (2000 if year < 70 else 1900)
    return year, _MONTHS.index(match.group(1)) + 1


def _day(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else str(stamp)


def _decide(current: tuple[str, pd.DataFrame], successor: tuple[str, pd.DataFrame],
            since: pd.Timestamp, kind: str, bars: int) -> tuple[pd.Timestamp | None, str]:
    """The bar whose close decides the roll from ``current`` to ``successor`` (a bar both
    trade on, from ``since``, when the series moved to ``current``) and why; None while both
    still trade and the rule has not fired (live data: no roll is forced by the data's end)."""
    (name, cur), (next_name, nxt) = current, successor
    shared = cur.index.intersection(nxt.index)
    shared = shared[shared >= since]
    if shared.empty:
        if nxt.index[0] > cur.index[-1]:
            raise DataError(f"gap: {name} ends on {_day(cur.index[-1])} but {next_name} starts "
                            f"on {_day(nxt.index[0])}; a roll needs a bar both contracts trade "
                            "on (add the missing bars or the contract between them)")
        raise DataError(f"{name} and {next_name} share no bar from {_day(since)} on; a roll "
                        "needs a bar both contracts trade on")
    expired = cur.index[-1] < nxt.index[-1]
    if kind == "calendar":
        due = cur.index[max(len(cur) - 1 - bars, 0)]
        eligible = shared[shared >= due]
        if expired and len(eligible):
            return eligible[0], f"calendar:{bars}"
    else:
        column = _COMPARED[kind]
        ahead = nxt[column].reindex(shared).to_numpy() > cur[column].reindex(shared).to_numpy()
        if ahead.any():
            return shared[int(np.argmax(ahead))], kind
    return (shared[-1], "expiry") if expired else (None, "")


def roll_contracts(folder: str | Path, roll: str = "volume",
                   adjust: str = "ratio") -> tuple[pd.DataFrame, pd.DataFrame]:
    """One continuous series from the contract files in ``folder`` and its roll log (one row
    per roll: ``decided``, ``effective``, ``from``, ``to``, ``from_close``, ``to_close``,
    ``gap``, ``reason``), by the rules in this module's docstring. A roll decided on the last
    bar of live data is not in the series yet (its effect is the next bar). Bad input — no
    contract files, a contract without bars, two contracts ending together that no name
    orders, a gap between contracts, a missing Volume/OpenInterest column — is a one-line
    :class:`DataError`."""
    kind, bars = parse_roll(roll)
    if adjust not in ADJUSTMENTS:
        raise DataError(f"adjustment {adjust!r}: use ratio, difference or none")
    contracts = read_contracts(folder, _COMPARED.get(kind))
    pieces, rolls = [], []
    since = contracts[0][1].index[0]
    held = contracts[0]
    for successor in contracts[1:]:
        decided, reason = _decide(held, successor, since, kind, bars)
        (name, cur), (next_name, nxt) = held, successor
        after = nxt.index[nxt.index > decided] if decided is not None else nxt.index[:0]
        if after.empty:
            break  # still on the current contract at the data's end
        pieces.append((name, cur.loc[since:decided]))
        from_close, to_close = float(cur.at[decided, "Close"]), float(nxt.at[decided, "Close"])
        rolls.append((decided, after[0], name, next_name, from_close, to_close,
                      to_close - from_close, reason))
        since, held = after[0], successor
    pieces.append((held[0], held[1].loc[since:]))
    log = pd.DataFrame(rolls, columns=list(LOG_COLUMNS))
    return _adjusted(pieces, log, adjust), log


def _adjusted(pieces: list[tuple[str, pd.DataFrame]], log: pd.DataFrame,
              adjust: str) -> pd.DataFrame:
    """The pieces joined, back-adjusted: piece i carries the rolls after it."""
    ratios = (log["to_close"] / log["from_close"]).to_numpy()
    gaps = log["gap"].to_numpy()
    with_oi = all("OpenInterest" in frame.columns for _, frame in pieces)
    parts = []
    for i, (name, frame) in enumerate(pieces):
        prices = frame[list(PRICE_COLUMNS)]
        if adjust == "ratio":
            prices = prices * float(np.prod(ratios[i:]))
        elif adjust == "difference":
            prices = prices + float(np.sum(gaps[i:]))
        part = prices.assign(Volume=frame.get("Volume", np.nan))
        if with_oi:
            part["OpenInterest"] = frame["OpenInterest"]
        part["UnadjustedClose"] = frame["Close"]
        part["Contract"] = name
        parts.append(part)
    series = pd.concat(parts).rename_axis("Date")
    low = series["Low"].to_numpy()
    if adjust == "difference" and (low <= 0).any():
        at = series.index[int(np.argmax(low <= 0))]
        raise DataError(f"difference adjustment takes prices to {low.min():.6g} (first on "
                        f"{_day(at)}), and prices must stay > 0; use --adjust ratio")
    return series


def write_continuous(series: pd.DataFrame, log: pd.DataFrame, path: str | Path) -> Path:
    """Write the series (CSV, or Parquet for ``.parquet``/``.pq``) and its roll log beside it
    (``NAME.rolls.csv``), each whole or not at all; returns the log's path."""
    path = Path(path)
    if not path.name.lower().endswith((".csv", ".parquet", ".pq")):
        raise DataError(f"{path}: write the series as .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        write_atomic(path, series.to_csv())
    else:
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        series.to_parquet(partial)
        os.replace(partial, path)
    log_path = path.with_name(f"{_name(path)}.rolls.csv")
    write_atomic(log_path, log.to_csv(index=False))
    return log_path
