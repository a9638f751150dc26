"""The ``meridian`` console script's exit (``cli.entry``): it skips tearing the interpreter
down, so these check what must survive that — exit codes, every byte of output through a
pipe, atexit handlers, and a thread still running — in real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def entry(*args: str, before: str = "") -> subprocess.CompletedProcess:
    """Run ``cli.entry`` with ``args`` in a fresh interpreter, after the code ``before``."""
    code = textwrap.dedent(before) + textwrap.dedent(f"""
        import sys
        from meridian import cli
        sys.argv = ["meridian", *{list(args)!r}]
        cli.entry()
        print("not reached", flush=True)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_a_command_s_whole_output_reaches_a_pipe_and_its_exit_code_is_kept():
    result = entry("--help")
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout and "sweep" in result.stdout
    assert "not reached" not in result.stdout
    bad = entry("sweep", "sma_cross", "--grid", "fast=5:10:1", "--workers", "0")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("Usage:") or "Invalid value" in bad.stderr, bad.stderr
    unknown = entry("no-such-command")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


def test_atexit_handlers_run_and_unflushed_prints_arrive():
    result = entry("--version", before="""
        import atexit, sys
        atexit.register(lambda: print("handler ran", flush=True))
        sys.stdout.write("buffered, not flushed\\n")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "buffered, not flushed"
    assert "handler ran" in result.stdout and "version" in result.stdout


def test_a_thread_still_running_is_waited_for_as_by_an_ordinary_exit():
    result = entry("--version", before="""
        import threading
        release = threading.Event()
        def finish():
            release.wait()
            print("thread finished", flush=True)
        threading.Thread(target=finish).start()
        threading.Timer(0.5, release.set).start()  # still waiting when the command ends
    """)
    assert result.returncode == 0, result.stderr
    assert "thread finished" in result.stdout
