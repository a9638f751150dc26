"""The project: found by walking up, owning every path; `meridian init`; bad tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import meridian

from meridian import project as locations
from meridian.authoring.init import init_project
from meridian.exceptions import ProjectError, RegistryError


@pytest.fixture(autouse=True)
def _no_home(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.HOME_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)


def _pyproject(folder: Path, table: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[tool.meridian]\n{table}')
    return folder


def test_the_project_is_found_from_any_sub_folder_like_git(tmp_path, monkeypatch):
    root = _pyproject(tmp_path / "repo", 'outputs = "out"\nnotebooks = "nb"\ndata = "d/p.csv"\n')
    (root / "nb" / "deep").mkdir(parents=True)
    monkeypatch.chdir(root / "nb" / "deep")
    found = locations.current_project()
    assert found.root == root
    assert (found.notebooks, found.outputs, found.strategies) == (
        root / "nb", root / "out", root / "strategies")
    assert found.data == root / "d" / "p.csv" and found.cot is None
    assert locations.output_dir() == root / "out"
    assert not (root / "out").exists()  # computing a path creates nothing


def test_a_pyproject_without_the_table_is_not_a_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert locations.find_project() is None
    with pytest.raises(ProjectError, match="no Meridian project in .*run `meridian init`"):
        locations.output_dir()


def test_meridian_home_beats_the_project(monkeypatch, tmp_path):
    _pyproject(tmp_path, "")
    monkeypatch.setenv(locations.HOME_VARIABLE, str(tmp_path / "home"))
    assert locations.output_dir() == tmp_path / "home"
    assert locations.output_dir(tmp_path / "mine") == tmp_path / "mine"  # override beats both


def test_outputs_need_no_project_when_home_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv(locations.HOME_VARIABLE, "rel")
    assert locations.output_dir() == tmp_path / "rel"
    assert locations.output_dir("a/../b") == tmp_path / "b"


def test_home_directory_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert locations.output_dir("~/out") == tmp_path / "user" / "out"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('notebook = "nb"\n', "unknown key 'notebook' in \\[tool.meridian\\]; valid keys: "
                              "notebooks, strategies"),
        ("outputs = 3\n", "\\[tool.meridian\\] outputs must be a path string"),
        ('strategies = ""\n', "\\[tool.meridian\\] strategies must be a path string"),
        ("outputs = \n", "is not valid TOML"),
    ],
)
def test_a_broken_table_names_the_key(tmp_path, table, message):
    _pyproject(tmp_path, table)
    with pytest.raises(ProjectError, match=message) as error:
        locations.find_project()
    assert "\n" not in str(error.value)


def test_a_strategies_folder_inside_the_installed_package_is_refused(tmp_path):
    _pyproject(tmp_path, f'strategies = "{locations.BUILTIN_STRATEGIES_DIR}"\n')
    with pytest.raises(ProjectError, match="inside the installed meridian package"):
        locations.find_project()


def test_layout_helpers():
    out = Path("/data/out")
    assert locations.registry_path(out) == out / "registry.sqlite"
    assert locations.runs_dir(out) == out / "runs"
    assert locations.run_dir(out, "abc-123") == out / "runs" / "abc-123"
    assert locations.backups_dir(out) == out / "backups"
    assert locations.sweep_dir(out, "s-1") == out / "sweeps" / "s-1"
    assert locations.comparisons_dir(out) == out / "comparisons"
    assert locations.dashboard_path(out) == out / "index.html"


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a\\b", " a", "x\0y"])
def test_run_dir_refuses_ids_that_are_not_a_plain_name(bad):
    with pytest.raises(RegistryError, match="invalid run id"):
        locations.run_dir(Path("/data/out"), bad)


# ------------------------------------------------------------------------ meridian init


def test_init_creates_a_ready_project(tmp_path):
    root, done = init_project(tmp_path / "proj")
    for name in ("pyproject.toml", "notebooks/fld.py", "notebooks/sma_cross.py",
                 "strategies/__init__.py", "strategies/fld.py", "strategies/sma_cross.py",
                 ".gitignore", "README.md"):
        assert (root / name).is_file(), name
        assert ("created", root / name) in done
    # the modules are the notebooks' own: a fresh project passes extract --check
    check = meridian("extract", "--check", "notebooks/fld.py", "notebooks/sma_cross.py",
                     cwd=root)
    assert check.returncode == 0, check.stderr
    assert "pypi.org" not in (root / "README.md").read_text()  # another package's page
    assert (root / "outputs").is_dir() and "outputs/" in (root / ".gitignore").read_text()
    assert (root / "notebooks" / "fld.py").read_bytes() == (
        locations.EXAMPLES_DIR / "fld.py").read_bytes()
    assert locations.find_project(root / "notebooks").root == root


def test_init_adds_the_table_to_an_existing_pyproject_and_keeps_other_files(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "README.md").write_text("my readme\n")
    made = meridian("init", ".", cwd=tmp_path)
    assert "appended [tool.meridian] to " in made.stdout and "appended outputs/ to " in made.stdout
    assert "created README.md" not in made.stdout and "created pyproject" not in made.stdout
    assert (tmp_path / "pyproject.toml").read_text().startswith('[project]\nname = "mine"\n')
    assert locations.find_project(tmp_path).root == tmp_path
    assert (tmp_path / ".gitignore").read_text() == "*.log\noutputs/\n"
    assert (tmp_path / "README.md").read_text() == "my readme\n"


def test_init_cli_refuses_an_existing_project_or_a_file(tmp_path):
    made = meridian("init", "proj", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    before = (tmp_path / "proj" / "pyproject.toml").read_text()
    again = meridian("init", "proj", cwd=tmp_path)
    assert again.returncode == 2 and "is already a Meridian project" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert (tmp_path / "proj" / "pyproject.toml").read_text() == before
    (tmp_path / "file").write_text("x")
    onto_file = meridian("init", "file", cwd=tmp_path)
    assert onto_file.returncode == 2 and "is a file" in onto_file.stderr
    assert (tmp_path / "file").read_text() == "x"


def test_commands_outside_a_project_say_so_in_one_line(tmp_path):
    example = str(locations.EXAMPLES_DIR / "fld.py")
    for args in (["run", "fld"], ["new", "idea"], ["runs", "list"], ["extract", example]):
        result = meridian(*args, cwd=tmp_path, env={"MERIDIAN_HOME": ""})
        assert result.returncode == 2, (args, result.stderr)
        assert "meridian init" in result.stderr and "Traceback" not in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, args
    assert list(tmp_path.iterdir()) == []
