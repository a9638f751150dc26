"""The ``meridian`` command: a thin layer over the Python API.

Expected failures (:class:`~meridian.exceptions.MeridianError`) print one line on stderr and
exit with the error's code (2 for bad input); nothing prints a traceback unless it is a bug.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from pathlib import Path

import click

from meridian.exceptions import MeridianError, shown
from meridian.settings import NAMES as SETTING_NAMES


class _Group(click.Group):
    """Turns MeridianError into ``meridian: error: <one line>`` and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        from meridian._process import exit_code, sigterm_interrupts

        try:
            with sigterm_interrupts():
                return super().invoke(ctx)
        except MeridianError as error:
            click.echo(f"meridian: error: {error}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:  # a path the system refuses: permission, too long, read-only
            where = str(error.filename or "")
            where = where if len(where) <= 300 else shown(where)
            click.echo(f"meridian: error: {error.strerror or error}"
                       f"{': ' + where if where else ''}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as interrupt:
            click.echo("meridian: interrupted", err=True)
            sys.exit(exit_code(interrupt))


@click.group(cls=_Group)
@click.version_option(package_name="meridian")
def main() -> None:
    """Meridian: notebook-driven backtesting."""


def entry() -> None:
    """The ``meridian`` console script: :func:`main`, then an exit that does not tear the
    interpreter down object by object.

    Freeing what pandas, numba and plotly hold took 0.25 s of a 1.5 s sweep. By the time a
    command returns, everything it wrote is closed (files in ``with`` blocks, the registry
    committed); the atexit handlers still run (process pools, finalizers) and the streams are
    flushed. With another thread still running, the ordinary exit waits for it as usual."""
    try:
        main()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    if any(thread is not threading.main_thread() and not thread.daemon
           for thread in threading.enumerate()):
        sys.exit(code)
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: no reader is left
            stream.flush()
    os._exit(code)


OUTPUT_DIR = click.option(
    "--output-dir", type=click.Path(file_okay=False),
    help="Output directory [default: $MERIDIAN_HOME or the project's outputs/].",
)


@main.command("init")
@click.argument("directory", default=".", type=click.Path())
def init_command(directory) -> None:
    """Create a project in DIRECTORY (default: here): pyproject.toml with [tool.meridian],
    notebooks/ with the examples, strategies/, outputs/ (git-ignored) and a README."""
    from meridian.authoring.init import init_project

    root, done = init_project(directory)
    for what, path in done:
        click.echo(f"{what} {path.relative_to(root.parent).as_posix()}")
    click.echo(f"project ready in {root}: cd into it and try `meridian run fld`")


@main.command("params")
@click.argument("strategy")
def params_command(strategy) -> None:
    """Every parameter `meridian run STRATEGY` accepts: name, type, default, range and what it
    does (the comment on its line of the parameters cell), the rules across them, then the run
    settings it accepts without declaring them."""
    from meridian.pipeline.notebooks import describe_parameters, find_notebook
    from meridian.project import display_path

    rows, rules = describe_parameters(strategy)
    click.echo(f"{display_path(find_notebook(strategy))}: meridian run {strategy} NAME=VALUE …")
    head = ("name", "type", "default", "range", "")
    cells = [(row.name, row.type_name, repr(row.default), row.range or "—", row.help)
             for row in rows]
    widths = [min(max(len(line[i]) for line in [head, *cells]), 24) + 2 for i in range(4)]

    def show(line: tuple[str, ...]) -> None:
        text = ""
        for cell, width in zip(line[:4], widths, strict=True):  # a long range pushes, not cuts
            text += cell.ljust(width) if len(cell) < width else cell + "  "
        click.echo(text + line[4])

    show(head)
    for row, line in zip(rows, cells, strict=True):
        if row.kind != "also":
            show(line)
    for rule, why in rules.items():
        click.echo(f"rule: {rule}" + (f" ({why})" if why else ""))
    if any(row.kind == "also" for row in rows):
        click.echo("run settings the notebook accepts at their defaults:")
        for row, line in zip(rows, cells, strict=True):
            if row.kind == "also":
                show(line)


@main.command("strategies")
def strategies_command() -> None:
    """List the strategy modules `run_backtest` and sweeps can use, and where each comes from."""
    from meridian.strategies import get_strategy, strategy_sources

    for source in sorted(strategy_sources().values(), key=lambda s: s.name.lower()):
        where = source.origin + (" (shadows the built-in)" if source.shadows_builtin else "")
        click.echo(f"{source.name:<16} {where:<32} {get_strategy(source.name).PARAMS}")
    click.echo("every parameter a notebook run takes (settings too): meridian params NAME")


PARAMS_TEXT = click.option(
    "--params", "params_text", metavar="'NAME=VALUE ...'",
    help="Several NAME=VALUE in one shell-quoted string (what `make run PARAMS=...` passes).",
)


def _assignments(positional, pairs, params_text) -> dict:
    """Parameters from NAME=VALUE arguments, ``-p NAME VALUE`` pairs and ``--params``, through
    the one parser (:mod:`meridian.parameters`); a name given twice is an error."""
    from meridian.parameters import parse_assignments, split_words

    items = [*split_words(params_text or ""), *positional, *(f"{n}={v}" for n, v in pairs)]
    return parse_assignments(items)


SET_OPTION = click.option(
    "--set", "settings", multiple=True, metavar="NAME=VALUE",
    help=f"A run setting (repeatable): {', '.join(SETTING_NAMES)}.")


def _settings(items) -> dict:
    """``--set NAME=VALUE`` options, checked as run settings before any work (one line)."""
    from meridian.parameters import parse_assignments
    from meridian.settings import RunSettings

    values = parse_assignments(items, "--set", "multiplier=50")
    RunSettings.of(values)
    return values


UNIVERSE_OPTION = click.option(
    "--universe", metavar="NAME|PATH",
    help="Trade every market of universes/NAME.toml (or a .toml path) with one account.")


@main.command("backtest")
@click.argument("strategy")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Same as NAME=VALUE (repeatable); values parse as Python literals.")
@PARAMS_TEXT
@click.option("--data", "data_path", type=click.Path(), help="OHLCV file (CSV or Parquet).")
@SET_OPTION
@click.option("--capital", type=float, help="Same as --set initial_capital=N.")
@click.option("--commission", type=float, help="Same as --set commission=F.")
@click.option("--slippage", type=float, help="Same as --set slippage=F.")
@UNIVERSE_OPTION
def backtest_command(strategy, assignments, params, params_text, data_path, settings, capital,
                     commission, slippage, universe) -> None:
    """Backtest STRATEGY's module in-process (no notebook) and print its metrics, with the
    notebook's own run settings (as a sweep uses them) and --set on top; with --universe, on
    every market of the universe with one account (the file's settings over the notebook's)."""
    from meridian.api import run_backtest, run_portfolio
    from meridian.strategies import find_strategy, get_strategy, strategy_settings

    values = _assignments(assignments, params, params_text)
    module = get_strategy(find_strategy(strategy).name)
    given = {**_settings(settings), **{name: value for name, value in (
        ("initial_capital", capital), ("commission", commission), ("slippage", slippage))
        if value is not None}}
    if universe:
        if data_path:
            raise click.UsageError("--data and --universe exclude each other: a universe "
                                   "names each market's data file")
        result = run_portfolio(strategy, universe, values, settings=strategy_settings(module),
                               **given)
    else:
        result = run_backtest(strategy, values, data=data_path,
                              settings=strategy_settings(module, given))
    click.echo(result.summary())
    if result.status != "success":
        sys.exit(1)


@main.command("new")
@click.argument("name")
@click.argument("assignments", nargs=-1, metavar="[NAME=DEFAULT]...")
@click.option("--param", "params", multiple=True, metavar="NAME=DEFAULT",
              help="A strategy parameter and its default (repeatable), e.g. --param lookback=20.")
@PARAMS_TEXT
@click.option("--template", default="strategy", show_default=True,
              help="Template: the project's templates/ first, then the shipped ones.")
def new_command(name, assignments, params, params_text, template) -> None:
    """Create the project's notebooks/NAME.py from a template, ready for `meridian run NAME`."""
    from meridian.authoring.new import new_notebook, parse_param_options
    from meridian.parameters import split_words

    options = [*split_words(params_text or ""), *assignments, *params]
    path = new_notebook(name, parse_param_options(options) or None, template)
    click.echo(f"created {path}: edit its export cell, then `meridian run {name}` and "
               f"`meridian extract {path}`")


@main.command("extract")
@click.argument("notebooks", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--output", type=click.Path(dir_okay=False),
              help="Module to write, in the project's strategies folder [default: "
                   "strategies/NAME.py]; one notebook only.")
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
        _note_shadowing(extraction.output.stem, extraction.notebook)
    if stale:
        sys.exit(1)


def _note_shadowing(name: str, notebook: Path) -> None:
    """Say so when the module replaces a built-in strategy in this project, unless it is the
    shipped example's own notebook (``meridian init`` copies them: that is expected)."""
    from meridian.project import EXAMPLES_DIR
    from meridian.strategies import find_strategy

    example = EXAMPLES_DIR / notebook.name
    if example.is_file() and example.read_bytes() == notebook.read_bytes():
        return
    source = find_strategy(name)
    if source.shadows_builtin:
        click.echo(f"note: {source.path} has the name of a built-in strategy; in this project "
                   f"'{name}' means this module (the project's wins)", err=True)


@main.command("sweep")
@click.argument("strategy", required=False)
@click.option("--grid", "grid", multiple=True, metavar="NAME=SPEC",
              help="Parameter values: start:stop:step (stop included) or a,b,c (repeatable).")
@click.option("--resume", metavar="ID",
              help="Finish an interrupted sweep: only its missing combinations are computed.")
@click.option("--metric", default="sharpe_ratio", show_default=True, help="Metric to rank by.")
@click.option("--workers", type=click.IntRange(min=1), help="Processes [default: cores].")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="Your OHLCV file [default: the project's data, else the bundled sample].")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the best combinations to show (and report).")
@click.option("--reports", is_flag=True, help="Re-run the top combinations as notebooks.")
@click.option("--split", metavar="DATE", help="Rank on bars before DATE; show the top after it.")
@click.option("--walk-forward", metavar="TRAIN:TEST[:STEP]",
              help="Choose on each training window, trade the next test window, stitch: "
                   "durations in bars (500:125) or spans (3y:1y, 18m:6m, 2y:6m:1y).")
@click.option("--anchored", is_flag=True,
              help="With --walk-forward: every training window starts at the first bar.")
@SET_OPTION
@click.option("--capital", type=float, help="Same as --set initial_capital=N.")
@click.option("--commission", type=float, help="Same as --set commission=F.")
@click.option("--slippage", type=float, help="Same as --set slippage=F.")
@click.option("--max-combinations", type=click.IntRange(min=1), default=10_000_000,
              show_default=True, help="Refuse larger grids before any work.")
@UNIVERSE_OPTION
@OUTPUT_DIR
def sweep_command(strategy, grid, resume, metric, workers, executor, scheduler, data_path, top,
                  reports, split, walk_forward, anchored, settings, capital, commission,
                  slippage, max_combinations, universe, output_dir) -> None:
    """Evaluate a parameter grid of STRATEGY's module in parallel; rank, record, report.

    Run settings are the notebook's own (its parameters cell, kept in the module by `meridian
    extract`); --set changes any of them, e.g. --set multiplier=50 --set tick_size=0.25 --set
    sizing=volatility_target --set target_volatility=0.15. --grid may vary a setting too.
    With --universe each combination trades every market of the universe with one account and
    is ranked on the portfolio's metric.

    Exit codes: 0 all combinations succeeded (or some failed: status partial, counted), 1 all
    failed, 130/143 interrupted by Ctrl-C/SIGTERM (finished work kept: --resume ID)."""
    from meridian.exceptions import ParameterError
    from meridian.sweep.run import run_sweep

    if anchored and not walk_forward:
        raise ParameterError("--anchored goes with --walk-forward TRAIN:TEST")
    if resume and (strategy or grid):
        raise ParameterError("--resume ID takes the strategy and grid from the sweep; give "
                             "neither STRATEGY nor --grid")
    if not resume and (not strategy or not grid):
        raise ParameterError("give STRATEGY and at least one --grid NAME=SPEC (or --resume ID)")
    if resume and (settings or capital is not None or commission is not None
                   or slippage is not None):
        raise ParameterError("--resume ID takes the run settings from the sweep; give no --set")
    if universe and (data_path or resume):
        raise ParameterError("--universe names each market's data: give no --data (a resumed "
                             "sweep keeps its own universe)")
    chosen = _settings(settings)
    result = run_sweep(
        strategy, grid, metric=metric, workers=workers, executor=executor, scheduler=scheduler,
        data_path=data_path, top=top, reports=reports, split=split, walk_forward=walk_forward,
        anchored=anchored, settings=chosen, initial_capital=capital, commission=commission,
        slippage=slippage, output_dir=output_dir, max_combinations=max_combinations, resume=resume,
        universe=universe,
    )
    from meridian.sweep.summary import summary_lines  # plotly: imported while workers run

    for line in summary_lines(result):
        click.echo(line)
    if result.status == "interrupted":
        click.echo(f"meridian: sweep interrupted; `meridian sweep --resume "
                   f"{result.sweep_id[:8]}` finishes it", err=True)
        sys.exit(result.exit_code or 130)
    if result.status == "failed" and result.skipped and result.skipped >= result.completed:
        click.echo(f"meridian: error: every combination breaks a rule of {result.strategy}, "
                   f"e.g. {str(result.first_error).removeprefix('skipped: ')}; choose a grid "
                   "that satisfies it", err=True)
        sys.exit(2)
    if result.status == "failed":
        click.echo(f"meridian: error: every combination failed, e.g. {result.first_error}",
                   err=True)
        sys.exit(1)


@main.command("run")
@click.argument("strategy")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Same as NAME=VALUE (papermill's spelling; repeatable).")
@PARAMS_TEXT
@click.option("-f", "--params-file", type=click.Path(dir_okay=False),
              help="YAML file of parameter values (command-line values win).")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Where runs, registry and dashboard go [default: $MERIDIAN_HOME or the "
                   "project's outputs/].")
@click.option("--no-input", is_flag=True, help="Hide code cells in the HTML report.")
@click.option("--benchmark", type=click.Path(dir_okay=False), metavar="FILE",
              help="Measure against FILE (OHLCV, or dates and one column of prices or "
                   "returns) beside buy & hold; same as benchmark=FILE.")
@UNIVERSE_OPTION
def run_command(strategy, assignments, params, params_text, params_file, output_dir,
                no_input, benchmark, universe) -> None:
    """Execute notebook STRATEGY with parameters: notebook, HTML report, registry row.

    STRATEGY is a notebook of the project (notebooks/STRATEGY.py), a shipped example, or a
    path to a notebook; values are NAME=VALUE (Python literals; text needs no quotes).
    `meridian params STRATEGY` lists every name it takes, with its default and range. With
    --universe the notebook's backtest trades every market of the universe with one account.
    """
    from meridian.pipeline.run import run_notebook

    # pandas and the engine load after the kernel has started (see pipeline.run)
    values = _assignments(assignments, params, params_text)
    if benchmark:
        values["benchmark"] = str(benchmark)
    record = run_notebook(strategy, values,
                          params_file=params_file, output_dir=output_dir, no_input=no_input,
                          universe=universe, progress=sys.stderr.isatty())
    from meridian.engine.metrics import format_metrics

    if record["status"] != "success":
        click.echo(f"meridian: error: run {record['run_id']} of {record['strategy_name']} failed: "
                   f"{record['error']} (report: {record['report_path']})", err=True)
        sys.exit(1)
    click.echo(f"{record['strategy_name']} run {record['run_id']}  {record['params']}")
    click.echo(format_metrics(record["metrics"]))
    click.echo(f"report: {record['report_path']}")


@main.command("rerun")
@click.argument("run_id")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Same as NAME=VALUE (repeatable).")
@click.option("--params-file", type=click.Path(dir_okay=False, exists=True),
              help="YAML or JSON file of parameter overrides.")
@click.option("--run-id", "new_run_id", hidden=True,
              help="The new run's id (meridian ui's queued re-run).")
@OUTPUT_DIR
def rerun_command(run_id, assignments, params, params_file, new_run_id, output_dir) -> None:
    """Run RUN_ID again with its recorded notebook (or module), parameters and data.

    The new run links to the original (parent_id); the command warns first when the data file
    or the notebook changed since, and says whether the metrics are identical."""
    from meridian.pipeline.parameterize import load_params_file
    from meridian.pipeline.rerun import rerun

    overrides = {**load_params_file(params_file), **_assignments(assignments, params, None)}
    done = rerun(run_id, overrides, output_dir,
                 on_warning=lambda line: click.echo(f"warning: {line}", err=True),
                 new_run_id=new_run_id)
    record = done.record
    if record["status"] != "success":
        click.echo(f"meridian: error: rerun {record['run_id']} failed: {record['error']}",
                   err=True)
        sys.exit(1)
    click.echo(f"rerun of {done.original['run_id'][:8]}: {record['strategy_name']} run "
               f"{record['run_id']}")
    if done.identical:
        click.echo("metrics identical to the original run")
    else:
        click.echo(f"metrics differ from the original run in {len(done.differences)}:")
        for line in done.differences:
            click.echo(f"  {line}")
    if record.get("report_path"):
        click.echo(f"report: {record['report_path']}")


@main.command("report")
@click.argument("target")
@click.option("--standalone", is_flag=True,
              help="One self-contained file (plotly.js inlined) to share or archive.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="File to write [default: for a run, its report; for a notebook, "
                   "NOTEBOOK.html beside it].")
@OUTPUT_DIR
def report_command(target, standalone, output, output_dir) -> None:
    """The HTML report of a run (RUN_ID) or of any executed notebook (NOTEBOOK.ipynb).

    A notebook's export keeps its charts working offline (Plotly outputs become live charts,
    %%backtest results included) and is always standalone."""
    from pathlib import Path

    from meridian.exceptions import RegistryError

    if target.endswith(".ipynb"):
        import nbformat

        from meridian.pipeline.export import export_html

        source = Path(target)
        if not source.is_file():
            raise RegistryError(f"no notebook {target!r}")
        try:
            notebook = nbformat.read(source, as_version=4)
        except Exception as error:  # noqa: BLE001 - any unreadable file: one line
            raise RegistryError(f"{target}: not a readable notebook ({error})") from None
        page = export_html(notebook, Path(output or source.with_suffix(".html")))
        click.echo(str(page))
        return
    from meridian import project
    from meridian._files import write_atomic
    from meridian.pages import inline_plotly
    from meridian.storage import load_run_by_id

    run = load_run_by_id(target, output_dir)
    out = project.output_dir(output_dir)
    report = Path(run.get("report_path") or "")
    if run.get("report_path"):
        report = project.record_path(report, [out], f"run {run['run_id'][:8]}'s report")
    if not report.is_file():
        raise RegistryError(f"run {run['run_id'][:8]} has no report file ({run['kind']} run); "
                            "reports come from `meridian run`")
    if not standalone and not output:
        click.echo(str(report))
        return
    text = report.read_text(encoding="utf-8")
    page = write_atomic(Path(output or report.with_name("report-standalone.html")),
                        inline_plotly(text) if standalone else text)
    click.echo(str(page))


@main.group("data")
def data_group() -> None:
    """Market data Meridian can fetch for you (never during a backtest)."""


@data_group.command("cot")
@click.option("--report", type=click.Choice(["legacy", "disaggregated", "tff"]),
              default="legacy", show_default=True, help="CFTC report family.")
@click.option("--combined", is_flag=True, help="Futures and options combined (else futures).")
@click.option("--years", default=None, metavar="FIRST:LAST",
              help="Years to fetch, e.g. 2010:2024 [default: this year and last].")
@click.option("--base-url", default=None, metavar="URL",
              help="Where the yearly zips are [default: CFTC's history folder].")
@click.option("--folder", type=click.Path(file_okay=False),
              help="Where they go [default: the project's data/cot/REPORT/].")
def data_cot(report, combined, years, base_url, folder) -> None:
    """Download CFTC's yearly COT history zips into a cache: unchanged files are not fetched
    again, broken answers are refused (the cached copy kept), a year not published yet is a
    note. Then attach them: attach_cot(prices, [files], market="GOLD")."""
    from datetime import date

    from meridian.data.download import BASE_URL, download_cot

    this_year = date.today().year
    results = download_cot(report, years or f"{this_year - 1}:{this_year}", combined=combined,
                           base_url=base_url or BASE_URL, folder=folder, say=click.echo)
    where = {str(r.path.parent) for r in results}
    if where:
        click.echo(f"files in {', '.join(sorted(where))}")


@data_group.command("roll")
@click.argument("folder", type=click.Path())
@click.option("--roll", "rule", default="volume", show_default=True, metavar="RULE",
              help="volume, open_interest or calendar:N (N bars before a contract's last bar).")
@click.option("--adjust", type=click.Choice(["ratio", "difference", "none"]), default="ratio",
              show_default=True, help="Back-adjust earlier contracts at each roll.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The continuous series to write (.csv or .parquet), e.g. data/CL.csv.")
def data_roll(folder, rule, adjust, output) -> None:
    """One continuous futures series from FOLDER's contract files (one CSV or Parquet per
    contract, the file name is the contract): the roll decided at bar t's close takes effect
    at t+1; a roll log (NAME.rolls.csv) is written beside the output, and the held contract's
    own close is kept as UnadjustedClose. Example: meridian data roll data/CL --roll volume
    --adjust ratio -o data/CL.csv"""
    from pathlib import Path

    from meridian.data.roll import contract_files, roll_contracts, write_continuous
    from meridian.exceptions import DataError

    if Path(output).absolute().parent == Path(folder).absolute():
        raise DataError(f"--output {output} is inside the contracts folder; write the series "
                        "elsewhere (it would be read as a contract next time)")
    contract_files(folder)  # a wrong folder is one line before anything is read
    series, log = roll_contracts(folder, rule, adjust)
    log_path = write_continuous(series, log, output)
    for row in log.head(12).itertuples(index=False):
        click.echo(f"{row.decided:%Y-%m-%d} → {row.effective:%Y-%m-%d}  {row[2]} → {row.to}  "
                   f"{row.from_close:g} / {row.to_close:g} (gap {row.gap:+g}, {row.reason})")
    if len(log) > 12:
        click.echo(f"… {len(log) - 12} more in the roll log")
    rolls = f"{len(log)} roll{'s' * (len(log) != 1)}"
    click.echo(f"{output}: {series['Contract'].nunique()} contracts, {rolls}, "
               f"{len(series):,} bars {series.index[0]:%Y-%m-%d} → {series.index[-1]:%Y-%m-%d}"
               f" ({adjust}{'-adjusted' if adjust != 'none' else ' adjustment'}); "
               f"roll log {log_path}")


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


@runs_group.command("import")
@click.argument("source", type=click.Path(dir_okay=False))
@OUTPUT_DIR
def runs_import(source, output_dir) -> None:
    """Add the runs of SOURCE (a JSON list of runs, as `runs export` writes) to the registry.

    Ids already present are skipped, so importing twice changes nothing. A bad record is one
    line naming it and the field; the others still import (exit code 1 when any was bad)."""
    from meridian.dashboard import refresh_dashboard
    from meridian.storage import import_runs

    done = import_runs(source, output_dir)
    for line in done.bad:
        click.echo(f"meridian: skipped {line}", err=True)
    click.echo(f"imported {len(done.added):,} runs; {done.present:,} already present, "
               f"{len(done.bad):,} bad")
    if done.added:
        refresh_dashboard(output_dir)
    if done.bad:
        sys.exit(1)


@runs_group.command("rebuild")
@OUTPUT_DIR
def runs_rebuild(output_dir) -> None:
    """Recreate the registry from the run and sweep folders (a damaged file is moved aside)."""
    from meridian.storage import rebuild_registry

    skipped: list[str] = []
    runs, sweeps = rebuild_registry(
        output_dir, on_skip=lambda path, why: skipped.append(f"{path}: {why}"))
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"restored {runs} runs and {sweeps} sweeps")
    from meridian.dashboard import refresh_dashboard

    refresh_dashboard(output_dir)


# ------------------------------------------------------------------ runs: browse and compare

STATUS = click.option("--status", type=click.Choice(["success", "failed", "running",
                                                    "interrupted"]),
                      help="Only runs with this status.")
SORT = click.option("--sort", metavar="METRIC",
                    help="Best first by this metric (e.g. sharpe_ratio), or a column: "
                         "timestamp, strategy_name, status, duration, trades_count.")
LIMIT = click.option("--limit", type=click.IntRange(min=1), metavar="N",
                     help="At most N runs.")
LIST_LIMIT = 50
TAG = click.option("--tag", metavar="TAG", help="Only runs with this tag.")


def _print_runs(runs: list[dict], sort: str | None, output_dir) -> None:
    from meridian.dashboard.terminal import run_lines
    from meridian.storage import Registry

    if not runs:
        click.echo(f"no runs match in {Registry(output_dir).path}", err=True)
        return
    for line in run_lines(runs, sort):
        click.echo(line)


@runs_group.command("list")
@click.option("--strategy", help="Only runs of this strategy.")
@STATUS
@SORT
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help=f"At most N runs [default: {LIST_LIMIT}].")
@click.option("--all", "every", is_flag=True, help="Every matching run.")
@TAG
@click.option("--sweep", "sweep_id", metavar="ID",
              help="The combinations of sweep ID (a prefix works), best first.")
@OUTPUT_DIR
def runs_list(strategy, status, sort, limit, every, tag, sweep_id, output_dir) -> None:
    """One line per run, newest first (the newest 50 unless --limit N or --all): id prefix,
    time, strategy, status, key metrics."""
    if every and limit:
        raise click.UsageError("--all and --limit contradict each other; give one")
    if sweep_id:
        from meridian.sweep.summary import sweep_row_lines

        for line in sweep_row_lines(sweep_id, sort, limit, output_dir):
            click.echo(line)
        return
    from meridian.storage import count_runs, search_runs

    shown = None if every else (limit or LIST_LIMIT)
    runs = search_runs(strategy=strategy, status=status, sort=sort, limit=shown, tag=tag,
                       output_dir=output_dir)
    _print_runs(runs, sort, output_dir)
    if shown is not None and len(runs) == shown:
        total = count_runs(strategy=strategy, status=status, tag=tag, output_dir=output_dir)
        if total > shown:
            click.echo(f"… {shown:,} of {total:,} runs shown (--limit N for more, --all for "
                       "every run)", err=True)


@runs_group.command("search")
@click.argument("words", nargs=-1)
@click.option("--strategy", help="Only runs of this strategy.")
@STATUS
@click.option("--since", metavar="TIME", help="Runs at or after TIME (ISO 8601, UTC if naive).")
@click.option("--until", metavar="TIME", help="Runs at or before TIME.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Parameter equal to VALUE (a Python literal), e.g. fld_offset=15. Repeatable.")
@click.option("--min", "minimum", multiple=True, metavar="METRIC=NUMBER",
              help="Metric at least NUMBER (fractions for percentages), e.g. sharpe_ratio=1, "
                   "or max_drawdown=-0.15: drawdowns no deeper than 15%. Repeatable.")
@click.option("--max", "maximum", multiple=True, metavar="METRIC=NUMBER",
              help="Metric at most NUMBER, e.g. volatility=0.2, or max_drawdown=-0.1: "
                   "drawdowns of 10% or deeper. Repeatable.")
@SORT
@LIMIT
@TAG
@OUTPUT_DIR
def runs_search(words, strategy, status, since, until, params, minimum, maximum, sort, limit,
                tag, output_dir) -> None:
    """Runs matching every filter given (metrics with no value never match a bound).

    WORDS are the runs page's filter: fld_offset=15 (that parameter, exactly),
    'sharpe_ratio>1' (quote > and < for the shell), tag:keeper, or any text."""
    from meridian.dashboard.terminal import parse_assignments
    from meridian.storage import search_runs

    runs = search_runs(
        strategy=strategy, status=status, since=since, until=until,
        params=parse_assignments(params, "--param", number=False),
        metric_min=parse_assignments(minimum, "--min", number=True),
        metric_max=parse_assignments(maximum, "--max", number=True),
        sort=sort, limit=limit, output_dir=output_dir, tag=tag, query=" ".join(words),
    )
    _print_runs(runs, sort, output_dir)


@runs_group.command("show")
@click.argument("run_id")
@click.option("--traceback", "with_traceback", is_flag=True,
              help="Print a failed run's full traceback.")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@OUTPUT_DIR
def runs_show(run_id, with_traceback, as_json, output_dir) -> None:
    """Parameters, metrics, status and paths of one run (an id prefix of 4+ characters works)."""
    import json

    from meridian import project
    from meridian.dashboard.terminal import run_details
    from meridian.storage import load_run_by_id

    run = load_run_by_id(run_id, output_dir)
    click.echo(json.dumps(run, indent=2) if as_json
               else run_details(run, with_traceback, project.output_dir(output_dir)))


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--path", "target", type=click.Path(dir_okay=False),
              help="Page to write [default: OUTPUT_DIR/comparisons/<id prefixes>.html].")
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
@OUTPUT_DIR
def runs_compare(run_ids, target, open_page, output_dir) -> None:
    """Metrics of two or more runs side by side, and an HTML page with their equity curves."""
    from meridian.dashboard import comparison_text, write_comparison
    from meridian.dashboard.comparison import load_runs
    from meridian.exceptions import RegistryError

    if len(run_ids) < 2:
        raise RegistryError(f"compare needs at least 2 run ids, got {len(run_ids)}")
    runs = load_runs(run_ids, output_dir)
    click.echo(comparison_text(runs))
    page = write_comparison(runs, output_dir, target)
    click.echo(f"comparison: {page}")
    if open_page:
        _open_in_browser(page)


