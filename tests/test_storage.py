"""The run registry on real SQLite files, with real processes for concurrency and crashes."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import papermill
import pytest

from meridian import project as locations
from meridian import storage
from meridian.exceptions import RegistryError, RunNotFoundError
from meridian.record import record_keys
from meridian.registry import db
from meridian.storage import (
    backup_registry,
    delete_run,
    export_runs,
    get_registry_stats,
    load_all_runs,
    load_run_by_id,
    rebuild_registry,
    record_from_notebook,
    resolve_run_id,
    save_run,
    search_runs,
)


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv(locations.HOME_VARIABLE, raising=False)
    return tmp_path / "outputs"


def make_record(**overrides) -> dict:
    record = {
        "run_id": str(uuid.uuid4()),
        "timestamp": "2024-03-01T12:00:00+00:00",
        "strategy_name": "fld",
        "params": {"fld_offset": 10, "cot_threshold": 0.0, "allow_short": True},
        "metrics": {"sharpe_ratio": 1.2, "max_drawdown": -0.1, "volatility": 0.2},
        "status": "success",
        "equity": {"index": ["2024-01-01T00:00:00", "2024-01-02T00:00:00"],
                   "values": [100_000.0, 101_000.0]},
    }
    record.update(overrides)
    return record


def raw_rows(out: Path, sql: str = "SELECT * FROM runs") -> list[sqlite3.Row]:
    conn = sqlite3.connect(locations.registry_path(out))
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- save / load


def test_round_trip_keeps_the_record_and_turns_nan_into_null(out):
    record = make_record(
        metrics={"sharpe_ratio": float("nan"), "cagr": 0.05, "num_trades": 3},
        error=None, traceback=None, duration=1.5, source_hash="abc123", kind="api",
        name="first try", source="run_backtest('fld')", logs=["200 bars", "done"],
        drawdown={"index": ["2024-01-01T00:00:00"], "values": [0.0]},
        trades=[{"pnl": 1.0}, {"pnl": -2.0}], custom_tag="kept",
    )
    assert save_run(record, out) == record["run_id"]
    (loaded,) = load_all_runs(out)
    assert loaded["metrics"] == {"sharpe_ratio": None, "cagr": 0.05, "num_trades": 3.0}
    assert loaded["params"] == record["params"] and loaded["equity"] == record["equity"]
    assert loaded["trades_count"] == 2  # derived from the trades, which are not stored
    assert "trades" not in loaded and "drawdown" not in loaded
    for key in ("run_id", "timestamp", "strategy_name", "status", "duration", "source_hash",
                "kind", "name", "source", "logs", "custom_tag"):
        assert loaded[key] == record[key], key
    assert loaded["error"] is None and loaded["notebook_path"] is None
    assert load_run_by_id(record["run_id"], out) == loaded
    json.dumps(loaded, allow_nan=False)


def test_a_minimal_record_gets_every_key_with_defaults(out):
    save_run({"run_id": "r1", "strategy_name": "sma_cross", "status": "running"}, out)
    loaded = load_run_by_id("r1", out)
    assert list(loaded) == list(record_keys())  # RunRecord.to_dict()'s keys, in its order
    assert loaded["kind"] == "api" and loaded["metrics"] == {} and loaded["logs"] == []
    assert loaded["equity"] == {"index": [], "values": []}
    assert loaded["timestamp"].endswith("+00:00")  # filled in with the current UTC time


@pytest.mark.parametrize("key", ["run_id", "strategy_name", "status"])
def test_missing_required_key_is_a_one_line_error_naming_it(out, key):
    record = make_record()
    del record[key]
    with pytest.raises(RegistryError, match=f"missing required key '{key}'") as info:
        save_run(record, out)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"status": "done"}, "status 'done' is not one of"),
    ({"kind": "cron"}, "kind 'cron' is not one of"),
    ({"timestamp": "yesterday"}, "not ISO 8601"),
    ({"metrics": {"sharpe_ratio": "high"}}, "metric 'sharpe_ratio' is 'high'"),
    ({"params": {"when": object()}}, r"params.when holds a object"),
    ({"run_id": "../escape"}, "invalid run id"),
    ({"equity": {"index": [1, 2], "values": [1.0]}}, "2 index entries but 1 values"),
])
def test_invalid_records_are_refused(out, overrides, message):
    with pytest.raises(RegistryError, match=message):
        save_run(make_record(**overrides), out)


def test_timestamps_are_normalized_to_utc(out):
    save_run(make_record(run_id="z", timestamp="2024-03-01T12:00:00Z"), out)
    save_run(make_record(run_id="o", timestamp="2024-03-01T14:00:00.250+02:00"), out)
    save_run(make_record(run_id="n", timestamp="2024-03-01T12:00:00"), out)
    loaded = {r["run_id"]: r["timestamp"] for r in load_all_runs(out)}
    assert loaded == {"z": "2024-03-01T12:00:00+00:00", "o": "2024-03-01T12:00:00.250000+00:00",
                      "n": "2024-03-01T12:00:00+00:00"}


def test_equity_is_downsampled_to_250_points_keeping_first_and_last(out):
    n = 1234
    equity = {"index": [f"t{i}" for i in range(n)], "values": [float(i) for i in range(n)]}
    save_run(make_record(run_id="long", equity=equity), out)
    stored = load_run_by_id("long", out)["equity"]
    assert len(stored["index"]) == len(stored["values"]) == 250
    assert stored["values"][0] == 0.0 and stored["values"][-1] == n - 1
    assert stored["index"][0] == "t0" and stored["index"][-1] == f"t{n - 1}"
    steps = {b - a for a, b in zip(stored["values"], stored["values"][1:], strict=False)}
    assert steps <= {4.0, 5.0, 6.0}  # evenly spaced: 1233 / 249 ≈ 4.95
    short = {"index": ["a", "b", "c"], "values": [1.0, float("nan"), 3.0]}
    save_run(make_record(run_id="short", equity=short), out)
    assert load_run_by_id("short", out)["equity"] == {"index": ["a", "b", "c"],
                                                     "values": [1.0, None, 3.0]}


def test_paths_inside_the_output_dir_are_stored_relative_and_loaded_absolute(out, tmp_path):
    notebook = out / "runs" / "r1" / "fld.ipynb"
    elsewhere = tmp_path / "elsewhere" / "report.html"
    save_run(make_record(run_id="r1", notebook_path=notebook, report_path=str(elsewhere)), out)
    extra = json.loads(raw_rows(out)[0]["extra"])
    assert extra["notebook_path"] == "runs/r1/fld.ipynb"
    assert extra["report_path"] == str(elsewhere)
    assert load_run_by_id("r1", out)["notebook_path"] == str(notebook)
    moved = tmp_path / "moved"
    out.rename(moved)
    loaded = load_run_by_id("r1", moved)
    assert loaded["notebook_path"] == str(moved / "runs" / "r1" / "fld.ipynb")
    assert loaded["report_path"] == str(elsewhere)


def test_relative_paths_are_taken_from_the_working_directory(out, monkeypatch):
    out.mkdir(parents=True)
    monkeypatch.chdir(out.parent)
    save_run(make_record(run_id="r1", report_path="outputs/runs/r1/report.html"), out)
    assert json.loads(raw_rows(out)[0]["extra"])["report_path"] == "runs/r1/report.html"
    assert load_run_by_id("r1", out)["report_path"] == str(out / "runs" / "r1" / "report.html")


def test_newest_first_then_insertion_order_and_limit(out):
    save_run(make_record(run_id="old", timestamp="2024-01-01T00:00:00+00:00"), out)
    save_run(make_record(run_id="tie1", timestamp="2024-02-01T00:00:00+00:00"), out)
    save_run(make_record(run_id="new", timestamp="2024-03-01T00:00:00+00:00"), out)
    save_run(make_record(run_id="tie2", timestamp="2024-02-01T00:00:00+00:00"), out)
    assert [r["run_id"] for r in load_all_runs(out)] == ["new", "tie2", "tie1", "old"]
    assert [r["run_id"] for r in load_all_runs(out, limit=2)] == ["new", "tie2"]
    with pytest.raises(RegistryError, match="limit"):
        load_all_runs(out, limit=-1)


def test_saving_the_same_run_id_replaces_it_in_place(out):
    save_run(make_record(run_id="a", status="running", metrics={}), out)
    save_run(make_record(run_id="b"), out)
    save_run(make_record(run_id="a", status="success", metrics={"sharpe_ratio": 2.0}), out)
    runs = load_all_runs(out)
    assert [r["run_id"] for r in runs] == ["b", "a"]  # same timestamp: "a" keeps its place
    assert runs[1]["status"] == "success" and runs[1]["metrics"] == {"sharpe_ratio": 2.0}


def test_reading_an_empty_output_dir_creates_nothing(out):
    assert load_all_runs(out) == [] and search_runs(output_dir=out) == []
    assert get_registry_stats(out) == {"total": 0, "by_status": {}, "by_strategy": {},
                                       "best": {}}
    assert backup_registry(out) is None
    with pytest.raises(RunNotFoundError):
        load_run_by_id("abcd", out)
    assert not out.exists()


def test_output_dir_defaults_to_meridian_home(tmp_path, monkeypatch):
    monkeypatch.setenv(locations.HOME_VARIABLE, str(tmp_path / "home"))
    save_run(make_record(run_id="r1"))
    assert (tmp_path / "home" / "registry.sqlite").is_file()
    assert [r["run_id"] for r in load_all_runs()] == ["r1"]


def test_sqlite_settings_and_idempotent_schema(out):
    save_run(make_record(), out)
    registry = storage.Registry(out)
    with registry.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(runs)")}
        assert {"idx_runs_timestamp", "idx_runs_strategy", "idx_runs_status"} <= indexes
        # running every migration again changes nothing
        for statement in db.MIGRATIONS[0]:
            conn.execute(statement)
    assert len(load_all_runs(out)) == 1


def test_a_registry_from_a_newer_meridian_is_refused(out):
    save_run(make_record(), out)
    conn = sqlite3.connect(locations.registry_path(out))
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RegistryError, match="upgrade Meridian"):
        load_all_runs(out)


# --------------------------------------------------------------------------- ids


def test_run_ids_resolve_exactly_or_by_unambiguous_prefix(out):
    save_run(make_record(run_id="abcd1111-0000"), out)
    save_run(make_record(run_id="abcd2222-0000"), out)
    save_run(make_record(run_id="ef01"), out)
    assert resolve_run_id("abcd1", out) == "abcd1111-0000"
    assert resolve_run_id("ef01", out) == "ef01"
    assert load_run_by_id("abcd2", out)["run_id"] == "abcd2222-0000"

    with pytest.raises(RunNotFoundError) as info:
        resolve_run_id("abcd", out)
    message = str(info.value)
    assert "ambiguous" in message and "abcd1111-0000" in message and "abcd2222-0000" in message
    assert "\n" not in message

    with pytest.raises(RunNotFoundError) as info:
        load_run_by_id("9999", out)
    assert str(info.value) == f"no run '9999' in {locations.registry_path(out)}"

    with pytest.raises(RunNotFoundError, match="4\\+ characters"):
        resolve_run_id("ab", out)
    assert issubclass(RunNotFoundError, LookupError)


# --------------------------------------------------------------------------- delete / backups


def test_delete_removes_the_row_and_only_that_folder_after_a_backup(out):
    keep, gone = make_record(run_id="keep-0001"), make_record(run_id="gone-0001")
    for record in (keep, gone):
        save_run(record, out)
        folder = locations.run_dir(out, record["run_id"])
        (folder / "notebook.ipynb").write_text("{}")
    deleted = delete_run("gone", out)  # a prefix is enough
    assert deleted["run_id"] == "gone-0001" and deleted["params"] == gone["params"]
    assert [r["run_id"] for r in load_all_runs(out)] == ["keep-0001"]
    assert not locations.run_dir(out, "gone-0001").exists()
    kept = locations.backups_dir(out) / "deleted" / "gone-0001"  # whole, for a restore
    assert (kept / "notebook.ipynb").exists() and (kept / "run.json").exists()
    assert (locations.run_dir(out, "keep-0001") / "notebook.ipynb").exists()
    (backup,) = locations.backups_dir(out).glob("registry-*.sqlite")
    conn = sqlite3.connect(backup)
    assert {r[0] for r in conn.execute("SELECT run_id FROM runs")} == {"keep-0001", "gone-0001"}
    conn.close()
    with pytest.raises(RunNotFoundError, match="no run 'gone-0001'"):
        delete_run("gone-0001", out)


def test_delete_does_not_follow_a_symlinked_run_folder(out, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.csv").write_text("1,2\n")
    save_run(make_record(run_id="linked"), out)
    shutil.rmtree(locations.run_dir(out, "linked"))
    locations.run_dir(out, "linked").symlink_to(precious, target_is_directory=True)
    delete_run("linked", out)
    assert not locations.run_dir(out, "linked").exists()
    assert (precious / "data.csv").read_text() == "1,2\n"


def test_a_run_without_a_folder_deletes_cleanly(out):
    save_run(make_record(run_id="no-folder"), out)
    delete_run("no-folder", out)
    assert load_all_runs(out) == []


def test_backups_keep_the_newest_five(out):
    save_run(make_record(), out)
    made = [backup_registry(out) for _ in range(8)]
    kept = sorted(locations.backups_dir(out).glob("registry-*.sqlite"))
    assert kept == sorted(made[-5:]) and len(set(made)) == 8
    assert not list(locations.backups_dir(out).glob("*.tmp"))
    assert len(sorted(locations.backups_dir(out).iterdir())) == 5
    backup_registry(out, keep=2)
    assert len(list(locations.backups_dir(out).glob("registry-*.sqlite"))) == 2
    with pytest.raises(RegistryError, match="keep"):
        backup_registry(out, keep=0)


def test_a_backup_is_a_standalone_consistent_database(out):
    for _ in range(3):
        save_run(make_record(), out)
    backup = backup_registry(out)
    assert backup.name.startswith("registry-") and backup.parent == locations.backups_dir(out)
    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    conn.close()
    assert len(load_all_runs(backup.parent.parent)) == 3


# --------------------------------------------------------------------------- stats / search


@pytest.fixture
def populated(out):
    runs = [
        make_record(run_id="r1", timestamp="2024-01-01T00:00:00+00:00", strategy_name="fld",
                    params={"fld_offset": 10, "allow_short": True, "tag": "a"},
                    metrics={"sharpe_ratio": 1.0, "max_drawdown": -0.30, "volatility": 0.20,
                             "max_drawdown_duration": 40.0}, duration=3.0),
        make_record(run_id="r2", timestamp="2024-02-01T00:00:00+00:00", strategy_name="fld",
                    params={"fld_offset": 20, "allow_short": False, "tag": "b"},
                    metrics={"sharpe_ratio": 2.0, "max_drawdown": -0.10, "volatility": 0.25,
                             "max_drawdown_duration": 90.0}, duration=1.0),
        make_record(run_id="r3", timestamp="2024-03-01T00:00:00+00:00",
                    strategy_name="sma_cross", params={"fast": 5, "slow": 20, "tag": None},
                    metrics={"sharpe_ratio": float("nan"), "max_drawdown": -0.20,
                             "volatility": 0.10, "max_drawdown_duration": 10.0}, duration=2.0),
        make_record(run_id="r4", timestamp="2024-04-01T00:00:00+00:00",
                    strategy_name="sma_cross", params={"fast": 5, "slow": [20, 30]},
                    metrics={}, status="failed", error="ValueError: boom"),
    ]
    for run in runs:
        save_run(run, out)
    return out


def test_stats_count_and_pick_the_best_run_per_metric(populated):
    stats = get_registry_stats(populated)
    assert stats["total"] == 4
    assert stats["by_status"] == {"success": 3, "failed": 1}
    assert stats["by_strategy"] == {"fld": 2, "sma_cross": 2}
    best = stats["best"]
    assert best["sharpe_ratio"] == {"run_id": "r2", "strategy_name": "fld", "value": 2.0}
    assert best["max_drawdown"]["run_id"] == "r2"  # -0.10 is the shallowest drawdown
    assert best["volatility"] == {"run_id": "r3", "strategy_name": "sma_cross", "value": 0.10}
    assert best["max_drawdown_duration"]["value"] == 10.0


def ids(runs: list[dict]) -> list[str]:
    return [run["run_id"] for run in runs]


def test_search_filters(populated):
    out = populated
    assert ids(search_runs(output_dir=out)) == ["r4", "r3", "r2", "r1"]
    assert ids(search_runs(strategy="fld", output_dir=out)) == ["r2", "r1"]
    assert ids(search_runs(status="failed", output_dir=out)) == ["r4"]
    assert ids(search_runs(since="2024-02-01", output_dir=out)) == ["r4", "r3", "r2"]
    assert ids(search_runs(until="2024-02-01T00:00:00Z", output_dir=out)) == ["r2", "r1"]
    assert ids(search_runs(since="2024-01-15", until="2024-03-15", output_dir=out)) == ["r3",
                                                                                         "r2"]
    assert ids(search_runs(params={"fld_offset": 20}, output_dir=out)) == ["r2"]
    assert ids(search_runs(params={"fld_offset": 20.0}, output_dir=out)) == ["r2"]
    assert ids(search_runs(params={"allow_short": True}, output_dir=out)) == ["r1"]
    assert ids(search_runs(params={"allow_short": False}, output_dir=out)) == ["r2"]
    assert ids(search_runs(params={"tag": "a"}, output_dir=out)) == ["r1"]
    assert ids(search_runs(params={"tag": None}, output_dir=out)) == ["r3"]  # not r4: no key
    assert ids(search_runs(params={"slow": [20, 30]}, output_dir=out)) == ["r4"]
    assert ids(search_runs(params={"fast": 5, "slow": 20}, output_dir=out)) == ["r3"]
    assert ids(search_runs(metric_min={"sharpe_ratio": 1.5}, output_dir=out)) == ["r2"]
    assert ids(search_runs(metric_max={"volatility": 0.2}, output_dir=out)) == ["r3", "r1"]
    assert ids(search_runs(metric_min={"max_drawdown": -0.25},
                           metric_max={"max_drawdown": -0.15}, output_dir=out)) == ["r3"]
    assert ids(search_runs(strategy="fld", metric_min={"sharpe_ratio": 0}, limit=1,
                           output_dir=out)) == ["r2"]
    assert search_runs(strategy="nope", output_dir=out) == []


def test_search_sorting(populated):
    out = populated
    assert ids(search_runs(sort="sharpe_ratio", output_dir=out)) == ["r2", "r1", "r4", "r3"]
    assert ids(search_runs(sort="volatility", limit=2, output_dir=out)) == ["r2", "r1"]
    assert ids(search_runs(sort="duration", output_dir=out)) == ["r2", "r3", "r1", "r4"]
    assert ids(search_runs(sort="timestamp", output_dir=out)) == ["r4", "r3", "r2", "r1"]
    assert ids(search_runs(sort="strategy_name", output_dir=out)) == ["r2", "r1", "r4", "r3"]
    # a known metric no run has yet is a valid (if useless) sort key
    assert len(search_runs(sort="sqn", output_dir=out)) == 4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sort": "sharpe"}, "cannot sort by 'sharpe'; valid: timestamp, strategy_name"),
    ({"metric_min": {"sharpe": 1}}, "unknown metric 'sharpe' in metric_min; valid: "),
    ({"metric_max": {"sharpe": 1}}, "unknown metric 'sharpe' in metric_max"),
    ({"since": "last week"}, "not ISO 8601"),
])
def test_search_errors_list_the_valid_choices(populated, kwargs, message):
    with pytest.raises(RegistryError, match=message) as info:
        search_runs(output_dir=populated, **kwargs)
    assert "sharpe_ratio" in str(info.value) or "ISO" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_custom_metric_can_be_sorted_and_filtered(out):
    save_run(make_record(run_id="a", metrics={"my_score": 1.0}), out)
    save_run(make_record(run_id="b", metrics={"my_score": 3.0}), out)
    assert ids(search_runs(sort="my_score", output_dir=out)) == ["b", "a"]
    assert ids(search_runs(metric_min={"my_score": 2}, output_dir=out)) == ["b"]


# --------------------------------------------------------------------------- export


def _refuse_constant(name: str):
    raise AssertionError(f"non-strict JSON constant {name}")


def test_export_writes_strict_json_of_every_run(populated, tmp_path):
    default = export_runs(None, output_dir=populated)
    assert default == populated / "backtest_runs.json"
    exported = json.loads(default.read_text(), parse_constant=_refuse_constant)
    assert exported == load_all_runs(populated)
    assert exported[1]["metrics"]["sharpe_ratio"] is None  # r3's NaN
    explicit = export_runs(tmp_path / "elsewhere" / "runs.json", output_dir=populated)
    assert json.loads(explicit.read_text()) == exported
    into_dir = export_runs(tmp_path, output_dir=populated)
    assert into_dir == tmp_path / "backtest_runs.json"


# --------------------------------------------------------------------------- real processes

WRITER = r"""
import sys, time, uuid
from pathlib import Path
from meridian.storage import save_run

out, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
i = 0
while count < 0 or i < count:
    run_id = f"{tag}-{i:05d}-{uuid.uuid4()}"
    save_run({"run_id": run_id, "strategy_name": tag, "status": "success",
              "params": {"i": i}, "metrics": {"sharpe_ratio": i / 10},
              "equity": {"index": list(range(600)), "values": [float(v) for v in range(600)]}},
             out)
    print(run_id, flush=True)
    i += 1
"""


def start_writers(out: Path, tags: dict[str, int], go: Path) -> dict[str, subprocess.Popen]:
    """Writer processes that all start saving at the same instant (after importing)."""
    procs = {
        tag: subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag, str(n), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag, n in tags.items()
    }
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    return procs


def finish(proc: subprocess.Popen) -> list[str]:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return stdout.split()


def test_eight_processes_saving_at_once_into_a_fresh_registry(out, tmp_path):
    assert not out.exists()
    started = time.perf_counter()
    procs = start_writers(out, {f"w{i}": 25 for i in range(8)}, tmp_path / "go")
    go = time.perf_counter()
    written = {tag: finish(proc) for tag, proc in procs.items()}
    done = time.perf_counter()
    print(f"8 processes x 25 saves: {done - go:.2f} s saving, {go - started:.2f} s start-up")
    assert all(len(run_ids) == 25 for run_ids in written.values())
    runs = load_all_runs(out)
    assert len(runs) == 200
    assert {r["run_id"] for r in runs} == {i for run_ids in written.values() for i in run_ids}
    assert {len(r["equity"]["values"]) for r in runs} == {250}
    assert raw_rows(out, "PRAGMA integrity_check")[0][0] == "ok"


def test_a_writer_killed_mid_write_leaves_a_sound_registry(out, tmp_path):
    procs = start_writers(out, {"victim": -1, "a": 40, "b": 40}, tmp_path / "go")
    victim = procs.pop("victim")
    for _ in range(30):  # let it get well into its loop, then kill it mid-stream
        assert victim.stdout.readline()
    victim.send_signal(signal.SIGKILL)
    stdout, _ = victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    victim_committed = [line for line in stdout.split("\n") if line.startswith("victim-")]
    others = [run_id for proc in procs.values() for run_id in finish(proc)]

    assert raw_rows(out, "PRAGMA integrity_check")[0][0] == "ok"
    stored = {r["run_id"] for r in load_all_runs(out)}
    assert set(others) <= stored and len(others) == 80
    assert set(victim_committed) <= stored  # whatever it reported as saved survived
    assert len(stored) >= 80 + 30
    save_run(make_record(run_id="after-the-crash"), out)  # no lock left behind
    assert load_run_by_id("after-the-crash", out)["status"] == "success"


# --------------------------------------------------------------------------- notebooks

SOURCE_CELLS = [
    ("fast = 10\nslow = 30\nfail = False", ["parameters"]),
    ("import scrapbook as sb\nif fail:\n    raise ValueError('boom')", []),
    ("sb.glue('metrics', {'sharpe_ratio': 1.25, 'max_drawdown': -0.2, 'cagr': None})\n"
     "sb.glue('params', {'fast': fast, 'slow': slow})\n"
     "sb.glue('equity', {'index': ['2024-01-01T00:00:00', '2024-01-02T00:00:00'],\n"
     "                   'values': [100000.0, 100500.0]})\n"
     "sb.glue('trades_count', 7)", []),
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, Path]:
    """Two notebooks really executed by papermill: one that glues its results, one that
    fails before gluing anything."""
    folder = tmp_path_factory.mktemp("executed")
    source = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    })
    source.cells = [nbformat.v4.new_code_cell(text, metadata={"tags": tags})
                    for text, tags in SOURCE_CELLS]
    nbformat.write(source, folder / "source.ipynb")
    done = {}
    for label, params in (("success", {"fast": 12, "slow": 40}),
                          ("failed", {"fast": 3, "slow": 9, "fail": True})):
        target = folder / f"{label}.ipynb"
        try:
            papermill.execute_notebook(folder / "source.ipynb", target, parameters=params,
                                       kernel_name="python3", progress_bar=False)
        except papermill.PapermillExecutionError:
            assert label == "failed"
        done[label] = target
    return done


def place(out: Path, template: Path, run_id: str, meta: dict | None) -> Path:
    """Copy an executed notebook into ``runs/<run_id>/`` with the pipeline's metadata."""
    notebook = nbformat.read(template, as_version=4)
    if meta is not None:
        notebook.metadata["meridian"] = {"run_id": run_id, **meta}
    target = locations.run_dir(out, run_id) / "strategy.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


