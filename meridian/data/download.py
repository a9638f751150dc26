"""``meridian data cot``: CFTC's yearly COT history files, downloaded into a cache.

One zip per year and report family, as the CFTC publishes them under
``https://www.cftc.gov/files/dea/history/`` (:data:`FILES`). A file is fetched again only when
the server says it changed (``If-None-Match`` / ``If-Modified-Since``; a ``304`` keeps the
cached copy), each request has a timeout and a few retries, and an answer that is not a
readable zip holding a report (an HTML error page, a truncated file) is refused while any
cached copy stays as it was. In January the new year's file does not exist yet: that is one
line, not a failure. Nothing here runs during a backtest: runs read the cached files.
"""

from __future__ import annotations

import io
import json
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from meridian._files import check_unpacked, write_atomic
from meridian.exceptions import DataError

BASE_URL = "https://www.cftc.gov/files/dea/history/"
FILES = {
    ("legacy", False): "deacot{year}.zip",
    ("legacy", True): "deahistfo{year}.zip",
    ("disaggregated", False): "fut_disagg_txt_{year}.zip",
    ("disaggregated", True): "com_disagg_txt_{year}.zip",
    ("tff", False): "fut_fin_txt_{year}.zip",
    ("tff", True): "com_fin_txt_{year}.zip",
}
"""(report family, futures and options combined) → the yearly file's name."""
HISTORY = {
    "disaggregated": ("fut_disagg_txt_hist_2006_2016.zip", 2006, 2010),
    "tff": ("fin_fut_txt_2006_2016.zip", 2006, 2010),
}
"""Futures-only reports whose early years come in one bulk history file: (file, first year
of the report, first year with a yearly file). The legacy report has yearly files from 1986."""
REPORTS = ("legacy", "disaggregated", "tff")
TIMEOUT = 30.0
ATTEMPTS = 3
FIRST_YEAR = 1986


@dataclass(frozen=True)
class Fetched:
    """What happened to one file: ``downloaded``, ``unchanged`` or ``not published yet``."""

    path: Path
    status: str
    size: int = 0


def parse_years(text: str, today: date | None = None) -> list[int]:
    """``2010:2024`` or ``2024`` → the years, checked (one line when wrong)."""
    today = today or date.today()
    first, _, last = str(text).partition(":")
    try:
        years = range(int(first), int(last or first) + 1)
    except ValueError:
        raise DataError(f"--years {text!r}: use YEAR or FIRST:LAST, e.g. 2010:2024") from None
    if not years or years[0] < FIRST_YEAR or years[-1] > today.year:
        raise DataError(f"--years {text!r}: years run from {FIRST_YEAR} to {today.year}, "
                        "first before last")
    return list(years)


def cache_dir(report: str, combined: bool) -> Path:
    """Where the files go: the project's ``data/cot/<report>[-combined]/``, else the user's
    cache folder (``~/.cache/meridian/cot/…``)."""
    from meridian import project

    found = project.find_project()
    root = found.root / "data" / "cot" if found else Path.home() / ".cache" / "meridian" / "cot"
    return root / (report + ("-combined" if combined else ""))


def download_cot(report: str = "legacy", years: list[int] | str = "2024", *,
                 combined: bool = False, base_url: str = BASE_URL,
                 folder: str | Path | None = None,
                 say: Callable[[str], None] | None = None) -> list[Fetched]:
    """Bring the yearly files of ``report`` (legacy, disaggregated or tff; ``combined``:
    futures and options) for ``years`` into ``folder`` (default :func:`cache_dir`). Returns
    what happened to each; a broken answer raises :class:`DataError` after the others."""
    if report not in REPORTS:
        raise DataError(f"--report {report!r}: use one of {', '.join(REPORTS)}")
    if isinstance(years, str):
        years = parse_years(years)
    folder = Path(folder) if folder else cache_dir(report, combined)
    folder.mkdir(parents=True, exist_ok=True)
    say = say or (lambda line: None)
    base = base_url if base_url.endswith("/") else base_url + "/"
    results, failures = [], []
    names = []
    bulk = HISTORY.get(report) if not combined else None
    for year in years:
        if bulk and year < bulk[1]:
            raise DataError(f"the {report} report starts in {bulk[1]}; --years {year} is "
                            "before it")
        name = bulk[0] if bulk and year < bulk[2] else FILES[(report, combined)].format(year=year)
        if name not in names:
            names.append(name)
    for name in names:
        year = int(name[-8:-4]) if name[-8:-4].isdigit() else 0
        try:
            fetched = _fetch(base + name, folder / name, year)
        except DataError as error:
            failures.append(str(error))
            say(f"{name}: {error}")
            continue
        results.append(fetched)
        say(f"{name}: {fetched.status}" + (f" ({fetched.size / 1e6:.1f} MB)"
                                           if fetched.status == "downloaded" else ""))
    if failures:
        raise DataError(failures[0] + (f" (and {len(failures) - 1} more)"
                                       if len(failures) > 1 else ""))
    return results


def _fetch(url: str, path: Path, year: int) -> Fetched:
    meta_path = path.with_suffix(path.suffix + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and path.is_file() else {}
    headers = {"User-Agent": "meridian (COT history download)"}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=TIMEOUT) as response:
                body = _read(response, url)
                info = {"etag": response.headers.get("ETag"),
                        "last_modified": response.headers.get("Last-Modified"), "url": url}
            break
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return Fetched(path, "unchanged", path.stat().st_size)
            if error.code == 404 and year == date.today().year:
                return Fetched(path, "not published yet (the CFTC adds a year's file during "
                                     "January)")
            if error.code < 500 or attempt == ATTEMPTS - 1:
                raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == ATTEMPTS - 1:
                reason = getattr(error, "reason", error)
                raise DataError(f"{url}: cannot download ({reason}) after {ATTEMPTS} "
                                "attempts") from None
        time.sleep(0.5 * 2 ** attempt)
    _check_zip(body, url, path)
    write_atomic(path, body)
    meta_path.write_text(json.dumps(info))
    return Fetched(path, "downloaded", len(body))


def _read(response, url: str) -> bytes:
    """The body, with a progress bar on a terminal for a large file."""
    total = int(response.headers.get("Content-Length") or 0)
    if not sys.stderr.isatty() or total < 1_000_000:
        return response.read()
    from tqdm import tqdm

    chunks = []
    with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar:
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            bar.update(len(chunk))
    return b"".join(chunks)


def _check_zip(body: bytes, url: str, path: Path) -> None:
    """A readable zip holding one report text file, or DataError (the cache is untouched)."""
    kept = " (the cached copy is kept)" if path.is_file() else ""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith((".txt", ".csv"))]
            check_unpacked(sum(info.file_size for info in archive.infolist()), url)
            broken = archive.testzip()
    except zipfile.BadZipFile:
        start = body[:40].decode("latin-1", errors="replace").strip()
        raise DataError(f"{url}: the answer is not a zip ({len(body):,} bytes starting "
                        f"{start!r}){kept}") from None
    if broken is not None or not names:
        raise DataError(f"{url}: the zip is damaged or holds no report text file{kept}")
