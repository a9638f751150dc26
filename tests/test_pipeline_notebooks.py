"""Reading strategy notebooks and their parameters without a kernel."""

from __future__ import annotations

import pytest

from meridian.exceptions import ParameterError, StrategyNotFoundError
from meridian.pipeline.notebooks import (
    find_notebook,
    list_notebooks,
    notebook_parameters,
    read_notebook,
)


def test_both_strategy_notebooks_exist():
    assert {"fld", "sma_cross"} <= set(list_notebooks())


def test_unknown_strategy_lists_the_notebooks():
    with pytest.raises(StrategyNotFoundError, match=r"unknown strategy 'fdl'; notebooks in .*: "
                                                    r".*fld.*sma_cross"):
        find_notebook("fdl")


@pytest.mark.parametrize("name", ["fld", "sma_cross"])
def test_notebooks_have_kernelspec_and_documented_parameters(name):
    notebook = read_notebook(find_notebook(name))
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    parameters = notebook_parameters(notebook)
    for common in ("initial_capital", "commission", "slippage", "data_path", "start", "end",
                   "stop_loss", "take_profit", "trailing_stop", "multiplier", "tick_size"):
        assert common in parameters
    assert all(p.help for p in parameters.values()), "every parameter explains itself"


def test_fld_parameters_and_types():
    parameters = notebook_parameters(read_notebook(find_notebook("fld")))
    assert {name: p.type_name for name, p in parameters.items()} == {
        "fld_offset": "int", "cot_threshold": "float", "allow_short": "bool",
        "initial_capital": "float", "commission": "float", "slippage": "float",
        "data_path": "str", "cot_path": "str", "cot_market": "str", "start": "str", "end": "str",
        "stop_loss": "float", "take_profit": "float", "trailing_stop": "float",
        "multiplier": "float", "tick_size": "float", "commission_per_contract": "float",
        "fld_stop": "bool",
    }
    assert parameters["fld_offset"].default == 10


def test_parameters_cell_with_a_syntax_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text('# %% tags=["parameters"]\nx = = 1\n')
    with pytest.raises(ParameterError, match="parameters cell does not parse"):
        notebook_parameters(read_notebook(path), "broken")
