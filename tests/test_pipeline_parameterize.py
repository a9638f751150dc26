"""Parameter values from -p and YAML, checked before any kernel starts."""

from __future__ import annotations

import pytest

from meridian.exceptions import DataError, ParameterError
from meridian.pipeline.notebooks import find_notebook, notebook_parameters, read_notebook
from meridian.pipeline.parameterize import (
    load_params_file,
    preflight,
    resolve_params,
)

FLD = notebook_parameters(read_notebook(find_notebook("fld")))


def test_resolve_converts_to_the_defaults_types():
    values = resolve_params(FLD, {"fld_offset": 15, "cot_threshold": 1}, "fld")
    assert values == {"fld_offset": 15, "cot_threshold": 1.0}


def test_unknown_and_ill_typed_parameters():
    with pytest.raises(ParameterError, match="unknown parameter 'offset' for fld; valid "
                                             "parameters: fld_offset, cot_threshold"):
        resolve_params(FLD, {"offset": 1}, "fld")
    with pytest.raises(ParameterError, match="'fld_offset' of fld expects int"):
        resolve_params(FLD, {"fld_offset": "fifteen"}, "fld")


def test_yaml_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("fld_offset: 15\ncot_threshold: 0.2\n")
    assert load_params_file(good) == {"fld_offset": 15, "cot_threshold": 0.2}
    bad = tmp_path / "bad.yaml"
    bad.write_text("fld_offset: [15\ncot_threshold: 0.2\n")
    with pytest.raises(ParameterError, match=r"bad.yaml line \d+: not valid YAML") as error:
        load_params_file(bad)
    assert "\n" not in str(error.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="expected a mapping"):
        load_params_file(listed)
    with pytest.raises(ParameterError, match="does not exist"):
        load_params_file(tmp_path / "missing.yaml")


def _preflight(values: dict) -> None:
    notebook = read_notebook(find_notebook("fld"))
    preflight(notebook, {name: p.default for name, p in FLD.items()} | values, "fld")


def test_preflight_checks_paths_and_data(tmp_path):
    with pytest.raises(ParameterError, match="data_path: no such file 'nope.csv'"):
        _preflight({"data_path": "nope.csv"})
    broken = tmp_path / "broken.csv"
    broken.write_text("Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,1\n2020-01-02,1,0.1,0.5,1\n")
    with pytest.raises(DataError, match="broken.csv line 3"):
        _preflight({"data_path": str(broken)})
    _preflight({"data_path": "", "fld_offset": 3})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fld_offset": 0}, "fld_offset=0 is out of range for fld: it must lie in \\[1, inf\\)"),
        ({"cot_threshold": 1.5}, "cot_threshold=1.5 is out of range"),
        ({"commission": 0.5}, "commission=0.5 is out of range for the run settings: it must "
                              "lie in \\[0, 0.5\\)"),
        ({"sizing": "kelly"}, "sizing='kelly' is not supported; use one of fixed_fraction"),
        ({"slippage": -0.1}, "slippage=-0.1 is out of range"),
        ({"initial_capital": 0.0}, "initial_capital=0.0 is out of range"),
        ({"start": "2020/01/01"}, "start='2020/01/01' is not a date; use YYYY-MM-DD"),
        ({"start": "2021-01-01", "end": "2020-01-01"}, "start='2021-01-01' is after end"),
        ({"cot_market": "CRUDE OIL"}, "cot_market='CRUDE OIL' needs cot_path"),
    ],
)
def test_checks_that_need_no_data_fail_before_a_kernel(values, message):
    with pytest.raises(ParameterError, match=message):
        _preflight(values)


def test_short_ambiguous_and_non_cot_files_are_refused(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,1\n2020-01-02,1,2,0.5,1\n"
                     "2020-01-03,1,2,0.5,1\n")
    with pytest.raises(DataError, match="short.csv has 3 bars; a backtest needs at least 20"):
        _preflight({"data_path": str(short)})
    ambiguous = tmp_path / "us.csv"
    ambiguous.write_text("Date,Open,High,Low,Close\n"
                         + "".join(f"0{m}/01/2020,1,2,0.5,1\n" for m in range(1, 10)))
    with pytest.raises(DataError, match="read both as day/month and as month/day"):
        _preflight({"data_path": str(ambiguous)})
    not_cot = tmp_path / "cot.csv"
    not_cot.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="cot.csv"):
        _preflight({"cot_path": str(not_cot)})
