"""Who is running what: process identity for ``running`` records, and SIGTERM as an interrupt.

A run or sweep in progress is recorded with the pid, host and start time of the process doing
it. When that process is gone (killed with -9, a crashed machine), the next process that opens
the registry sees a ``running`` record whose owner no longer exists and marks it
``interrupted``: nothing is left looking alive forever. The start time guards against pid reuse.

SIGTERM (sent by ``timeout``, CI cancellation, schedulers) is turned into :class:`Terminated`, a
``KeyboardInterrupt``, so the one code path that handles Ctrl-C also handles it: finished work is
kept, the record is marked ``interrupted``, child processes are stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM received: handled like Ctrl-C, with exit code 143 instead of 130."""

    exit_code = 143


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal's number, as shells report it)."""
    return getattr(interrupt, "exit_code", 130)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def identity() -> dict:
    """This process, as recorded in a ``running`` record."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "started": _start_ticks(pid)}


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(owner: dict | None) -> bool:
    """Whether the process recorded in ``owner`` still runs. A record from another host (or
    without an owner) is assumed alive: there is no way to tell from here."""
    if not owner or not owner.get("pid") or owner.get("host") != socket.gethostname():
        return True
    pid = int(owner["pid"])
    if not pid_exists(pid):
        return False
    started = owner.get("started")
    current = _start_ticks(pid)
    return started is None or current is None or started == current


def watch_parent(interval: float = 0.25) -> None:
    """In a worker process: exit as soon as the parent is gone (even killed with -9, which
    gives it no chance to stop its workers). A daemon thread polls the parent pid."""
    parent = os.getppid()

    def poll() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=poll, name="meridian-parent-watch", daemon=True).start()
