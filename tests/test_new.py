"""``meridian new``: templates rendered into runnable strategy notebooks, nothing overwritten."""

from __future__ import annotations

import pytest

from meridian.authoring.extract import build
from meridian.authoring.new import new_notebook, parse_param_options, render, templates_dir
from meridian.exceptions import ScaffoldError
from meridian.pipeline.notebooks import notebook_parameters, read_notebook


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    monkeypatch.setenv("MERIDIAN_NOTEBOOKS", str(tmp_path))
    return tmp_path


def test_params_are_scaffolded_into_parameters_cell_signature_and_params(notebooks):
    path = new_notebook("breakout", parse_param_options(["lookback=30", "threshold=0.5",
                                                         "use_volume=False"]))
    parameters = notebook_parameters(read_notebook(notebooks / "breakout.py"))
    assert {n: p.default for n, p in parameters.items() if n in ("lookback", "threshold",
                                                                  "use_volume")} == {
        "lookback": 30, "threshold": 0.5, "use_volume": False}
    for common in ("initial_capital", "commission", "slippage", "data_path", "start", "end"):
        assert common in parameters
    text = (notebooks / "breakout.py").read_text()
    assert "# meridian:" not in text and "# # breakout" in text
    assert "lookback: int = 30," in text and "threshold: float = 0.5," in text
    assert build(notebooks / "breakout.py").text.count('"lookback": 30') == 1
    assert path.name == "breakout.py"


def test_template_itself_is_a_valid_notebook():
    parameters = notebook_parameters(read_notebook(templates_dir() / "strategy.py"))
    assert parameters["lookback"].default == 20


def test_unknown_region_in_a_template_is_an_error():
    with pytest.raises(ScaffoldError, match="template region 'meridian:oops' is unknown"):
        render("# meridian:oops\nx\n# meridian:end\n", "a", {})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("1abc", [], "'1abc' is not a valid strategy name"),
        ("class", [], "'class' is not a valid strategy name"),
        ("fld", [], "a strategy called 'fld' already exists"),
        ("ok", ["lookback"], "needs NAME=DEFAULT"),
        ("ok", ["2x=1"], "must be a Python identifier"),
        ("ok", ["commission=0.1"], "'commission' is reserved"),
        ("ok", ["a=1", "a=2"], "'a' is given twice"),
        ("ok", ["a=[1, 2]"], "must be a number, a bool or a string"),
    ],
)
def test_bad_requests_are_one_line_errors(notebooks, name, params, message):
    with pytest.raises(ScaffoldError, match=message):
        new_notebook(name, parse_param_options(params))
    assert list(notebooks.iterdir()) == []


def test_existing_notebook_is_never_overwritten(notebooks):
    (notebooks / "mine.py").write_text("precious")
    with pytest.raises(ScaffoldError, match="already exists"):
        new_notebook("mine")
    assert (notebooks / "mine.py").read_text() == "precious"


def test_unknown_template_lists_the_templates(notebooks):
    with pytest.raises(ScaffoldError, match="unknown template 'fancy'; templates: strategy"):
        new_notebook("ok", template="fancy")
