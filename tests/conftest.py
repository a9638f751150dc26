"""Shared fixtures: a real output directory per test and a real headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # the network is cut (every page must work offline), except this machine's loopback,
    # where `meridian ui` listens
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A fresh project made by ``meridian init`` (examples and their modules), and the
    working directory of the test; ``MERIDIAN_HOME`` unset so its own outputs/ is used."""
    from meridian.authoring.init import init_project

    root, _ = init_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    monkeypatch.delenv("MERIDIAN_HOME", raising=False)
    return root


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A fresh output directory (runs, registry, dashboard) for one test."""
    return tmp_path / "outputs"


def meridian(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 300,
             input: str | None = None):
    """Run the real ``meridian`` CLI in a subprocess (``input``: text for its stdin, e.g.
    answers to a confirmation); returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "meridian.cli", *args], cwd=cwd, capture_output=True,
        text=True, timeout=timeout, env={**os.environ, **(env or {})}, input=input,
    )


def chromium_path() -> str:
    for name in (os.environ.get("MERIDIAN_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    pytest.fail("Chromium is not installed; .ci/run installs Debian's chromium package")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright, with networking to the outside disabled."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(),
                                              args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@contextlib.contextmanager
def watched_page(browser, **options):
    """A new page in ``browser`` that fails the test on any page error or Content-Security-
    Policy violation seen while it was open."""
    page = browser.new_page(**options)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.add_init_script("window.__csp = []; document.addEventListener("
                         "'securitypolicyviolation', e => window.__csp.push(e.violatedDirective))")
    yield page
    problems += [f"CSP violation: {v}" for v in page.evaluate("window.__csp")]
    page.close()
    assert problems == []


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """A populated output directory shared by the dashboard and `runs` tests (read-only:
    copy ``samples.out`` before changing it). See tests/registry_samples.py."""
    from registry_samples import populate

    return populate(tmp_path_factory.mktemp("samples") / "outputs", ROOT)


def page_text(out: Path) -> str:
    """Everything the static runs page is made of: index.html and its chunk files."""
    parts = [(out / "index.html").read_text()]
    parts += [path.read_text() for path in sorted((out / "dashboard").glob("*.js"))]
    return "\n".join(parts)


def default_signals() -> None:
    """``preexec_fn`` of a child a test will signal: SIGINT back to its default, so Ctrl-C
    tests pass when the suite itself runs with SIGINT ignored (as any background job does,
    and Python keeps an inherited SIG_IGN)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    """A running `meridian ui --port 0 --no-browser`, its URL and token."""

    def __init__(self, out: Path, cwd: Path = ROOT):
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "meridian.cli", "ui", "--port", "0", "--no-browser",
             "--output-dir", str(out)], cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("open http://127.0.0.1:"):
                break
            if not line and self.process.poll() is not None:
                raise AssertionError(f"meridian ui died: {self.process.stderr.read()}")
        self.url = line.split()[1]
        found = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", self.url)
        self.port, self.token = int(found[1]), found[2]
        self.base = f"http://127.0.0.1:{self.port}"

    def request(self, path: str, body: dict | None = None, token: str | None = "default",
                origin: str | None = "default", timeout: float = 30) -> tuple[int, dict | str]:
        headers = {}
        if token is not None:
            headers["X-Meridian-Token"] = self.token if token == "default" else token
        if body is not None:
            headers["Content-Type"] = "application/json"
            if origin is not None:
                headers["Origin"] = self.base if origin == "default" else origin
        request = urllib.request.Request(self.base + path, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text

    def stop(self, sig: int = signal.SIGINT) -> subprocess.CompletedProcess:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=90)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)