SUCCESS_META = {"timestamp": "2024-05-01T10:00:00+00:00", "strategy_name": "sma_cross",
                "status": "success", "error": None, "traceback": None, "duration": 2.5,
                "source_hash": "h1", "report_path": "report.html", "kind": "notebook",
                "name": "first"}
FAILED_META = {"timestamp": "2024-05-02T10:00:00+00:00", "strategy_name": "sma_cross",
               "status": "failed", "error": "ValueError: boom", "traceback": "Traceback ...",
               "duration": 1.0, "source_hash": "h2", "kind": "notebook", "name": None}


def test_record_from_an_executed_notebook(out, executed):
    path = place(out, executed["success"], "nb-ok", SUCCESS_META)
    record = record_from_notebook(path)
    assert record["run_id"] == "nb-ok" and record["status"] == "success"
    assert record["metrics"] == {"sharpe_ratio": 1.25, "max_drawdown": -0.2, "cagr": None}
    assert record["params"] == {"fast": 12, "slow": 40}
    assert record["equity"]["values"] == [100000.0, 100500.0]
    assert record["trades_count"] == 7
    assert record["notebook_path"] == str(path)
    assert record["report_path"] == str(path.parent / "report.html")
    assert (record["duration"], record["name"]) == (2.5, "first")
    assert record["code"]["notebook_sha256"] == "h1"  # an older notebook's source_hash


