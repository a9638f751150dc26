"""Where Meridian writes: override > MERIDIAN_HOME > ./outputs, always absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian import paths
from meridian.exceptions import RegistryError


@pytest.fixture(autouse=True)
def _no_home(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)


def test_default_is_outputs_in_the_working_directory(tmp_path):
    assert paths.output_dir() == tmp_path / "outputs"
    assert paths.output_dir().is_absolute()
    assert not (tmp_path / "outputs").exists()  # computing a path creates nothing


def test_meridian_home_beats_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "home"))
    assert paths.output_dir() == tmp_path / "home"


def test_override_beats_meridian_home(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "home"))
    assert paths.output_dir(tmp_path / "mine") == tmp_path / "mine"
    assert paths.output_dir(str(tmp_path / "mine")) == tmp_path / "mine"


def test_relative_paths_are_made_absolute_from_the_working_directory(monkeypatch, tmp_path):
    assert paths.output_dir("a/../b") == tmp_path / "b"
    monkeypatch.setenv(paths.ENV_VAR, "rel")
    assert paths.output_dir() == tmp_path / "rel"
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert paths.output_dir() == tmp_path / "sub" / "rel"


def test_empty_settings_fall_through(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_VAR, "")
    assert paths.output_dir("") == tmp_path / "outputs"


def test_home_directory_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert paths.output_dir("~/out") == tmp_path / "user" / "out"


def test_layout_helpers():
    out = Path("/data/out")
    assert paths.registry_path(out) == out / "registry.sqlite"
    assert paths.runs_dir(out) == out / "runs"
    assert paths.run_dir(out, "abc-123") == out / "runs" / "abc-123"
    assert paths.backups_dir(out) == out / "backups"


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a\\b", " a", "x\0y"])
def test_run_dir_refuses_ids_that_are_not_a_plain_name(bad):
    with pytest.raises(RegistryError, match="invalid run id"):
        paths.run_dir(Path("/data/out"), bad)