@runs_group.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@OUTPUT_DIR
def runs_delete(run_ids, yes, output_dir) -> None:
    """Delete runs (rows and run folders), after backing up the registry once."""
    from meridian import project
    from meridian.dashboard import refresh_dashboard
    from meridian.dashboard.page import chunks_of
    from meridian.dashboard.terminal import run_lines
    from meridian.storage import delete_runs, load_run_by_id

    runs = {r["run_id"]: r for r in (load_run_by_id(i, output_dir) for i in run_ids)}
    for line in run_lines(runs.values()):
        click.echo(line)
    noun = "run" if len(runs) == 1 else "runs"
    question = ("Delete this run and its folder?" if len(runs) == 1
                else f"Delete these {len(runs)} runs and their folders?")
    if not yes and not click.confirm(question):
        click.echo("nothing deleted", err=True)
        sys.exit(1)
    chunks = chunks_of(runs, output_dir)
    deleted = delete_runs(list(runs), output_dir)
    backups = project.backups_dir(project.output_dir(output_dir))
    click.echo(f"deleted {len(deleted)} {noun}; registry backed up first in {backups}")
    refresh_dashboard(output_dir, chunks=chunks)


def _refresh_runs(run_ids: list[str], output_dir) -> None:
    """Update the static page's chunks of ``run_ids`` (never the whole page)."""
    from meridian.dashboard import refresh_dashboard

    refresh_dashboard(output_dir, run_ids=run_ids)


