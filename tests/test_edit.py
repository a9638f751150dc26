"""Saving edited cells back to a percent-format notebook: jupytext's rules, every other byte
kept, a file changed on disk never overwritten."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import pytest
from conftest import ROOT

from meridian.authoring.edit import apply_edits, cells_view, parse, read_text, save_cells
from meridian.exceptions import NotebookEditError

NOTEBOOKS = [ROOT / "meridian/_examples/fld.py", ROOT / "meridian/_examples/sma_cross.py",
             ROOT / "meridian/_templates/strategy.py"]


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_editing_one_cell_changes_only_that_cell(path):
    text = read_text(path)
    assert apply_edits(text, {}, path.name) == text  # jupytext's header stamp is not added
    notebook = parse(text, path.name)
    for index, cell in enumerate(notebook.cells):
        extra = "\n\nA new paragraph." if cell.cell_type == "markdown" else "\nx_new = 1"
        edited = apply_edits(text, {index: cell.source + extra}, path.name)
        again = parse(edited, path.name)
        assert [c.source for c in again.cells] == [
            c.source + (extra if i == index else "") for i, c in enumerate(notebook.cells)]
        assert [c.metadata for c in again.cells] == [c.metadata for c in notebook.cells]
        added = [line for line in _changed_lines(text, edited) if line.startswith("+")]
        assert added[-1] in ("+# A new paragraph.", "+x_new = 1")
        assert all(line in ("+#", "+# A new paragraph.", "+x_new = 1", "-")
                   for line in _changed_lines(text, edited)), (index, _changed_lines(text, edited))


def test_a_hand_spaced_file_keeps_its_spacing_elsewhere():
    text = ("# %% [markdown]\n# Title\n\n\n\n# %%   tags=[\"parameters\"]\nlookback = 20\n\n"
            "# %%\ndef signals(data, lookback=20):\n    return data['Close'] * 0\n")
    edited = apply_edits(text, {1: "lookback = 30"}, "hand.py")
    assert _changed_lines(text, edited) == ["-lookback = 20", "+lookback = 30"]
    edited = apply_edits(text, {2: "def signals(data, lookback=30):\n    return 0"}, "hand.py")
    assert edited.startswith(text[:text.index("# %%\ndef")])


def test_a_cell_marker_typed_into_a_cell_is_escaped_or_refused():
    text = read_text(NOTEBOOKS[0])
    source = "a = 1\n# %%\nb = 2"
    edited = apply_edits(text, {0: source}, "fld.py")  # Markdown: jupytext escapes it
    assert parse(edited, "fld.py").cells[0].source == source
    with pytest.raises(NotebookEditError, match="other cells"):  # code: a new cell
        apply_edits(text, {2: source}, "fld.py")
    with pytest.raises(NotebookEditError, match="has no cell 99"):
        apply_edits(text, {99: "x"}, "fld.py")


def test_a_file_changed_on_disk_is_never_overwritten(tmp_path):
    path = tmp_path / "fld.py"
    path.write_text(read_text(NOTEBOOKS[0]))
    loaded = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text().replace("# # FLD", "# # FLD (edited elsewhere)"))
    on_disk = path.read_text()
    with pytest.raises(NotebookEditError, match="changed on disk since this page loaded"):
        save_cells(path, loaded, {0: "# New title"})
    assert path.read_text() == on_disk
    fresh = hashlib.sha256(path.read_bytes()).hexdigest()
    assert save_cells(path, fresh, {0: "# New title"}) == \
        hashlib.sha256(path.read_bytes()).hexdigest()
    assert parse(path.read_text(), "fld.py").cells[0].source == "# New title"


def test_a_symlinked_notebook_is_edited_where_it_lives(tmp_path):
    real = tmp_path / "real.py"
    real.write_text(read_text(NOTEBOOKS[1]))
    link = tmp_path / "link.py"
    link.symlink_to(real)
    save_cells(link, hashlib.sha256(real.read_bytes()).hexdigest(), {0: "# Renamed"})
    assert link.is_symlink() and parse(real.read_text(), "real.py").cells[0].source == \
        "# Renamed"


def test_signals_cells_offer_their_parameters_with_the_notebooks_values():
    cells = cells_view(parse(read_text(NOTEBOOKS[0]), "fld.py"))
    with_signals = [c for c in cells if "signals" in c]
    assert [c["index"] for c in with_signals] == [4]
    assert with_signals[0]["signals"] == [
        {"name": "fld_offset", "value": 10, "type": "int"},
        {"name": "cot_threshold", "value": 0.0, "type": "float"},
        {"name": "allow_short", "value": True, "type": "bool"}]
    parameters = next(c for c in cells if "parameters" in c)["parameters"]
    assert parameters[0] == {"name": "fld_offset", "value": 10, "type": "int", "fixed": False,
                             "help": "bars the median price is displaced forward (about half "
                                     "the cycle's wavelength)"}
    assert "<h1" in cells[0]["html"]
    assert Path(NOTEBOOKS[0]).read_text() == read_text(NOTEBOOKS[0])


def test_a_signals_cell_the_magic_would_refuse_keeps_its_button_and_says_why():
    text = ("# %%\nLOOKBACK = 5\n\n# %%\ndef signals(data, fast=LOOKBACK):\n    return 0\n\n"
            "# %%\ndef helper(data):\n    return 1\n")
    cells = cells_view(parse(text, "odd.py"))
    assert cells[1]["signals"] == [] and cells[1]["signals_error"] == (
        "signals parameter 'fast': its default must be a literal (a number, bool or string)")
    assert "signals" not in cells[0] and "signals" not in cells[2]


def test_of_concurrent_saves_from_one_loaded_file_exactly_one_wins(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "fld.py"
    path.write_text(read_text(NOTEBOOKS[0]))
    loaded = hashlib.sha256(path.read_bytes()).hexdigest()

    def save(number: int) -> int | None:
        try:
            save_cells(path, loaded, {0: f"# Title from tab {number}"})
            return number
        except NotebookEditError:
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [n for n in pool.map(save, range(8)) if n is not None]
    assert len(winners) == 1
    assert f"# # Title from tab {winners[0]}" in path.read_text()


def test_a_shared_notebooks_markdown_renders_inert_on_the_notebooks_page():
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        '# Title\n<script>alert(1)</script><img src=x onerror="alert(2)">'
        '<a href="javascript:alert(3)">x</a>\n\nSome **bold** text')])
    (view,) = cells_view(notebook)
    assert "<strong>bold</strong>" in view["html"] and "<h1>" in view["html"]
    assert "<script" not in view["html"] and "onerror" not in view["html"]
    assert "javascript:" not in view["html"]
