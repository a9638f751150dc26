"""``meridian data cot`` against a real local HTTP server serving zips in CFTC's layout: cache,
no re-download of an unchanged file, broken answers refused with the cache kept, retries, and
the new year's missing file."""

from __future__ import annotations

import http.server
import os
import threading
import time
import zipfile
from datetime import date
from pathlib import Path

import pytest
from conftest import meridian

from meridian.data import SAMPLE_COT, read_cot
from meridian.data.download import download_cot, parse_years
from meridian.exceptions import DataError


class _Handler(http.server.SimpleHTTPRequestHandler):
    log: list[tuple[str, int]] = []
    failures: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        name = self.path.lstrip("/")
        if self.failures.get(name, 0) > 0:  # a flaky server: 503 a few times
            self.failures[name] -= 1
            self.send_error(503, "busy")  # logged by send_response
            return
        super().do_GET()

    def send_response(self, code, message=None):
        self.log.append((self.path.lstrip("/"), code))
        super().send_response(code, message)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    with zipfile.ZipFile(www / "deacot2020.zip", "w") as archive:
        archive.writestr("annual.txt", SAMPLE_COT.read_bytes())
    (www / "deacot2021.zip").write_bytes(b"<html>Service unavailable</html>")
    _Handler.log, _Handler.failures = [], {}

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(www), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()


def test_downloads_once_then_keeps_the_unchanged_file(server, tmp_path):
    url, _ = server
    folder = tmp_path / "cache"
    (first,) = download_cot("legacy", "2020", base_url=url, folder=folder)
    assert first.status == "downloaded" and first.path == folder / "deacot2020.zip"
    assert len(read_cot(first.path)) > 100  # a real report, readable as downloaded
    (second,) = download_cot("legacy", "2020", base_url=url, folder=folder)
    assert second.status == "unchanged"
    assert [code for name, code in _Handler.log if name == "deacot2020.zip"] == [200, 304]


def test_a_broken_answer_is_refused_and_the_cached_copy_kept(server, tmp_path):
    url, www = server
    folder = tmp_path / "cache"
    download_cot("legacy", "2020", base_url=url, folder=folder)
    kept = (folder / "deacot2020.zip").read_bytes()
    (www / "deacot2020.zip").write_bytes(b"<html>oops</html>")  # the server breaks
    later = time.time() + 60  # (Last-Modified has whole seconds: make the change visible)
    os.utime(www / "deacot2020.zip", (later, later))
    with pytest.raises(DataError, match=r"not a zip .*\(the cached copy is kept\)"):
        download_cot("legacy", "2020", base_url=url, folder=folder)
    assert (folder / "deacot2020.zip").read_bytes() == kept
    with pytest.raises(DataError, match="deacot2021.zip: the answer is not a zip"):
        download_cot("legacy", "2021", base_url=url, folder=folder)
    assert not (folder / "deacot2021.zip").exists()


def test_a_flaky_server_is_retried(server, tmp_path):
    url, _ = server
    _Handler.failures["deacot2020.zip"] = 2
    (fetched,) = download_cot("legacy", "2020", base_url=url, folder=tmp_path / "c")
    assert fetched.status == "downloaded"
    assert [code for name, code in _Handler.log if name == "deacot2020.zip"] == [503, 503, 200]


def test_this_years_missing_file_is_a_note_and_other_years_an_error(server, tmp_path):
    url, _ = server
    this_year = date.today().year
    (fetched,) = download_cot("legacy", str(this_year), base_url=url, folder=tmp_path / "c")
    assert fetched.status.startswith("not published yet")
    with pytest.raises(DataError, match="HTTP 404"):
        download_cot("disaggregated", "2019", base_url=url, folder=tmp_path / "c")


@pytest.mark.parametrize(("years", "message"), [
    ("20x0", "use YEAR or FIRST:LAST"), ("1900:1901", "years run from 1986"),
    ("2024:2020", "first before last"),
])
def test_bad_years_are_one_line(years, message):
    with pytest.raises(DataError, match=message):
        parse_years(years)


def test_the_cli_in_a_project(server, project):
    url, _ = server
    done = meridian("data", "cot", "--years", "2020", "--base-url", url, cwd=project)
    assert done.returncode == 0, done.stderr
    assert "deacot2020.zip: downloaded" in done.stdout
    assert (project / "data" / "cot" / "legacy" / "deacot2020.zip").is_file()
    again = meridian("data", "cot", "--years", "2020", "--base-url", url, cwd=project)
    assert "deacot2020.zip: unchanged" in again.stdout
    broken = meridian("data", "cot", "--years", "2021", "--base-url", url, cwd=project)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert broken.stderr.strip().startswith("meridian: error:") and "not a zip" in broken.stderr
    assert Path(project / "data" / "cot" / "legacy").is_dir()


def test_early_years_come_from_the_bulk_history_file(server, tmp_path):
    url, www = server
    with zipfile.ZipFile(www / "fut_disagg_txt_hist_2006_2016.zip", "w") as archive:
        archive.writestr("F_Disagg06_16.txt", "Market_and_Exchange_Names\n")
    fetched = download_cot("disaggregated", "2007:2009", base_url=url, folder=tmp_path / "c")
    assert [f.path.name for f in fetched] == ["fut_disagg_txt_hist_2006_2016.zip"]
    with pytest.raises(DataError, match="the tff report starts in 2006"):
        download_cot("tff", "2005", base_url=url, folder=tmp_path / "c")
