"""A universe: the markets a strategy trades with one account, as a TOML file.

``universes/NAME.toml`` in the project (``--universe NAME``; or any path)::

    capital = 1_000_000          # the account: one equity for every market
    sizing = "risk_parity"       # equal_weight (default), risk_parity, volatility_target
    rebalance = "on_signal"      # on_signal (default), daily, weekly, monthly
    target_volatility = 0.12     # with volatility_target
    max_leverage = 2.0
    commission = 0.0             # any other run setting applies to every market

    [[market]]
    name = "ES"
    data = "data/es.csv"         # OHLCV; relative to this file's folder, else the project's
    cot = "data/cot.csv"         # optional CFTC COT file (the COT filter's index)
    cot_market = "E-MINI S&P 500"
    multiplier = 50              # contract fields: whole contracts (see RunSettings)
    tick_size = 0.25
    commission_per_contract = 2.5
    margin = 12_000

Everything that needs no market data — keys, types, choices, duplicate names, files that do
not exist or cannot be read — is checked by :func:`load_universe`, before anything runs;
:meth:`Universe.frames` reads the bars (and checks that each COT market is in its file).
Every error is one line naming the file, the market and what would be right.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from meridian import project
from meridian._files import file_sha256
from meridian.exceptions import SettingError, UniverseError
from meridian.settings import CONTRACT, NAMES, RunSettings

SIZINGS = ("equal_weight", "risk_parity", "volatility_target")
MARKET_KEYS = ("name", "data", "cot", "cot_market", *CONTRACT)
ACCOUNT_KEYS = ("capital", *(name for name in NAMES if name not in CONTRACT))
"""``capital`` (the same as ``initial_capital``) and every run setting but the contract's."""


@dataclass(frozen=True)
class Market:
    """One market of a universe: its bars, its COT source and its contract."""

    name: str
    data: Path
    cot: Path | None = None
    cot_market: str = ""
    contract: tuple[tuple[str, float], ...] = ()

    def load(self):
        """The market's bars, with the ``COT_Index`` of its COT file when it has one (read
        once per process while the files stay unchanged; a fresh copy each time)."""
        stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                       for p in (self.data, self.cot) if p is not None)
        frame = _load(self.data, self.cot, self.cot_market, stamps).copy()
        frame.attrs["market"] = self.name
        return frame


@lru_cache(maxsize=256)
def _load(data: Path, cot: Path | None, cot_market: str, _stamps: tuple):
    from meridian.data import attach_cot, load_ohlcv

    frame = load_ohlcv(data)
    if cot is not None:
        frame = attach_cot(frame, cot, market=cot_market or None)
    return frame


@dataclass(frozen=True)
class Universe:
    """A universe file, checked: its account settings (run-setting names) and its markets."""

    name: str
    path: Path
    sha256: str
    account: tuple[tuple[str, Any], ...]
    markets: tuple[Market, ...]

    def settings(self, base: RunSettings | None = None, **overrides: Any) -> RunSettings:
        """The account's run settings: ``base`` (defaults, with equal_weight sizing), the
        file's on top, ``overrides`` on top of those."""
        contract = [name for name in overrides if name in CONTRACT]
        if contract:
            raise UniverseError(f"{contract[0]} is a contract field: in a universe each "
                                f"[[market]] gives its own (in {self.path.name})")
        start = RunSettings(sizing="equal_weight")
        if base is not None:  # a notebook's or module's settings; contracts are per market
            kept = {name: value for name, value in base.changed().items()
                    if name not in CONTRACT}
            if kept.get("sizing", "fixed_fraction") == "fixed_fraction":
                kept["sizing"] = "equal_weight"
            start = RunSettings.of(kept)
        return start.replace(**{**dict(self.account), **overrides})

    def frames(self) -> dict[str, Any]:
        """Each market's bars by name (read now; a bad file is one line naming the market)."""
        from meridian.exceptions import DataError

        frames = {}
        for market in self.markets:
            try:
                frames[market.name] = market.load()
            except DataError as error:
                raise UniverseError(f"{self.path.name}: market {market.name!r}: {error}") from None
        return frames

    def contracts(self) -> dict[str, dict[str, float]]:
        """Each market's contract fields by name (what the engine's ``contracts=`` takes)."""
        return {market.name: dict(market.contract) for market in self.markets}

    def provenance(self) -> dict[str, Any]:
        """What a run records: the universe's name, file, hash and markets."""
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256,
                "markets": [market.name for market in self.markets]}


def find_universe(name: str | os.PathLike[str]) -> Path:
    """``universes/NAME.toml`` of the project (then the shipped example), or a path."""
    text = str(name).strip()
    if not text:
        raise UniverseError("--universe needs a name (universes/NAME.toml) or a .toml path")
    given = Path(text).expanduser()
    if given.suffix == ".toml" or given.parent != Path(".") or given.is_file():
        if given.is_file():
            return given.absolute()
        raise UniverseError(f"universe file {text} not found; give a universe name from "
                            f"{_listing()} or the path of a .toml file")
    for folder in project.universe_dirs():
        candidate = folder / f"{text}.toml"
        if candidate.is_file():
            return candidate
    raise UniverseError(f"unknown universe {text!r}; available: {_listing()} (a universe is "
                        "universes/NAME.toml in the project)")