def test_record_from_a_failed_notebook_falls_back_to_papermill_parameters(out, executed):
    path = place(out, executed["failed"], "nb-bad", FAILED_META)
    record = record_from_notebook(path)
    assert record["status"] == "failed" and record["error"] == "ValueError: boom"
    assert record["metrics"] == {} and record["trades_count"] is None
    assert record["params"] == {"fast": 3, "slow": 9, "fail": True}
    assert record["equity"] == {"index": [], "values": []}


def test_a_notebook_without_meridian_metadata_is_refused(out, executed):
    path = place(out, executed["success"], "stray", None)
    with pytest.raises(RegistryError, match="no 'meridian' run metadata"):
        record_from_notebook(path)


def test_rebuild_recreates_a_deleted_registry_from_the_notebooks(out, executed):
    for run_id, template, meta in (("nb-ok", "success", SUCCESS_META),
                                   ("nb-bad", "failed", FAILED_META)):
        save_run(record_from_notebook(place(out, executed[template], run_id, meta)), out)
    place(out, executed["success"], "stray", None)
    before = load_all_runs(out)
    locations.registry_path(out).unlink()
    assert load_all_runs(out) == []

    skipped = []
    for run_id in ("nb-ok", "nb-bad"):  # notebooks of an older Meridian: no run.json
        locations.run_dir(out, run_id).joinpath("run.json").unlink()
    assert rebuild_registry(out, on_skip=lambda path, reason: skipped.append(path.parent.name)) \
        == (2, 0)
    assert skipped == ["stray"]
    after = load_all_runs(out)
    assert after == before
    assert [r["metrics"] for r in after] == [{}, {"sharpe_ratio": 1.25, "max_drawdown": -0.2,
                                                  "cagr": None}]
    with storage.Registry(out).connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".registry-rebuild")]


