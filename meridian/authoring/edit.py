"""Reading a notebook's cells for the editor page and saving edited cells back to the file.

Saving goes through jupytext, so the percent format's rules (cell markers, tags, metadata,
blank lines) are jupytext's own. But jupytext rewrites a file's header (it stamps its version
in it) and may normalise spacing a hand-written file chose differently; a quant's git diff
after editing one cell must show that cell and nothing else. So the file is rendered by
jupytext twice — as loaded and as edited — and only the lines that differ between those two
renderings are replaced in the original text; every other byte stays as it was. The result is
read back with jupytext and must hold exactly the edited cells, or nothing is written.

A save names the SHA-256 of the file the page loaded; when the file on disk has changed since
(another editor, a ``git checkout``), the save is refused and nothing is overwritten.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

import jupytext
import nbformat

from meridian import project
from meridian._files import locked, write_atomic
from meridian.authoring.extract import signals_defaults
from meridian.exceptions import NotebookEditError, ParameterError
from meridian.pipeline.notebooks import notebook_parameters, parameters_cell

FORMAT = "py:percent"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text(path: Path) -> str:
    """The notebook file's text, exactly (no newline translation)."""
    with open(path, encoding="utf-8", newline="") as stream:
        return stream.read()


def parse(text: str, where: str) -> nbformat.NotebookNode:
    try:
        return jupytext.reads(text, fmt=FORMAT)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one line
        raise NotebookEditError(f"{where}: not a readable percent-format notebook "
                                f"({type(error).__name__}: {error})") from None


def _type_name(value: Any) -> str:
    return "float" if isinstance(value, float) else type(value).__name__


def _markdown(source: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from meridian.pages import inert_html

    return inert_html(markdown2html_mistune(source))  # a shared notebook's markup: inert


def cells_view(notebook: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """Each cell as the editor shows it: type, source, tags, rendered Markdown, the
    parameters cell's entries, and a signals cell's parameters (defaults from the parameters
    cell when it names them — what a run of the notebook would pass — else from signals)."""
    marked = parameters_cell(notebook)
    try:
        parameters = notebook_parameters(notebook)
    except ParameterError:
        parameters = {}  # the page still opens; a run says what is wrong
    view = []
    for index, cell in enumerate(notebook.cells):
        item: dict[str, Any] = {"index": index, "type": cell.cell_type, "source": cell.source,
                                "tags": list(cell.metadata.get("tags", []))}
        if cell.cell_type == "markdown":
            item["html"] = _markdown(cell.source)
        elif cell.cell_type == "code":
            if cell is marked:
                item["parameters"] = [{"name": p.name, "value": p.default,
                                       "type": _type_name(p.default), "help": p.help,
                                       "fixed": p.default is None}  # an expression
                                      for p in parameters.values()]
            try:
                found = signals_defaults(cell.source)
            except ParameterError as error:  # the button stays; a click says what is wrong
                found = {} if "def signals(" in cell.source else None
                item["signals_error"] = str(error)
            if found is not None:
                item["signals"] = [
                    {"name": name, "value": parameters[name].default
                     if name in parameters and type(parameters[name].default) is type(default)
                     else default, "type": _type_name(default)}
                    for name, default in found.items()]
        view.append(item)
    return view


def _splice(original: str, before: str, after: str) -> str:
    """``original`` with the changes that turn ``before`` into ``after`` (two jupytext
    renderings) applied, every other line untouched; NotebookEditError when a changed region
    of ``before`` is not in ``original`` as is."""
    lines = original.splitlines(keepends=True)
    rendered = before.splitlines(keepends=True)
    edited = after.splitlines(keepends=True)
    mapping: dict[int, int] = {}  # line of `before` → the same line in `original`
    for block in difflib.SequenceMatcher(None, rendered, lines, autojunk=False
                                         ).get_matching_blocks():
        for offset in range(block.size):
            mapping[block.a + offset] = block.b + offset
    mapping[len(rendered)] = len(lines)
    def locate(i1: int, i2: int) -> tuple[int, int] | None:
        """Where lines ``i1:i2`` of ``before`` sit in ``original``: between the nearest
        unchanged lines around them (their own text may be spaced differently there)."""
        if i2 > i1 and i1 in mapping and i2 - 1 in mapping \
                and mapping[i2 - 1] - mapping[i1] == i2 - 1 - i1:
            return mapping[i1], mapping[i2 - 1] + 1  # the very lines, found as they are
        if i1 == i2 and i1 in mapping:
            return mapping[i1], mapping[i1]
        start = 0 if i1 == 0 else mapping.get(i1 - 1, -2) + 1
        end = mapping.get(i2)
        if start < 0 or end is None or end < start:
            return None
        return start, end

    result: list[str] = []
    cursor = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, rendered, edited, autojunk=False
                                                        ).get_opcodes():
        if tag == "equal":
            continue
        found = locate(i1, i2)
        if found is None or found[0] < cursor:
            raise NotebookEditError("jupytext would reformat lines around the edited cell; "
                                    "save it from Jupyter or your editor instead")
        result += lines[cursor:found[0]] + edited[j1:j2]
        cursor = found[1]
    return "".join(result + lines[cursor:])


def apply_edits(text: str, edits: dict[int, str], where: str) -> str:
    """The notebook text with the sources of the cells in ``edits`` (index → new source)
    replaced, through jupytext, everything else byte for byte."""
    notebook = parse(text, where)
    for index in edits:
        if not 0 <= index < len(notebook.cells):
            raise NotebookEditError(f"{where} has no cell {index} (it has "
                                    f"{len(notebook.cells)}); reload the page")
    before = jupytext.writes(notebook, fmt=FORMAT)
    for index, source in edits.items():
        notebook.cells[index].source = source.replace("\r\n", "\n")
    after = jupytext.writes(notebook, fmt=FORMAT)
    new_text = _splice(text, before, after)
    check = parse(new_text, where)
    if [(c.cell_type, c.source, dict(c.metadata)) for c in check.cells] != \
            [(c.cell_type, c.source, dict(c.metadata)) for c in notebook.cells]:
        raise NotebookEditError(f"{where}: saved like this, jupytext would read other cells "
                                "than the page shows (a `# %%` line in code starts a new "
                                "cell); nothing was saved")
    return new_text


def save_cells(path: Path, loaded_sha256: str, edits: dict[int, str]) -> str:
    """Write ``edits`` into the notebook at ``path`` unless it changed on disk since the
    page loaded it (its SHA-256 was ``loaded_sha256``); return the new file's SHA-256."""
    where = project.display_path(path)
    target = path.resolve()  # a symlinked notebook is edited where it lives
    with locked(_lock_path(target)):  # compare and write as one step: of saves made from
        text = read_text(target)      # the same loaded file, exactly one wins
        if text_sha256(text) != loaded_sha256:
            raise NotebookEditError(f"{where} changed on disk since this page loaded it; "
                                    "nothing was saved (reload to see the file as it is now)")
        new_text = apply_edits(text, edits, where)
        if new_text != text:
            write_atomic(target, new_text)
    return text_sha256(new_text)


def _lock_path(target: Path) -> Path:
    """A lock file for ``target`` outside the user's folders (nothing to commit by mistake),
    the same for every process on this machine."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:32]
    return Path(tempfile.gettempdir()) / "meridian-locks" / f"{digest}.lock"