def _listing() -> str:
    names = sorted({p.stem for folder in project.universe_dirs() if folder.is_dir()
                    for p in folder.glob("*.toml")})
    return ", ".join(names) or "(none)"


def load_universe(name: str | os.PathLike[str] | Universe) -> Universe:
    """The universe ``name`` (a name or a path), checked without reading any market data."""
    if isinstance(name, Universe):
        return name
    path = find_universe(name)
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise UniverseError(f"{path.name} is not valid TOML ({error})") from None
    except OSError as error:
        raise UniverseError(f"cannot read {path}: {error.strerror}") from None
    where = path.name
    tables = document.pop("market", None)
    if "markets" in document:
        raise UniverseError(f"{where}: markets are [[market]] tables (singular), not 'markets'")
    account = _account(document, where)
    if not isinstance(tables, list) or not tables:
        raise UniverseError(f"{where}: a universe needs at least one [[market]] table with a "
                            'name and a data file, e.g. [[market]] name = "ES" data = "es.csv"')
    markets, seen = [], {}
    for number, table in enumerate(tables, 1):
        market = _market(table, number, path, where)
        key = market.name.casefold()
        if key in seen:
            raise UniverseError(f"{where}: market name {market.name!r} appears twice "
                                f"(markets {seen[key]} and {number}); names must be unique")
        seen[key] = number
        markets.append(market)
    universe = Universe(path.stem, path, file_sha256(path), tuple(account.items()),
                        tuple(markets))
    for market in markets:  # every market's settings are valid run settings
        _checked(lambda m=market: universe.settings().replace(**dict(m.contract)),
                 f"{where}: market {market.name!r}")
    return universe


def _account(document: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = [key for key in document if key not in ACCOUNT_KEYS]
    if unknown:
        hint = (" (contract fields belong in each [[market]])" if unknown[0] in CONTRACT
                else "")
        raise UniverseError(f"{where}: unknown account key {unknown[0]!r}{hint}; valid keys: "
                            f"{', '.join(ACCOUNT_KEYS)}, and [[market]] tables")
    if "capital" in document and "initial_capital" in document:
        raise UniverseError(f"{where}: give capital or initial_capital, not both")
    account = dict(document)
    if "capital" in account:
        account["initial_capital"] = account.pop("capital")
    sizing = account.get("sizing", "equal_weight")
    if sizing not in SIZINGS:
        raise UniverseError(f"{where}: sizing={sizing!r} is not a portfolio sizing; use one of "
                            f"{', '.join(SIZINGS)}")
    _checked(lambda: RunSettings(sizing="equal_weight").replace(**account), where)
    return account


def _market(table: Any, number: int, path: Path, where: str) -> Market:
    if not isinstance(table, dict):
        raise UniverseError(f"{where}: market {number} must be a [[market]] table")
    name = table.get("name")
    label = f"{where}: market {number}" if not name else f"{where}: market {name!r}"
    unknown = [key for key in table if key not in MARKET_KEYS]
    if unknown:
        raise UniverseError(f"{label}: unknown key {unknown[0]!r}; valid keys: "
                            f"{', '.join(MARKET_KEYS)}")
    if not isinstance(name, str) or not name.strip():
        raise UniverseError(f"{label}: needs a name, e.g. name = \"ES\"")
    if "data" not in table:
        raise UniverseError(f"{label}: needs a data file (OHLCV CSV or Parquet), e.g. "
                            'data = "data/es.csv"')
    for key in ("multiplier", "margin"):
        value = table.get(key)
        if key in table and (isinstance(value, bool) or not isinstance(value, int | float)
                             or not value > 0):
            raise UniverseError(f"{label}: {key} must be a positive number, got {value!r}")
    cot_market = table.get("cot_market", "")
    if not isinstance(cot_market, str):
        raise UniverseError(f"{label}: cot_market must be text (a market name or code)")
    if cot_market and "cot" not in table:
        raise UniverseError(f"{label}: cot_market={cot_market!r} needs a cot file")
    contract = tuple((key, table[key]) for key in CONTRACT if key in table)
    return Market(name.strip(), _file(table["data"], path, label, "data"),
                  _file(table["cot"], path, label, "cot") if "cot" in table else None,
                  cot_market, contract)


def _file(value: Any, universe: Path, label: str, key: str) -> Path:
    """A market's file: relative to the universe file's folder, else to the project's."""
    if not isinstance(value, str) or not value.strip():
        raise UniverseError(f"{label}: {key} must be a file path, got {value!r}")
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [universe.parent / given]
    found = project.find_project(universe.parent)
    if not given.is_absolute() and found is not None:
        candidates.append(found.root / given)
    for candidate in candidates:
        if candidate.is_file():
            try:
                with open(candidate, "rb") as stream:
                    stream.read(1)
            except OSError as error:
                raise UniverseError(f"{label}: cannot read {key} file {candidate}: "
                                    f"{error.strerror}") from None
            return candidate.absolute()
    looked = " or ".join(str(c) for c in candidates)
    raise UniverseError(f"{label}: {key} file {value!r} not found (looked for {looked}); "
                        "paths are relative to the universe file's folder or the project's")


def _checked(build, label: str) -> None:
    try:
        build()
    except SettingError as error:
        raise UniverseError(f"{label}: {error}") from None