def test_rebuild_over_a_live_registry_replaces_its_content_after_a_backup(out, executed):
    place(out, executed["success"], "nb-ok", SUCCESS_META)  # a notebook without a row
    save_run(make_record(run_id="api-only", kind="api"), out)  # restorable from run.json
    with storage.Registry(out).transaction() as conn:
        conn.execute("UPDATE runs SET strategy_name = 'stale' WHERE run_id = 'api-only'")
    assert rebuild_registry(out) == (2, 0)
    restored = {r["run_id"]: r for r in load_all_runs(out)}
    assert restored["nb-ok"]["strategy_name"] == "sma_cross"
    assert restored["nb-ok"]["metrics"]["sharpe_ratio"] == 1.25
    assert restored["api-only"]["strategy_name"] == make_record()["strategy_name"]
    assert restored["api-only"]["kind"] == "api"
    (backup,) = locations.backups_dir(out).glob("registry-*.sqlite")
    conn = sqlite3.connect(backup)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    conn.close()
    with storage.Registry(out).connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    save_run(make_record(run_id="later"), out)
    assert len(load_all_runs(out)) == 3


def test_rebuild_with_no_runs_gives_an_empty_registry(out):
    out.mkdir()
    assert rebuild_registry(out) == (0, 0)
    assert load_all_runs(out) == [] and locations.registry_path(out).is_file()


