"""The ``meridian`` command: a thin layer over the Python API.

Expected failures (:class:`~meridian.exceptions.MeridianError`) print one line on stderr and
exit with the error's code (2 for bad input); nothing prints a traceback unless it is a bug.
"""

from __future__ import annotations

import sys

import click

from meridian.exceptions import MeridianError


class _Group(click.Group):
    """Turns MeridianError into ``meridian: error: <one line>`` and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MeridianError as error:
            click.echo(f"meridian: error: {error}", err=True)
            sys.exit(error.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="meridian")
def main() -> None:
    """Meridian: notebook-driven backtesting."""


@main.command("strategies")
def strategies_command() -> None:
    """List the strategy modules `run_backtest` and sweeps can use."""
    from meridian.strategies import get_strategy, list_strategies

    for name in list_strategies():
        click.echo(f"{name:<16} {get_strategy(name).PARAMS}")


@main.command("backtest")
@click.argument("strategy")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Override a strategy parameter (repeatable); values parse as Python literals.")
@click.option("--data", "data_path", type=click.Path(), help="OHLCV file (CSV or Parquet).")
@click.option("--capital", type=float, default=100_000, show_default=True)
@click.option("--commission", type=float, default=0.0, show_default=True)
@click.option("--slippage", type=float, default=0.0, show_default=True)
def backtest_command(strategy, params, data_path, capital, commission, slippage) -> None:
    """Backtest STRATEGY in-process (no notebook) and print its metrics."""
    from meridian.api import run_backtest

    result = run_backtest(strategy, dict(params), initial_capital=capital, data=data_path,
                          commission=commission, slippage=slippage)
    click.echo(result.summary())
    if result.status != "success":
        sys.exit(1)
