"""The run filter's words, as SQL: one grammar for ``storage.search_runs``, the live ui's
``/api/runs?q=`` and (in JavaScript, the same rules) the static runs page.

Words are separated by spaces and all must hold:

- ``fld_offset=15``: the parameter equals the value exactly (15 is not 150; the value reads
  as a Python literal, so ``allow_short=False`` is the bool);
- ``sharpe_ratio>1``, ``max_drawdown>=-0.2``, ``cagr<0.1``, ``num_trades<=50``: a metric
  compared with a number (a run without that metric does not match);
- ``tag:keeper``: the run carries that tag;
- any other word: found, ignoring case, in the run's id, strategy, name, status, kind,
  parameters, tags, universe, data file, note, error or time.
"""

from __future__ import annotations

import math
import re
from typing import Any

from meridian.exceptions import RegistryError
from meridian.parameters import parse_literal
from meridian.registry.records import clean_json, dumps

COMPARISON = re.compile(r"^([A-Za-z_]\w*)(>=|<=|>|<)(.+)$")
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$")
TAG = "tag:"
HAYSTACK = ("lower(run_id || ' ' || strategy_name || ' ' || ifnull(name, '') || ' ' || status "
            "|| ' ' || kind || ' ' || params || ' ' || ifnull(json_extract(extra, '$.tags'), '')"
            " || ' ' || ifnull(json_extract(extra, '$.universe.name'), '')"
            " || ' ' || ifnull(json_extract(extra, '$.data.path'), '')"
            " || ' ' || ifnull(json_extract(extra, '$.note'), '') || ' ' || "
            "ifnull(json_extract(extra, '$.error'), '') || ' ' || timestamp)")
"""Where a free word is looked for: the run's words, lower-cased, in one string."""


def json_path(key: str, what: str) -> str:
    """``$."key"``: a JSON path to one parameter or metric (a name with a double quote
    cannot be one)."""
    if '"' in key:
        raise RegistryError(f"{what} name {key!r} cannot contain a double quote")
    return f'$."{key}"'


def tag_clause(tag: str) -> tuple[str, list]:
    """The run carries ``tag``."""
    return "EXISTS (SELECT 1 FROM json_each(runs.extra, '$.tags') WHERE value = ?)", [tag]


def param_clause(key: str, value: Any) -> tuple[str, list]:
    """A parameter equal to ``value``, exactly (15 is not 150 nor "15"; SQLite compares 15
    and 15.0 as the same number)."""
    path = json_path(key, "param")
    if value is None:
        return "json_type(params, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(params, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, (dict, list, tuple)):
        return "json_extract(params, ?) = json(?)", [path, dumps(clean_json(value, key))]
    return "json_extract(params, ?) = ?", [path, clean_json(value, key)]


def text_clauses(text: str) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (AND-ed) and their arguments of a filter text (module doc)."""
    clauses: list[str] = []
    args: list[Any] = []
    for word in str(text or "").split():
        compared = COMPARISON.match(word)
        assigned = ASSIGNMENT.match(word)
        if word.lower().startswith(TAG) and len(word) > len(TAG):
            clause, clause_args = tag_clause(word[len(TAG):])
            clauses.append(clause)
            args += clause_args
        elif compared and _number(compared[3]) is not None:
            name, op, bound = compared[1], compared[2], _number(compared[3])
            clauses.append(f"json_extract(metrics, ?) {op} ?")
            args += [json_path(name, "metric"), bound]
        elif assigned:
            clause, clause_args = param_clause(assigned[1], parse_literal(assigned[2]))
            clauses.append(clause)
            args += clause_args
        else:
            clauses.append(f"instr({HAYSTACK}, ?) > 0")
            args.append(word.lower())
    return clauses, args


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