@runs_group.command("tag")
@click.argument("run_id")
@click.argument("tags", nargs=-1)
@click.option("--note", help="A note kept with the run (replaces the previous one).")
@OUTPUT_DIR
def runs_tag(run_id, tags, note, output_dir) -> None:
    """Add TAGS (words) to a run, and optionally a note."""
    from meridian.exceptions import RegistryError
    from meridian.storage import tag_run

    if not tags and note is None:
        raise RegistryError("give one or more tags, or --note TEXT")
    run = tag_run(run_id, tags, note, output_dir)
    _refresh_runs([run["run_id"]], output_dir)
    click.echo(f"{run['run_id'][:8]}  tags: {', '.join(run['tags']) or '(none)'}"
               + (f"  note: {run['note']}" if run.get("note") else ""))


@runs_group.command("untag")
@click.argument("run_id")
@click.argument("tags", nargs=-1, required=True)
@OUTPUT_DIR
def runs_untag(run_id, tags, output_dir) -> None:
    """Remove TAGS from a run."""
    from meridian.storage import tag_run

    run = tag_run(run_id, tags, None, output_dir, remove=True)
    _refresh_runs([run["run_id"]], output_dir)
    click.echo(f"{run['run_id'][:8]}  tags: {', '.join(run['tags']) or '(none)'}")


