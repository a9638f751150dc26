"""``%%backtest``: turn the notebook cell you are editing into a recorded backtest.

``%load_ext meridian`` registers it in Jupyter, VS Code or any IPython front end. The cell must
define ``signals(data, <param>=<default>, ...)``; its parameters are read from the source (no
code runs for that), ``--param`` overrides them, then the cell runs in your namespace (earlier
imports and variables work) and ``signals`` goes through the same engine and metrics as every
other backtest. The result shows inline, is saved to the registry (unless ``--no-save``) and is
left in ``_backtest``.
"""

from __future__ import annotations

import hashlib
import html
import shlex
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from meridian.authoring.extract import signals_defaults
from meridian.exceptions import MeridianError
from meridian.parameters import coerce, parse_assignments


def cell_parameters(source: str) -> dict[str, Any]:
    """Keyword defaults of the top-level ``def signals(data, ...)`` in ``source``, read with
    ``ast`` (nothing is executed). Defaults must be literals."""
    try:
        params = signals_defaults(source)
    except MeridianError as error:
        raise UsageError(str(error)) from None
    if params is None:
        raise UsageError("the cell defines no `def signals(data, ...)`; %%backtest backtests "
                         "that function")
    return params


def _overrides(options: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``NAME=VALUE`` options (the one parser of :mod:`meridian.parameters`) checked against
    the cell's parameters."""
    values = {}
    try:
        parsed = parse_assignments(options, "--param", "lookback=20")
    except MeridianError as error:
        raise UsageError(str(error)) from None
    for name, value in parsed.items():
        if name not in defaults:
            raise UsageError(f"--param {name!r} is not a parameter of signals; its parameters: "
                             f"{', '.join(defaults) or '(none)'}")
        values[name] = coerce(name, value, defaults[name], "signals")
    return values


def _run_settings(args, namespace: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The data and run settings of a ``%%backtest``: the line's options (``--set``,
    ``--capital``…), else (with ``--use-namespace``) the notebook's own variables named like a
    :class:`~meridian.settings.RunSettings` field, else the defaults."""
    from meridian.settings import NAMES

    settings: dict[str, Any] = {}
    data = args.data
    if args.use_namespace:
        settings = {name: namespace[name] for name in NAMES if name in namespace}
        if data is None and isinstance(namespace.get("data"), pd.DataFrame):
            data = namespace["data"]
    given = {"initial_capital": args.capital, "commission": args.commission,
             "slippage": args.slippage}
    settings.update({name: value for name, value in given.items() if value is not None})
    try:
        settings.update(parse_assignments(args.set, "--set", "multiplier=50"))
    except MeridianError as error:
        raise UsageError(str(error)) from None
    return data, settings


@magics_class
class BacktestMagics(Magics):
    """The ``%%backtest`` cell magic."""

    @magic_arguments()
    @argument("--data", help="OHLCV file (CSV or Parquet); default: the bundled sample.")
    @argument("--capital", type=float, default=None, help="Initial capital (100,000).")
    @argument("--commission", type=float, default=None, help="Fraction of traded notional.")
    @argument("--slippage", type=float, default=None, help="Fraction of price, against you.")
    @argument("--set", action="append", default=[], metavar="NAME=VALUE",
              help="Any run setting (repeatable), e.g. --set multiplier=50 --set "
                   "sizing=volatility_target --set target_volatility=0.15.")
    @argument("--use-namespace", action="store_true",
              help="Take `data` and the run settings (initial_capital, costs, stops, contract…) "
                   "from the notebook's variables, as notebook_backtest does; options given "
                   "here still win.")
    @argument("--name", default="cell", help="Name of the run in the registry.")
    @argument("--kind", default="magic", choices=("magic", "cell"),
              help="How the run is filed: `cell` for a notebook cell run from meridian ui.")
    @argument("--notebook", default=None, help="The notebook this cell belongs to (recorded).")
    @argument("--cell-index", type=int, default=None,
              help="The cell's index in that notebook (recorded).")
    @argument("--param", action="append", default=[], metavar="NAME=VALUE",
              help="Override a default of signals (repeatable); bare NAME=VALUE works too.")
    @argument("assignments", nargs="*", metavar="NAME=VALUE",
              help="Override defaults of signals, e.g. %%%%backtest lookback=30.")
    @argument("--tag", action="append", default=[], metavar="TAG",
              help="Tag the recorded run (repeatable).")
    @argument("--no-save", action="store_true", help="Do not record the run.")
    @argument("--debug", action="store_true", help="Show full tracebacks.")
    @cell_magic
    def backtest(self, line: str, cell: str):
        """Backtest the ``signals`` function this cell defines; see the module docstring."""
        try:  # POSIX quoting, as the ui writes the line: label='hello' is the text hello
            argv = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"the %%backtest line: {error}") from None
        args = self.backtest.parser.parse_args(argv)
        try:
            return self._backtest(args, cell)
        except UsageError:
            raise
        except Exception as error:
            if args.debug:
                raise
            message = str(error).splitlines()[0] if str(error) else ""
            raise UsageError(f"{type(error).__name__}: {message}") from None

    def _backtest(self, args, cell: str):
        from IPython.display import HTML, display

        from meridian import viz
        from meridian.api import backtest_signals

        params = cell_parameters(cell)
        params.update(_overrides([*args.assignments, *args.param], params))
        shell = self.shell
        try:
            shell.ex(shell.transform_cell(cell))  # in the user's namespace, like a normal cell
        except Exception as error:
            if args.debug:
                raise
            raise UsageError(f"the cell raised {type(error).__name__}: {error}") from None
        signals = shell.user_ns.get("signals")
        if not callable(signals):
            raise UsageError("after running the cell, `signals` is not a function")
        data, settings = _run_settings(args, shell.user_ns)
        result = backtest_signals(signals, params, strategy_name=args.name, data=data,
                                  kind=args.kind, **settings)
        if result.status != "success":
            if args.debug:
                print(result.traceback)
            raise UsageError(f"signals failed: {result.error}")
        result.name, result.tags = args.name, list(args.tag)
        # IPython hands the body over with one "\n" appended: hash the cell as it is written
        source = cell[:-1] if cell.endswith("\n") else cell
        result.code = {"cell_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest()}
        result.source = source
        if args.notebook is not None:
            result.code.update(notebook=args.notebook, cell_index=args.cell_index)
        shell.user_ns["_backtest"] = result
        viz.report(result)
        saved = "" if args.no_save else self._save(result)
        display(HTML(f"<p>run <code>{html.escape(result.run_id)}</code> · "
                     f"{html.escape(args.name)} · {html.escape(viz.format_params(params))}"
                     f"{saved}</p>"))

    @staticmethod
    def _save(result) -> str:
        from meridian import storage
        from meridian.dashboard import refresh_dashboard

        try:
            storage.save_run(result.to_dict())
        except MeridianError as error:
            raise UsageError(f"the run was not saved: {error}") from None
        refresh_dashboard(run_ids=[result.run_id])
        return " · saved to the registry"


def load_ipython_extension(ipython) -> None:
    """``%load_ext meridian``."""
    ipython.register_magics(BacktestMagics)
