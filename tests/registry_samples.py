"""A registry like a user's after an afternoon of work, for the dashboard and `runs` tests.

- 3 real ``meridian run`` runs started at once (fld default, fld fld_offset=15, and a sma_cross
  run that fails in the notebook: :func:`unruled_notebook`): real reports, and three dashboard
  rebuilds racing;
- 10 fld and 8 sma_cross results of ``meridian.api.run_backtest`` saved as ``kind="api"``,
  plus one that failed inside the strategy;
- two hostile records: a parameter value ``<script>…</script>`` and a failed run whose name
  and error message are HTML;
- two runs whose ids share the prefix ``abcd`` (for ambiguity errors).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from meridian import storage
from meridian.api import run_backtest
from meridian.data import load_sample

XSS_PARAM = "<script>window.__xss = 1; alert(1)</script>"
XSS_NAME = "<b>bold</b>"
XSS_LINK = '<a href="https://example.com/x">click</a>'
"""The name of the run with XSS_PARAM: Plotly would render it as a link if not escaped."""
XSS_ERROR = "ValueError: <img src=x onerror=\"window.__xss = 2; alert(2)\">"
FLD_OFFSETS = list(range(5, 15))
SMA_PAIRS = [(3, 20), (5, 20), (5, 30), (8, 25), (10, 40), (12, 50), (15, 60), (20, 80)]
AMBIGUOUS = ("abcd0001-0000-4000-8000-000000000001", "abcd0002-0000-4000-8000-000000000002")


def failing_run(**options):
    """A real run that fails inside the strategy: sma_cross's own ``signals`` with fast > slow
    (its ValueError), called directly as code that bypasses the module's ``PARAM_RULES``."""
    from meridian.api import backtest_signals
    from meridian.strategies import get_strategy

    return backtest_signals(get_strategy("sma_cross").signals, {"fast": 30, "slow": 20},
                            strategy_name="sma_cross", **options)


def unruled_notebook(folder: Path) -> Path:
    """``folder/sma_cross.py``: the example notebook without its ``PARAM_RULES`` (as a user's
    notebook that declares none), so fast > slow reaches the kernel and fails there."""
    from meridian.project import EXAMPLES_DIR

    text = (EXAMPLES_DIR / "sma_cross.py").read_text()
    kept = [line for line in text.splitlines(keepends=True)
            if not line.startswith("PARAM_RULES")]
    assert len(kept) == len(text.splitlines()) - 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sma_cross.py").write_text("".join(kept))
    return folder / "sma_cross.py"


@dataclass
class Samples:
    out: Path
    real: dict[str, str] = field(default_factory=dict)
    """label ("fld", "fld15", "failed") → run id of the real notebook runs"""
    api: dict[str, str] = field(default_factory=dict)
    """label ("fld5".."fld14", "sma3_20"…, "api_failed") → run id"""
    xss_param: str = ""
    xss_error: str = ""
    run_outputs: list[subprocess.CompletedProcess] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [*self.real.values(), *self.api.values(), self.xss_param, self.xss_error,
                *AMBIGUOUS]


def _save(out: Path, result, **extra) -> str:
    return storage.save_run({**result.to_dict(), "kind": "api", **extra}, out)


def populate(out: Path, root: Path) -> Samples:
    samples = Samples(out=out)
    for offset in FLD_OFFSETS:
        samples.api[f"fld{offset}"] = _save(out, run_backtest("fld", {"fld_offset": offset}))
    for fast, slow in SMA_PAIRS:
        samples.api[f"sma{fast}_{slow}"] = _save(
            out, run_backtest("sma_cross", {"fast": fast, "slow": slow}))
    samples.api["fld_recent"] = _save(  # the sample's last 7 years: a different span
        out, run_backtest("fld", {"fld_offset": 9}, data=load_sample().loc["2018":]))
    failed = failing_run()
    assert failed.status == "failed"
    samples.api["api_failed"] = _save(out, failed)
    samples.xss_param = _save(out, run_backtest("fld", {"fld_offset": 7}),
                              params={"fld_offset": 7, "note": XSS_PARAM}, name=XSS_LINK,
                              changed=["fld_offset", "note"])
    samples.xss_error = storage.save_run({
        "run_id": "feed0000-0000-4000-8000-00000000beef", "strategy_name": "sma_cross",
        "status": "failed", "kind": "api", "name": XSS_NAME, "error": XSS_ERROR,
        "params": {"fast": 1, "slow": 2},
    }, out)
    for run_id in AMBIGUOUS:
        storage.save_run({"run_id": run_id, "strategy_name": "sma_cross", "status": "failed",
                          "kind": "api", "error": "RuntimeError: placeholder",
                          "params": {"fast": 2, "slow": 3}}, out)

    command = [sys.executable, "-m", "meridian.cli", "run"]
    jobs = {
        "fld": [*command, "fld"],
        "fld15": [*command, "fld", "-p", "fld_offset", "15"],
        "failed": [*command, str(unruled_notebook(out.parent / "unruled")), "-p", "fast", "30",
                   "-p", "slow", "20"],
    }
    processes = {label: subprocess.Popen([*argv, "--output-dir", str(out)], cwd=root,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
                 for label, argv in jobs.items()}
    for label, process in processes.items():
        stdout, stderr = process.communicate(timeout=600)
        samples.run_outputs.append(subprocess.CompletedProcess(process.args, process.returncode,
                                                               stdout, stderr))
        assert process.returncode == (1 if label == "failed" else 0), stderr
    runs = storage.load_all_runs(out)
    for label, argv in jobs.items():
        strategy = Path(argv[argv.index("run") + 1]).stem
        (match,) = [r for r in runs if r["kind"] == "notebook" and r["strategy_name"] == strategy
                    and (label != "fld15" or r["params"].get("fld_offset") == 15)
                    and (label != "fld" or r["params"].get("fld_offset") == 10)]
        samples.real[label] = match["run_id"]
    return samples
