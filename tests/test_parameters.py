from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.authoring.extract import build
from meridian.exceptions import ExtractError, ParameterError
from meridian.parameters import (
    broken_rules,
    check_rules,
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


# ------------------------------------------------------------------------ PARAM_RULES


def test_a_rule_across_parameters_refuses_what_breaks_it():
    check_rules({"fast": 10, "slow": 20}, ("fast < slow",), "sma_cross")
    check_rules({"a": 2, "b": 5, "c": 3}, ["a * 2 <= b and not c > b", "a < c < b"], "s")
    with pytest.raises(ParameterError, match=r"^fast=20, slow=20 breaks the rule fast < slow "
                                             r"of sma_cross: shorter first$"):
        check_rules({"fast": 20, "slow": 20}, {"fast < slow": "shorter first"}, "sma_cross")
    with pytest.raises(ParameterError, match="a=1, b=5 breaks the rule a > 2 or b < 3"):
        check_rules({"a": 1, "b": 5}, ["a > 2 or b < 3"], "s")


def test_a_rule_over_what_is_not_a_number_or_not_given_is_not_checked():
    check_rules({"fast": "x", "slow": 2}, ("fast < slow",), "s")  # a path, a Series…
    check_rules({"fast": 30}, ("fast < slow",), "s")  # a cell's own parameters only
    with pytest.raises(ParameterError, match="over 'slwo', which is not one of its parameters"):
        check_rules({"fast": 30, "slow": 40}, ("fast < slwo",), "s", every_name=True)


@pytest.mark.parametrize("rule", [
    "__import__('os').system('touch /tmp/pwned')", "fast.real < slow", "fast < slow()",
    "[fast] < [slow]", "fast < 'slow'", "lambda: 1", "fast <", "fast ** 99999999 < slow",
])
def test_a_rule_is_read_never_run(rule, tmp_path):
    with pytest.raises(ParameterError, match="is not a comparison of parameters and numbers"):
        check_rules({"fast": 1, "slow": 2}, [rule], "s")


def test_extract_refuses_rules_the_defaults_break(project):
    path = project / "notebooks" / "sma_cross.py"
    path.write_text(path.read_text().replace('PARAM_RULES = {"fast < slow"',
                                              'PARAM_RULES = {"fast > slow"'))
    with pytest.raises(ExtractError, match="PARAM_RULES: fast=10, slow=20 breaks the rule "
                                           "fast > slow"):
        build(path)


RULES = ["fast < slow", "a * 2 <= b and not c > b", "a < c < b", "a > 2 or b < 3",
         "a / b < 1", "-a + c >= b - 1", "not (a == b)", "b / (a - a) > 5"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(*[st.integers(-3, 6) | st.floats(-3, 6, allow_nan=False)] * 5),
                min_size=1, max_size=30),
       st.sets(st.sampled_from(RULES), min_size=1, max_size=3))
def test_broken_rules_over_arrays_equals_check_rules_one_by_one(rows, rules):
    """A sweep checks its task's rules over whole arrays; each combination's verdict is the
    one check_rules gives it (division by zero, chains, and/or/not, ints and floats)."""
    names = ("fast", "slow", "a", "b", "c")
    columns = {name: np.array([row[i] for row in rows]) for i, name in enumerate(names)}
    broken = broken_rules(columns, sorted(rules), "s")
    for i, row in enumerate(rows):
        try:
            check_rules(dict(zip(names, row, strict=True)), sorted(rules), "s")
            expected = False
        except ParameterError:
            expected = True
        assert broken[i] == expected, (row, rules)


def test_broken_rules_leaves_text_values_to_the_one_by_one_check():
    assert broken_rules({"fast": np.array(["a", "b"]), "slow": np.array([1, 2])},
                        ["fast < slow"], "s") is None
    assert not broken_rules({"fast": np.array([1, 2])}, ["fast < slow"], "s").any()
