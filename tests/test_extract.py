"""``meridian extract``: safe, deterministic notebook → module generation (no code runs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from meridian.authoring.extract import Extraction, build, diff, write
from meridian.exceptions import ExtractError, ProjectError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_a_project(project):
    """Every test works in a fresh project (its strategies/ folder is where modules go)."""
    return project

GOOD = '''\
# %% [markdown]
# # Momentum
#
# A toy.

# %% tags=["parameters"]
lookback = 20  # bars
initial_capital = 100_000.0  # equity

# %%
print("analysis only, never exported")

# %% tags=["export"]
import pandas as pd

from meridian.indicators import cross_state, sma

WINDOWS = (5, 10)


def signals(data: pd.DataFrame, lookback: int = 20) -> pd.Series:
    position = cross_state(data["Close"], sma(data["Close"], lookback))
    return pd.Series(position, index=data.index)


# %%
#| export
import numpy as np


def helper(x):
    return np.sign(x)
'''


def _notebook(tmp_path: Path, text: str, name: str = "momentum") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_exports_tagged_and_nbdev_cells_with_params_from_the_parameters_cell(tmp_path):
    extraction = build(_notebook(tmp_path, GOOD))
    text = extraction.text
    assert text.startswith("# Generated from ")
    assert "by meridian extract — edit the notebook, not this file." in text.splitlines()[0]
    assert text.splitlines()[1].startswith("# Notebook SHA-256: ")
    assert 'PARAMS = {\n    "lookback": 20,\n}' in text  # initial_capital is a run setting
    assert "def helper" in text and "WINDOWS = (5, 10)" in text
    assert "print(" not in text and "#| export" not in text
    assert text.index("import numpy as np") < text.index("PARAMS")  # imports hoisted
    assert extraction.output == Path.cwd() / "strategies" / "momentum.py"
    namespace: dict = {}
    exec(compile(text, "momentum.py", "exec"), namespace)
    assert namespace["PARAMS"] == {"lookback": 20} and callable(namespace["signals"])


def test_same_notebook_gives_byte_identical_modules(tmp_path):
    path = _notebook(tmp_path, GOOD)
    assert build(path).text == build(path).text
    assert build(ROOT / "notebooks" / "fld.py").text == (
        ROOT / "meridian" / "strategies" / "fld.py").read_text()


def test_shipped_modules_are_in_sync_with_their_notebooks(monkeypatch):
    monkeypatch.chdir(ROOT)  # this repository is the project whose strategies are built-in
    for name in ("fld", "sma_cross"):
        assert diff(build(ROOT / "notebooks" / f"{name}.py")) == ""


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%timeit 1 + 1\n", "cell 2, line 1: `%timeit 1 + 1` is an IPython magic"),
        ("%%time\nx = 1\n", "cell 2, line 1: `%%time` is an IPython magic"),
        ("!pip install foo\n", "cell 2, line 1: `!pip install foo` is a shell escape"),
        ("def signals(data):\n    return data[\n", "cell 2, line 2: syntax error"),
        ("import os\nos.remove('x')\n", "cell 2, line 2: `os.remove('x')` runs code at import"),
        ("for i in range(3):\n    pass\n", "cell 2, line 1: `for i in range(3):` runs code"),
        ("data = load()\n", "cell 2, line 1: `data = load()` runs code at import"),
    ],
    ids=["magic", "cell-magic", "shell-escape", "syntax-error", "side-effect", "loop", "call"],
)
def test_unsafe_export_cells_are_rejected_with_cell_and_line(tmp_path, cell, message):
    text = '# %% tags=["parameters"]\nx = 1\n\n# %% tags=["export"]\n' + cell
    with pytest.raises(ExtractError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("+", r"\+")) as error:
        build(_notebook(tmp_path, text))
    assert "\n" not in str(error.value)


def test_no_export_cell(tmp_path):
    with pytest.raises(ExtractError, match="no cell tagged 'export'"):
        build(_notebook(tmp_path, '# %% tags=["parameters"]\nx = 1\n\n# %%\ny = 2\n'))


def test_no_parameters_cell(tmp_path):
    text = '# %% tags=["export"]\ndef signals(data, x=1):\n    return data["Close"] * 0\n'
    with pytest.raises(ExtractError, match="no cell tagged 'parameters'"):
        build(_notebook(tmp_path, text))


def test_no_signals_function(tmp_path):
    text = '# %% tags=["parameters"]\nx = 1\n\n# %% tags=["export"]\ndef other(data):\n    pass\n'
    with pytest.raises(ExtractError, match=r"no `def signals\(data, ...\)`"):
        build(_notebook(tmp_path, text))


@pytest.mark.parametrize("output", ["../../x.py", "/tmp/x.py", "strategies/../../../x.py",
                                    "strategies/sub/x.py", "notebooks/x.py", "x.py"])
def test_output_outside_the_strategies_folder_is_refused(tmp_path, output):
    with pytest.raises(ExtractError, match="outside the project's strategies folder"):
        build(_notebook(tmp_path, GOOD), output)


def test_output_inside_the_installed_package_is_refused(tmp_path):
    import meridian

    target = Path(meridian.__file__).parent / "api.py"
    with pytest.raises(ExtractError, match="outside the project's strategies folder"):
        build(_notebook(tmp_path, GOOD), target)


def test_another_strategys_module_is_never_replaced_silently(project):
    write(build(project / "notebooks" / "sma_cross.py"))
    target = project / "strategies" / "sma_cross.py"
    before = target.read_text()
    clash = build(project / "notebooks" / "fld.py", "strategies/sma_cross.py")
    with pytest.raises(ExtractError, match="is the module of notebooks/sma_cross.py, not of "
                                           "notebooks/fld.py"):
        write(clash)
    assert target.read_text() == before


def test_a_new_module_named_after_another_notebook_is_refused(project):
    target = project / "strategies" / "sma_cross.py"
    target.unlink()  # meridian init extracted it; the notebook has no module yet
    clash = build(project / "notebooks" / "fld.py", "strategies/sma_cross.py")
    with pytest.raises(ExtractError, match="strategies/sma_cross.py would be the module of "
                                           "notebooks/sma_cross.py, not of notebooks/fld.py"):
        write(clash)
    assert not target.exists()
    assert write(clash, force=True) and "Generated from notebooks/fld.py" in target.read_text()
    own = build(project / "notebooks" / "fld.py", "strategies/fld_variant.py")
    assert write(own)  # a name no notebook has is the user's choice


def test_outside_a_project_extract_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match="meridian init"):
        build(_notebook(tmp_path, GOOD))


def test_names_that_are_not_identifiers_are_refused(tmp_path):
    with pytest.raises(ExtractError, match="'1abc' is not a valid Python identifier"):
        build(_notebook(tmp_path, GOOD, name="1abc"))
    with pytest.raises(ExtractError, match="must be a .py file named like a module"):
        build(_notebook(tmp_path, GOOD), Path.cwd() / "strategies" / "my-mod.py")
    with pytest.raises(ExtractError, match="must be a .py file named like a module"):
        build(_notebook(tmp_path, GOOD), Path.cwd() / "strategies" / "__init__.py")


def test_write_is_atomic_and_never_replaces_a_hand_written_file(tmp_path):
    extraction = build(_notebook(tmp_path, GOOD))
    target = tmp_path / "module.py"
    local = Extraction(extraction.notebook, target, extraction.text)
    assert write(local) is True and target.read_text() == extraction.text
    assert write(local) is False  # up to date: untouched
    target.write_text("# my own code\nPARAMS = {}\n")
    with pytest.raises(ExtractError, match="was not generated by meridian extract; refusing"):
        write(local)
    assert target.read_text() == "# my own code\nPARAMS = {}\n"
    assert write(local, force=True) and target.read_text() == extraction.text
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_diff_shows_what_would_change(tmp_path):
    extraction = build(_notebook(tmp_path, GOOD))
    missing = Extraction(extraction.notebook, tmp_path / "absent.py", extraction.text)
    assert diff(missing).startswith("---") and "+PARAMS = {" in diff(missing)
