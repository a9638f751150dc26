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


def test_preflight_checks_paths_and_data(tmp_path):
    with pytest.raises(ParameterError, match="data_path: no such file 'nope.csv'"):
        preflight({"data_path": "nope.csv"})
    broken = tmp_path / "broken.csv"
    broken.write_text("Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,1\n2020-01-02,1,0.1,0.5,1\n")
    with pytest.raises(DataError, match="broken.csv line 3"):
        preflight({"data_path": str(broken)})
    preflight({"data_path": "", "fld_offset": 3})
