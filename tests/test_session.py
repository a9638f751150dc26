"""The warm kernel behind Run as Backtest: earlier cells run once, a changed one restarts it,
a dead kernel is replaced, a slow cell is interrupted. A real kernel throughout."""

from __future__ import annotations

import pytest

from meridian.pipeline.session import KERNEL_DIED, Session, session_env

SIGNALS = ("import pandas as pd\n"
           "def signals(data, lookback=5):\n"
           "    return pd.Series(1.0, index=data.index) * (COUNTER[0] > -1)\n")


@pytest.fixture
def warm(tmp_path):
    instance = Session(cwd=tmp_path, env=session_env(tmp_path / "outputs"))
    yield instance
    instance.close()


def _run(instance, earlier, source=SIGNALS, **params):
    return instance.run_backtest(earlier, 9, source, name="demo", notebook="notebooks/demo.py",
                                 params=params or {"lookback": 5})


def test_earlier_cells_run_once_and_a_changed_one_restarts_the_kernel(warm):
    earlier = [(1, "COUNTER = [0]"), (2, "COUNTER[0] += 1")]
    first = _run(warm, earlier)
    assert first.error is None and first.run_id and first.kernel_started
    assert first.ran_cells == [1, 2]
    assert [s["metadata"]["meridian_report"] for s in first.sections][:3] == \
        ["header", "equity", "drawdown"]
    second = _run(warm, earlier, lookback=7)
    assert (second.ran_cells, second.kernel_started, second.error) == ([], False, None)
    assert warm.execute("print(COUNTER[0])").text == "1\n"  # cell 2 ran once, not twice
    changed = _run(warm, [(1, "COUNTER = [10]"), (2, "COUNTER[0] += 1")])
    assert changed.kernel_started and changed.ran_cells == [1, 2]
    assert warm.execute("print(COUNTER[0])").text == "11\n"


def test_a_dead_kernel_is_reported_then_replaced(warm):
    earlier = [(1, "COUNTER = [0]")]
    assert _run(warm, earlier).error is None
    died = _run(warm, earlier, source="import os\nos._exit(3)\n" + SIGNALS)
    assert died.error == KERNEL_DIED and died.run_id is None
    again = _run(warm, earlier)
    assert again.error is None and again.kernel_started and again.ran_cells == [1]


def test_errors_are_one_line(warm):
    broken = _run(warm, [(1, "COUNTER = [0]"), (3, "1 / 0")])
    assert broken.error == "cell 3 raised ZeroDivisionError: division by zero"
    failing = _run(warm, [(1, "COUNTER = [0]")],
                   source=SIGNALS.replace("    return", "    raise KeyError('Close')\n    return"))
    assert failing.error == "signals failed: KeyError: 'Close'"


def test_a_slow_cell_is_interrupted(warm):
    """Only the slow cell meets the short limit (the kernel start and the first run do not),
    and no wall-clock margin is asserted: pytest-timeout fails a cell that never stops."""
    assert _run(warm, [(1, "COUNTER = [0]")]).error is None
    default, warm.timeout = warm.timeout, 2.0
    slow = _run(warm, [(1, "COUNTER = [0]"), (2, "import time; time.sleep(600)")])
    assert "ran longer than 2 s and was interrupted" in slow.error
    assert slow.ran_cells == []  # cell 1 had run: only the slow one ran, and was stopped
    warm.timeout = default
    assert _run(warm, [(1, "COUNTER = [0]")]).error is None  # usable again


def test_a_kernel_that_cannot_start_is_one_line(tmp_path):
    missing = Session("no-such-kernel", cwd=tmp_path, env=session_env(tmp_path / "outputs"))
    outcome = _run(missing, [(1, "COUNTER = [0]")])
    assert outcome.run_id is None and outcome.error.startswith(
        "the kernel 'no-such-kernel' could not start: NoSuchKernel")
    assert "\n" not in outcome.error
