"""When each COT report became public: the holiday rule, the shutdown backlogs, your table.

A report holds positions as of a Tuesday and is released the Friday after at 15:30 ET; a US
federal holiday in that week pushes it a business day later (:func:`rule_release`). During
government shutdowns the CFTC published nothing, then released the backlog weeks late,
catching up with a report every Tuesday and Friday; using those reports the Friday after
their as-of date would look ahead by up to seven weeks. :data:`BACKLOGS` holds those
releases, keyed by the Tuesday of each report's week:

* **2025** (Oct 1 – Nov 12 lapse): the CFTC's published catch-up schedule of Nov 18, 2025
  (reports as of Sep 30, 2025 … Jan 20, 2026; the first, Sep 30, released Wed Nov 19; normal
  again with the Jan 23, 2026 release), as reprinted by Mondo Visione,
  https://mondovisione.com/media-and-resources/news/cftc-to-resume-publishing-cot-reports-wednesday-the-agency-also-announced-a-c-20251118/
* **2018–19** (Dec 22 – Jan 25 lapse): the CFTC's announcement (The Hagstrom Report, "CFTC
  releases report schedule", https://www.thefencepost.com/news/cftc-releases-report-schedule-giancarlo-praises-staff/):
  the last report before was published Dec 21, 2018; the report as of Mon Dec 24, 2018 on
  Fri Feb 1, 2019, then one report each Tuesday and Friday until current (Mar 8, 2019).
  The dates after Feb 1 follow that stated rule.
* **2013** (Oct 1 – 16 lapse): no report was published the week the CFTC reopened (Reuters,
  Oct 17, 2013). The rows follow the same Tuesday-and-Friday catch-up from Fri Oct 25, 2013;
  they are a reconstruction, not checked against the CFTC's 2013 notice — give your own
  table if those weeks matter to you.

A report's release is the later of the rule and its backlog date; a release table of your own
(CSV with the as-of date and the release date, :func:`read_release_table`) overrides both
for the reports it lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

from meridian.exceptions import DataError

UNIT = "ns"

BACKLOGS: tuple[tuple[str, str], ...] = (
    # 2013 (reconstructed: Tuesday-and-Friday catch-up from Oct 25)
    ("2013-10-01", "2013-10-25"), ("2013-10-08", "2013-10-29"), ("2013-10-15", "2013-11-01"),
    ("2013-10-22", "2013-11-05"), ("2013-10-29", "2013-11-08"), ("2013-11-05", "2013-11-12"),
    # 2018-19 (as of Mon Dec 24 on Fri Feb 1, then Tuesdays and Fridays)
    ("2018-12-25", "2019-02-01"), ("2019-01-01", "2019-02-05"), ("2019-01-08", "2019-02-08"),
    ("2019-01-15", "2019-02-12"), ("2019-01-22", "2019-02-15"), ("2019-01-29", "2019-02-19"),
    ("2019-02-05", "2019-02-22"), ("2019-02-12", "2019-02-26"), ("2019-02-19", "2019-03-01"),
    ("2019-02-26", "2019-03-05"),
    # 2025 (the CFTC's schedule of Nov 18, 2025; as of Mon Nov 10 keyed by Tue Nov 11)
    ("2025-09-30", "2025-11-19"), ("2025-10-07", "2025-11-21"), ("2025-10-14", "2025-11-25"),
    ("2025-10-21", "2025-12-02"), ("2025-10-28", "2025-12-05"), ("2025-11-04", "2025-12-09"),
    ("2025-11-11", "2025-12-12"), ("2025-11-18", "2025-12-16"), ("2025-11-25", "2025-12-19"),
    ("2025-12-02", "2025-12-23"), ("2025-12-09", "2025-12-30"), ("2025-12-16", "2026-01-06"),
    ("2025-12-23", "2026-01-09"), ("2025-12-30", "2026-01-13"), ("2026-01-06", "2026-01-16"),
    ("2026-01-13", "2026-01-20"),
)
"""(Tuesday of the report's week, actual release date) for the shutdown backlogs."""
BUILT_IN = "holidays + shutdown backlogs 2013, 2018-19, 2025"


def rule_release(as_of: pd.DatetimeIndex) -> np.ndarray:
    """The nominal release (``as_of + 3`` days, Tuesday → Friday) pushed one business day per
    US federal holiday from the Monday of the report's week to that day (a holiday on the day
    itself is that push), never before ``as_of`` + 1 business day; as ``datetime64[D]``.

    Examples: as of Tue 2023-11-21 (Thanksgiving Thu) → Mon 2023-11-27; as of Mon 2023-07-03
    (Tuesday was July 4) → Fri 2023-07-07."""
    days = as_of.normalize().to_numpy().astype("datetime64[D]")
    monday = days - as_of.day_of_week.to_numpy().astype("timedelta64[D]")
    nominal = days + np.timedelta64(3, "D")
    holidays = (USFederalHolidayCalendar()
                .holidays(start=monday.min(), end=nominal.max() + np.timedelta64(60, "D"))
                .to_numpy().astype("datetime64[D]"))
    pushes = np.searchsorted(holidays, nominal, "right") - np.searchsorted(holidays, monday)
    pushes = pushes - np.isin(nominal, holidays)  # rolling off a holiday is its own push
    release = np.busday_offset(nominal, pushes, roll="forward", holidays=holidays)
    earliest = np.busday_offset(days, 1, roll="forward", holidays=holidays)
    return np.maximum(release, earliest)


def _week_tuesday(days: np.ndarray) -> np.ndarray:
    """The Tuesday of each date's Monday-to-Sunday week."""
    weekday = (days.astype("datetime64[D]").astype(np.int64) + 3) % 7  # Monday = 0
    return days - weekday.astype("timedelta64[D]") + np.timedelta64(1, "D")


_BACKLOG_KEYS = np.array([row[0] for row in BACKLOGS], dtype="datetime64[D]")
_BACKLOG_DAYS = np.array([row[1] for row in BACKLOGS], dtype="datetime64[D]")


def release_dates(as_of: pd.DatetimeIndex | Sequence[object],
                  table: Mapping[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DatetimeIndex:
    """The calendar date each report became public (after 15:30 ET that day): the holiday
    rule, no earlier than its shutdown backlog release (:data:`BACKLOGS`), and exactly the
    date ``table`` gives for a report it lists (as-of date → release date)."""
    stamps = pd.DatetimeIndex(as_of)
    if stamps.tz is not None:
        stamps = stamps.tz_localize(None)
    if stamps.hasnans:
        raise DataError("release_dates: as_of contains missing dates")
    if stamps.empty:
        return pd.DatetimeIndex([], dtype=f"datetime64[{UNIT}]", name="release")
    release = rule_release(stamps)
    days = stamps.normalize().to_numpy().astype("datetime64[D]")
    week = _week_tuesday(days)
    found = np.searchsorted(_BACKLOG_KEYS, week)
    hit = (found < len(_BACKLOG_KEYS)) & (
        _BACKLOG_KEYS[np.minimum(found, len(_BACKLOG_KEYS) - 1)] == week)
    release[hit] = np.maximum(release[hit], _BACKLOG_DAYS[found[hit]])
    if table:
        given = {pd.Timestamp(k).normalize().to_datetime64().astype("datetime64[D]"):
                 pd.Timestamp(v).normalize().to_datetime64().astype("datetime64[D]")
                 for k, v in table.items()}
        release = np.array([given.get(day, rel) for day, rel in zip(days, release,
                                                                      strict=True)],
                           dtype="datetime64[D]")
    return pd.DatetimeIndex(release.astype(f"datetime64[{UNIT}]"), name="release")


def read_release_table(path: str | Path) -> tuple[dict[pd.Timestamp, pd.Timestamp], str]:
    """Your release table: a CSV whose first two columns are the as-of date and the release
    date (a header row is optional; YYYY-MM-DD). Returns the table and its SHA-256. Each bad
    row is one line naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"release table {path} not found; give a CSV of as-of date, release "
                        "date (YYYY-MM-DD)")
    raw = path.read_bytes()
    table: dict[pd.Timestamp, pd.Timestamp] = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        fields = [field.strip().strip('"') for field in line.split(",")]
        if not line.strip() or (number == 1 and not fields[0][:1].isdigit()):
            continue  # blank, or the header
        try:
            as_of, release = pd.Timestamp(fields[0]), pd.Timestamp(fields[1])
        except (ValueError, IndexError):
            raise DataError(f"{path.name} line {number}: expected 'as-of date, release date' "
                            f"(YYYY-MM-DD), got {line.strip()[:80]!r}") from None
        if release < as_of:
            raise DataError(f"{path.name} line {number}: release {release:%Y-%m-%d} is before "
                            f"the as-of date {as_of:%Y-%m-%d}")
        table[as_of.normalize()] = release.normalize()
    if not table:
        raise DataError(f"{path.name}: no rows; expected 'as-of date, release date' lines")
    return table, hashlib.sha256(raw).hexdigest()