@runs_group.command("stats")
@OUTPUT_DIR
def runs_stats(output_dir) -> None:
    """How many runs, by status and strategy, and the best run for each metric."""
    from meridian.dashboard.terminal import stats_text
    from meridian.storage import Registry, get_registry_stats

    click.echo(stats_text(get_registry_stats(output_dir), str(Registry(output_dir).path)))


def _open_in_browser(page) -> None:
    import webbrowser

    if not webbrowser.open(page.as_uri()):
        click.echo(f"meridian: could not start a web browser; open {page}", err=True)


@main.command("ui")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@OUTPUT_DIR
def ui_command(port, no_browser, output_dir) -> None:
    """Serve the runs page live on 127.0.0.1 behind a token: delete, tag, re-run with edited
    parameters and watch runs finish; and the Notebooks pages (/notebooks): run a cell as a
    backtest, edit and save notebooks. Ctrl-C stops it (queued re-runs are marked
    interrupted)."""
    from meridian.dashboard.app import serve

    marked = serve(output_dir, port=port, open_browser=not no_browser,
                   echo=lambda line: click.echo(line, err=False))
    if marked:
        click.echo(f"marked {len(marked)} queued re-run(s) interrupted", err=True)


@main.command("dashboard")
@click.option("--open", "open_page", is_flag=True, help="Open it in a web browser.")
@OUTPUT_DIR
def dashboard_command(open_page, output_dir) -> None:
    """Write OUTPUT_DIR/index.html: every run in one offline page (sort, filter, compare)."""
    from meridian.dashboard import build_dashboard

    page = build_dashboard(output_dir)
    click.echo(str(page))
    if open_page:
        _open_in_browser(page)


if __name__ == "__main__":
    main()
