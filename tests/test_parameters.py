from __future__ import annotations

import pytest

from meridian.exceptions import ParameterError
from meridian.parameters import (
    parse_assignments,
    parse_literal,
    split_words,
    validate_params,
)

DEFAULTS = {"fld_offset": 10, "cot_threshold": 0.0, "allow_short": True, "data_path": ""}


@pytest.mark.parametrize(
    ("text", "value"),
    [("15", 15), ("0.2", 0.2), ("False", False), ("true", True), ("prices.csv", "prices.csv"),
     ("[1, 2]", [1, 2]), ("'quoted'", "quoted"), ("-3", -3)],
)
def test_parse_literal(text, value):
    assert parse_literal(text) == value and type(parse_literal(text)) is type(value)


def test_values_take_the_defaults_types():
    merged = validate_params(DEFAULTS, {"fld_offset": "15", "cot_threshold": 1,
                                        "allow_short": "False", "data_path": 2020}, "fld")
    assert merged == {"fld_offset": 15, "cot_threshold": 1.0, "allow_short": False,
                      "data_path": "2020"}
    assert type(merged["cot_threshold"]) is float


def test_unknown_name_lists_valid_names():
    with pytest.raises(ParameterError, match="unknown parameter 'fld_ofset' for fld; valid "
                                             "parameters: fld_offset, cot_threshold"):
        validate_params(DEFAULTS, {"fld_ofset": 3}, "fld")


@pytest.mark.parametrize(
    ("name", "value"),
    [("fld_offset", "abc"), ("fld_offset", 2.5), ("fld_offset", True), ("allow_short", 1),
     ("cot_threshold", "high")],
)
def test_wrong_type_names_parameter_and_type(name, value):
    with pytest.raises(ParameterError, match=f"parameter '{name}' of fld expects") as error:
        validate_params(DEFAULTS, {name: value}, "fld")
    assert type(DEFAULTS[name]).__name__ in str(error.value)


def test_one_parser_for_name_value_everywhere():
    assert parse_assignments(["fld_offset=15", "allow_short=False", "data_path=a.csv",
                              "expr=a=b"]) == {"fld_offset": 15, "allow_short": False,
                                               "data_path": "a.csv", "expr": "a=b"}
    assert split_words('fld_offset=15 cot_market="CRUDE OIL"') == [
        "fld_offset=15", "cot_market=CRUDE OIL"]
    assert split_words("a=1; touch x `id`") == ["a=1;", "touch", "x", "`id`"]  # words, never run


@pytest.mark.parametrize(
    ("items", "message"),
    [(["fld_offset"], "use NAME=VALUE"), (["=3"], "use NAME=VALUE"),
     (["2x=1"], "'2x' is not a parameter name"), (["a="], "has no value"),
     (["a=1", "a=2"], "'a' is given twice")],
)
def test_malformed_assignments_are_one_line_errors(items, message):
    with pytest.raises(ParameterError, match=message):
        parse_assignments(items)


def test_unbalanced_quotes_are_an_error():
    with pytest.raises(ParameterError, match="No closing quotation"):
        split_words('cot_market="CRUDE OIL')


def test_windows_longer_than_the_data_are_refused_and_short_ones_warned():
    from meridian.parameters import check_windows

    with pytest.raises(ParameterError, match=r"fld_offset=1,000,000,000 is too long for the "
                                             r"data: 3,392 bars leave room for a window of at "
                                             r"most 3,372 \(20 bars to trade\) in fld"):
        check_windows({"fld_offset": 10**9}, ["fld_offset"], 3392, "fld")
    assert check_windows({"fld_offset": 3372}, ["fld_offset"], 3392, "fld") == []
    (line,) = check_windows({"fast": 2, "slow": 30}, ["fast", "slow"], 3392, "sma_cross")
    assert line == "warning: fast=2 is a window of 2 bars; windows under 5 bars follow noise"
    assert check_windows({"label": "x", "on": True}, ["label", "on", 7], 3392, "s") == []


def test_parameters_that_are_not_a_dict_are_one_line():
    from meridian import run_backtest

    with pytest.raises(ParameterError, match=r"parameters for fld must be a dict of name → "
                                             r"value, e\.g\. \{'fld_offset': \.\.\.\}; got a str "
                                             r"\('fld_offset=3'\)"):
        run_backtest("fld", params="fld_offset=3")


def test_a_short_window_runs_with_a_warning_in_its_log():
    from meridian import run_backtest

    result = run_backtest("fld", {"fld_offset": 3})
    assert result.status == "success"
    assert "warning: fld_offset=3 is a window of 3 bars; windows under 5 bars follow noise" \
        in result.logs