def test_nan_never_reaches_disk(out):
    save_run(make_record(run_id="nan", metrics={"x": math.inf}, params={"p": float("nan")},
                         duration=float("nan")), out)
    row = raw_rows(out)[0]
    for column in ("metrics", "params", "extra"):
        json.loads(row[column], parse_constant=_refuse_constant)
    assert isinstance(row["equity"], bytes)  # packed: NaN gaps are NaN floats, read as None
    loaded = load_run_by_id("nan", out)
    assert loaded["metrics"] == {"x": None} and loaded["params"] == {"p": None}
    assert loaded["duration"] is None
    assert os.path.getsize(locations.registry_path(out)) > 0


def _file(out: Path, run_id: str) -> dict:
    return json.loads((out / "runs" / run_id / "run.json").read_text())


def test_tags_added_while_a_run_executes_survive_its_end(out):
    record = make_record(status="running")
    save_run(record, out)
    storage.tag_run(record["run_id"], ["keep"], "look at it", out)
    save_run({**record, "status": "success", "tags": ["done"]}, out)  # the run finishing
    final = load_run_by_id(record["run_id"], out)
    assert final["tags"] == ["keep", "done"] and final["note"] == "look at it"
    assert final["status"] == "success"
    assert _file(out, record["run_id"])["tags"] == ["keep", "done"]
    storage.tag_run(record["run_id"], untag=["keep"], output_dir=out)
    assert load_run_by_id(record["run_id"], out)["tags"] == ["done"]
    assert _file(out, record["run_id"])["tags"] == ["done"]


