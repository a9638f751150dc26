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


@main.command("new")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="NAME=DEFAULT",
              help="A strategy parameter and its default (repeatable), e.g. --param lookback=20.")
@click.option("--template", default="strategy", show_default=True,
              help="Template in templates/ to start from.")
def new_command(name, params, template) -> None:
    """Create notebooks/NAME.py from a template, ready for `meridian run NAME`."""
    from meridian.authoring.new import new_notebook, parse_param_options

    path = new_notebook(name, parse_param_options(params) or None, template)
    click.echo(f"created {path}: edit its export cell, then `meridian run {name}` and "
               f"`meridian extract {path}`")


@main.command("extract")
@click.argument("notebooks", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--output", type=click.Path(dir_okay=False),
              help="Module to write [default: meridian/strategies/NAME.py]; one notebook only.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 with a diff when a module is missing or out of date.")
@click.option("--force", is_flag=True, help="Replace a module that was not generated.")
def extract_command(notebooks, output, check, force) -> None:
    """Turn the export cells of NOTEBOOKS into strategy modules (no notebook code runs)."""
    from meridian.authoring.extract import build, diff, write
    from meridian.exceptions import ExtractError

    if output and len(notebooks) > 1:
        raise ExtractError("--output works with one notebook; extract the others separately")
    stale = 0
    for notebook in notebooks:
        extraction = build(notebook, output)
        if check:
            changes = diff(extraction)
            if changes:
                stale += 1
                click.echo(changes, nl=False)
                click.echo(f"{extraction.output} is out of date with {notebook}: run "
                           f"`meridian extract {notebook}`", err=True)
            continue
        written = write(extraction, force=force)
        click.echo(f"{'wrote' if written else 'up to date:'} {extraction.output}")
    if stale:
        sys.exit(1)


@main.command("run")
@click.argument("strategy")
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Set a notebook parameter (repeatable); values parse as Python literals.")
@click.option("-f", "--params-file", type=click.Path(dir_okay=False),
              help="YAML file of parameter values (command-line -p wins).")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Where runs, registry and dashboard go [default: $MERIDIAN_HOME or ./outputs].")
@click.option("--no-input", is_flag=True, help="Hide code cells in the HTML report.")
def run_command(strategy, params, params_file, output_dir, no_input) -> None:
    """Execute notebooks/STRATEGY.py with parameters: notebook, HTML report, registry row."""
    from meridian.engine.metrics import format_metrics
    from meridian.pipeline.parameterize import parse_pairs
    from meridian.pipeline.run import run_notebook

    record = run_notebook(strategy, parse_pairs(params), params_file=params_file,
                          output_dir=output_dir, no_input=no_input)
    if record["status"] != "success":
        click.echo(f"meridian: error: run {record['run_id']} of {record['strategy_name']} failed: "
                   f"{record['error']} (report: {record['report_path']})", err=True)
        sys.exit(1)
    click.echo(f"{record['strategy_name']} run {record['run_id']}  {record['params']}")
    click.echo(format_metrics(record["metrics"]))
    click.echo(f"report: {record['report_path']}")


OUTPUT_DIR = click.option(
    "--output-dir", type=click.Path(file_okay=False),
    help="Output directory [default: $MERIDIAN_HOME or ./outputs].",
)


@main.group("runs")
def runs_group() -> None:
    """Inspect and maintain the run registry (outputs/registry.sqlite)."""


@runs_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True)
@click.option("--path", "target", type=click.Path(dir_okay=False),
              help="File to write [default: OUTPUT_DIR/backtest_runs.json].")
@OUTPUT_DIR
def runs_export(fmt, target, output_dir) -> None:
    """Write every run as JSON (backtest_runs.json)."""
    from meridian.storage import export_runs

    click.echo(str(export_runs(target, output_dir)))


@runs_group.command("rebuild")
@OUTPUT_DIR
def runs_rebuild(output_dir) -> None:
    """Recreate the registry from the executed notebooks in outputs/runs/."""
    from meridian.storage import rebuild_registry

    skipped: list[str] = []
    count = rebuild_registry(output_dir, on_skip=lambda path, why: skipped.append(f"{path}: {why}"))
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"restored {count} runs")


if __name__ == "__main__":
    main()
