"""``meridian new``: templates rendered into runnable strategy notebooks, nothing overwritten."""

from __future__ import annotations

import pytest

from meridian.authoring.extract import build
from meridian.authoring.new import find_template, new_notebook, parse_param_options, render
from meridian.exceptions import ProjectError, ScaffoldError
from meridian.pipeline.notebooks import notebook_parameters, read_notebook


@pytest.fixture
def notebooks(project):
    return project / "notebooks"


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
    parameters = notebook_parameters(read_notebook(find_template("strategy")))
    assert parameters["lookback"].default == 20


def test_unknown_region_in_a_template_is_an_error():
    with pytest.raises(ScaffoldError, match="template region 'meridian:oops' is unknown"):
        render("# meridian:oops\nx\n# meridian:end\n", "a", {})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("1abc", [], "'1abc' is not a valid strategy name"),
        ("class", [], "'class' is not a valid strategy name"),
        ("fld", [], "fld.py already exists"),
        ("FLD", [], "a strategy called 'FLD' already exists"),
        ("ok", ["lookback"], "use NAME=VALUE"),
        ("ok", ["2x=1"], "is not a parameter name"),
        ("ok", ["for=1"], "not a keyword"),
        ("ok", ["commission=0.1"], "'commission' is reserved"),
        ("ok", ["multiplier=3"], "'multiplier' is reserved"),
        ("ok", ["a=1", "a=2"], "'a' is given twice"),
        ("ok", ["a=[1, 2]"], "must be a number, a bool or a string"),
    ],
)
def test_bad_requests_are_one_line_errors(notebooks, name, params, message):
    before = sorted(notebooks.iterdir())
    with pytest.raises(ScaffoldError, match=message) as error:
        new_notebook(name, parse_param_options(params))
    assert "\n" not in str(error.value)
    assert sorted(notebooks.iterdir()) == before


def test_existing_notebook_is_never_overwritten(notebooks):
    (notebooks / "mine.py").write_text("precious")
    with pytest.raises(ScaffoldError, match="already exists"):
        new_notebook("mine")
    assert (notebooks / "mine.py").read_text() == "precious"


def test_unknown_template_lists_the_templates(notebooks):
    with pytest.raises(ScaffoldError,
                       match="unknown template 'fancy'; templates: portfolio, strategy"):
        new_notebook("ok", template="fancy")


def test_a_template_of_the_project_wins_over_the_shipped_one(project):
    (project / "templates").mkdir()
    (project / "templates" / "strategy.py").write_text(
        (find_template("strategy")).read_text().replace("placeholder rule", "HOUSE RULE"))
    new_notebook("house")
    assert "HOUSE RULE" in (project / "notebooks" / "house.py").read_text()


def test_outside_a_project_new_says_so_and_names_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match="no Meridian project in .*run `meridian init`"):
        new_notebook("idea")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [
    'a"+str(__import__("os").system("touch pwned"))+"',
    "back\\slash\" and 'quotes'\nnew line",
    "\u2028 unicode é ' \"\"\" end",
])
def test_hostile_string_values_are_written_as_literals_never_as_code(notebooks, value):
    new_notebook("quoted", {"label": value})
    text = (notebooks / "quoted.py").read_text()
    parameters = notebook_parameters(read_notebook(notebooks / "quoted.py"))
    assert parameters["label"].default == value  # the literal itself, read back
    assert f"label: str = {value}" not in text
    assert build(notebooks / "quoted.py").text.count("PARAMS") == 1
    assert not (notebooks.parent / "pwned").exists()