def test_two_processes_tagging_one_run_at_once_lose_nothing(out):
    record = make_record()
    save_run(record, out)
    script = ("import sys\nfrom meridian import storage\n"
              "for i in range(25):\n"
              "    storage.tag_run(sys.argv[1], [f'{sys.argv[2]}{i}'], None, sys.argv[3])\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, record["run_id"], prefix,
                                 str(out)]) for prefix in ("a", "b")]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    expected = {f"{prefix}{i}" for prefix in "ab" for i in range(25)}
    assert set(load_run_by_id(record["run_id"], out)["tags"]) == expected
    assert set(_file(out, record["run_id"])["tags"]) == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out: save_run(make_record(params="fld_offset=3"), out),
         "run record's 'params' must be a dict"),
        (lambda out: save_run(make_record(metrics=[1.0]), out),
         "run record's 'metrics' must be a dict"),
        (lambda out: save_run(5, out), "a run record must be a dict, got int"),
        (lambda out: search_runs(metric_min={"sharpe_ratio": "abc"}, output_dir=out),
         "metric_min sharpe_ratio='abc' is not a finite number"),
        (lambda out: search_runs(metric_min={"sharpe_ratio": math.nan}, output_dir=out),
         "metric_min sharpe_ratio=nan is not a finite number"),
        (lambda out: search_runs(metric_max={"sharpe_ratio": math.inf}, output_dir=out),
         "metric_max sharpe_ratio=inf is not a finite number"),
        (lambda out: search_runs(params=["fld_offset"], output_dir=out),
         "params must be a dict of name → value, got a list"),
    ],
    ids=["params-text", "metrics-list", "not-a-dict", "threshold-text", "threshold-nan",
         "threshold-inf", "params-list"],
)
def test_wrong_types_are_one_line_errors_and_write_nothing(out, call, message):
    from meridian.exceptions import MeridianError

    save_run(make_record(), out)
    with pytest.raises(MeridianError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(out)
    assert len(load_all_runs(out)) == 1


def test_import_names_a_record_nested_too_deeply_without_running_out_of_stack(out, tmp_path):
    from meridian.storage import import_runs

    deep = tmp_path / "deep.json"
    deep.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]")
    with pytest.raises(RegistryError, match="nested too deeply"):
        import_runs(deep, out)
    assert load_all_runs(out) == []
