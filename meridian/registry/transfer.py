"""Runs in and out of a registry as one JSON file: ``meridian runs export`` / ``runs import``.

The file is a JSON list of run records (the seed's ``backtest_runs.json`` format). Import
streams it (a 500 MB file never sits in memory whole), validates each record on its own — a
bad one is reported in one line naming the record and the field, and the others still
import — and skips run ids already present, so importing twice changes nothing.

Imported runs have no folder of their own (100,000 folders would cost more than the rows);
their source of truth is ``imports/<stamp>/part-NNNNN.jsonl``, the accepted records as they
were, written before their rows. ``runs rebuild`` reads those files (a run folder of the same
id, written later by a tag or a note, wins; a deleted run leaves its record in
``backups/deleted/<id>/`` and is not restored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from meridian import project
from meridian._files import write_atomic
from meridian.exceptions import RegistryError
from meridian.record import strict_json
from meridian.registry.db import Registry
from meridian.registry.records import to_row

BATCH = 5_000
_READ = 4 << 20
_NEAR_END = 1 << 20


@dataclass
class Imported:
    """What an import did: runs added, ids already present, and one line per bad record."""

    added: list[str] = field(default_factory=list)
    present: int = 0
    bad: list[str] = field(default_factory=list)


MAX_RECORD = 256 << 20
"""Characters one record may take: an export's largest (equity, trades) is a few MiB, so a
file that keeps one value open for longer is refused before it fills memory."""


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[object, str]]:
    """The items of the JSON list in ``path``, one at a time, each with its JSON text. A file
    that is not a JSON list is one :class:`RegistryError` naming the file and the position."""
    path = Path(path)
    decoder = json.JSONDecoder()
    try:
        stream = open(path, encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    except OSError as error:
        raise RegistryError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        buffer, position, offset, ended = "", 0, 0, False

        def fill() -> bool:
            nonlocal buffer, position, offset, ended
            more = stream.read(_READ)
            if not more:
                ended = True
                return False
            offset += position
            buffer, position = buffer[position:] + more, 0
            return True

        def skip() -> str:
            nonlocal position
            while True:
                while position < len(buffer) and buffer[position] in " \t\r\n":
                    position += 1
                if position < len(buffer) or not fill():
                    return buffer[position] if position < len(buffer) else ""

        def broken(what: str) -> RegistryError:
            return RegistryError(f"{path}: not a JSON list of run records (what `meridian runs "
                                 f"export` writes): {what} at character {offset + position:,}")

        first = skip()
        if first != "[":
            raise broken(f"found {first!r} instead of '['" if first else "the file is empty")
        position += 1
        if skip() == "]":
            return
        while True:
            while True:
                skip()
                if len(buffer) - position > MAX_RECORD:
                    raise broken(f"a record larger than {MAX_RECORD >> 20} MiB")
                try:
                    item, end = decoder.raw_decode(buffer, position)
                    if end < len(buffer) or ended or not fill():  # a number may go on
                        break
                    continue
                except RecursionError:
                    raise broken("a value nested too deeply") from None
                except json.JSONDecodeError as error:
                    # an item cut by the end of what was read: read on; else it is broken
                    near_end = len(buffer) - error.pos <= _NEAR_END
                    if not near_end or ended or not fill():
                        position = error.pos
                        raise broken(error.msg) from None
            text, position = buffer[position:end], end
            yield item, text
            after = skip()
            position += 1
            if after == "]":
                if skip():
                    raise broken("more text after the list")
                return
            if after != ",":
                position -= 1
                raise broken(f"expected ',' or ']' but found {after!r}" if after
                             else "the list is not closed")
    except UnicodeDecodeError as error:
        raise RegistryError(f"{path}: not UTF-8 text ({error.reason})") from None
    finally:
        stream.close()


def _label(number: int, record: object) -> str:
    run_id = record.get("run_id") if isinstance(record, dict) else None
    return f"record {number}" + (f" (run_id {run_id})" if run_id else "")


def import_runs(path: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None,
                on_progress: Callable[[int], None] | None = None) -> Imported:
    """Add the runs of ``path`` (see the module doc) to the registry of ``output_dir``; each
    batch's records are on disk before its rows are committed, so an import cut short can be
    finished by importing the same file again."""
    registry = Registry(output_dir)
    out = registry.output_dir
    present = {row[0] for row in registry.query("SELECT run_id FROM runs")}
    folder = project.imports_dir(out) / (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}")
    done = Imported()
    batch: list[tuple[str, dict]] = []
    parts = 0

    def flush() -> None:
        nonlocal parts
        if not batch:
            return
        parts += 1
        write_atomic(folder / f"part-{parts:05d}.jsonl", "".join(text for text, _ in batch))
        registry.insert_rows([row for _, row in batch])
        done.added.extend(row["run_id"] for _, row in batch)
        batch.clear()
        if on_progress is not None:
            on_progress(len(done.added))

    for number, (record, text) in enumerate(read_records(path), start=1):
        try:
            row = to_row(record, out)
        except RegistryError as error:
            done.bad.append(f"{_label(number, record)}: {error}")
            continue
        if row["run_id"] in present:
            done.present += 1
            continue
        present.add(row["run_id"])
        if "\n" in text or "NaN" in text or "Infinity" in text:  # one line, strict JSON
            text = strict_json(record)
        batch.append((text + "\n", row))
        if len(batch) >= BATCH:
            flush()
    flush()
    return done


def imported_records(out: Path) -> Iterator[tuple[Path, object]]:
    """Every record kept by past imports, oldest import first, with the file it is in."""
    for part in sorted(project.imports_dir(out).glob("*/part-*.jsonl")):
        with open(part, encoding="utf-8") as stream:
            for line in stream:
                if line.strip():
                    try:
                        yield part, json.loads(line)
                    except ValueError as error:
                        yield part, RegistryError(f"a line is not JSON ({error})")
