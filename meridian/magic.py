"""``%%backtest``: turn the notebook cell you are editing into a recorded backtest.

``%load_ext meridian`` registers it in Jupyter, VS Code or any IPython front end. The cell must
define ``signals(data, <param>=<default>, ...)``; its parameters are read from the source (no
code runs for that), ``--param`` overrides them, then the cell runs in your namespace (earlier
imports and variables work) and ``signals`` goes through the same engine and metrics as every
other backtest. The result shows inline, is saved to the registry (unless ``--no-save``) and is
left in ``_backtest``.
"""

from __future__ import annotations

import ast
import hashlib
import html
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from meridian.authoring.extract import signals_arguments
from meridian.exceptions import MeridianError
from meridian.parameters import coerce, parse_assignments


def cell_parameters(source: str) -> dict[str, Any]:
    """Keyword defaults of the top-level ``def signals(data, ...)`` in ``source``, read with
    ``ast`` (nothing is executed). Defaults must be literals."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        text = (error.text or "").strip()
        raise UsageError(f"syntax error in the cell, line {error.lineno}: {error.msg}: `{text}`"
                         ) from None
    arguments = signals_arguments([tree])
    if arguments is None:
        raise UsageError("the cell defines no `def signals(data, ...)`; %%backtest backtests "
                         "that function")
    params = {}
    for name, default in arguments:
        if default is None:
            continue  # no default: signals must be called with it, which %%backtest cannot
        try:
            params[name] = ast.literal_eval(default)
        except ValueError:
            raise UsageError(f"signals parameter {name!r}: its default must be a literal "
                             "(a number, bool or string)") from None
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


@magics_class
class BacktestMagics(Magics):
    """The ``%%backtest`` cell magic."""

    @magic_arguments()
    @argument("--data", help="OHLCV file (CSV or Parquet); default: the bundled sample.")
    @argument("--capital", type=float, default=100_000.0, help="Initial capital.")
    @argument("--commission", type=float, default=0.0, help="Fraction of traded notional.")
    @argument("--slippage", type=float, default=0.0, help="Fraction of price, against you.")
    @argument("--name", default="cell", help="Name of the run in the registry.")
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
        args = parse_argstring(self.backtest, line)
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
        result = backtest_signals(signals, params, strategy_name=args.name,
                                  initial_capital=args.capital, data=args.data,
                                  commission=args.commission, slippage=args.slippage,
                                  kind="magic")
        if result.status != "success":
            if args.debug:
                print(result.traceback)
            raise UsageError(f"signals failed: {result.error}")
        result.name, result.tags = args.name, list(args.tag)
        result.code = {"cell_sha256": hashlib.sha256(cell.encode("utf-8")).hexdigest()}
        shell.user_ns["_backtest"] = result
        viz.report(result)
        saved = "" if args.no_save else self._save(result, cell)
        display(HTML(f"<p>run <code>{html.escape(result.run_id)}</code> · "
                     f"{html.escape(args.name)} · {html.escape(viz.format_params(params))}"
                     f"{saved}</p>"))

    @staticmethod
    def _save(result, cell: str) -> str:
        from meridian import storage
        from meridian.dashboard import refresh_dashboard

        try:
            storage.save_run({**result.to_dict(), "source": cell})
        except MeridianError as error:
            raise UsageError(f"the run was not saved: {error}") from None
        refresh_dashboard(run_ids=[result.run_id])
        return " · saved to the registry"


def load_ipython_extension(ipython) -> None:
    """``%load_ext meridian``."""
    ipython.register_magics(BacktestMagics)
