"""A run's registry curve: packed small, unpacked only when someone looks at it.

At 100,000 runs the registry must stay near 4 KB a run and ``load_all_runs()`` must not parse
100,000 curves nobody reads. So a row's ``equity`` is a BLOB — dates as second deltas (when
they are plain ISO times, which they are for every bar index Meridian writes), values as
float64, the whole zlib-compressed: about 1.6 KB for :data:`CURVE_POINTS` points instead of
9 KB of JSON — and a loaded record's ``equity`` is a :class:`Curve`, a dict that unpacks itself
on first access. Rows written before this format (JSON text) are read as they are.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

MAGIC = b"MQC1"
_ISO_SECONDS, _STRINGS = 1, 2
_HEADER = struct.Struct("<4sBI")  # magic, layout, point count
_PLAIN_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def pack(curve: Mapping[str, list]) -> bytes:
    """``{"index": [...], "values": [...]}`` (already downsampled, None for gaps) as bytes."""
    index, values = list(curve["index"]), curve["values"]
    numbers = np.array([np.nan if v is None else v for v in values], dtype="<f8")
    layout, dates = _STRINGS, json.dumps(index, separators=(",", ":")).encode()
    if index and isinstance(index[0], str) and _PLAIN_ISO.fullmatch(index[0]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # time zones: refused by the round trip below
                seconds = np.array(index, dtype="datetime64[s]")
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None and np.datetime_as_string(seconds).tolist() == index:
            steps = np.diff(seconds.astype("<i8"), prepend=np.int64(0))
            layout, dates = _ISO_SECONDS, steps.astype("<i8").tobytes()
    body = zlib.compress(dates + numbers.tobytes(), 6)
    return _HEADER.pack(MAGIC, layout, len(index)) + body


def arrays(stored: bytes | str | None) -> tuple[bytes, np.ndarray, Any]:
    """``(axis key, values, axis)`` without building strings: the key is equal for equal date
    axes (so pages can share them), the values are float64 (NaN for gaps), and ``axis()``
    (a callable) gives the ISO strings when they are needed."""
    if not stored:
        return b"", np.empty(0), list
    if isinstance(stored, str):
        curve = json.loads(stored)
        values = np.array([np.nan if v is None else v for v in curve.get("values") or []],
                          dtype=float)
        index = list(curve.get("index") or [])
        return json.dumps(index).encode(), values, lambda: index
    magic, layout, count = _HEADER.unpack_from(stored)
    if magic != MAGIC:
        raise ValueError("not a packed Meridian curve")
    raw = zlib.decompress(stored[_HEADER.size:])
    numbers = np.frombuffer(raw[len(raw) - 8 * count:], dtype="<f8")
    dates = raw[:len(raw) - 8 * count]
    if layout == _ISO_SECONDS:
        def axis() -> list[str]:
            steps = np.frombuffer(dates, dtype="<i8")
            return np.datetime_as_string(np.cumsum(steps).astype("datetime64[s]")).tolist()
    else:
        def axis() -> list[str]:
            return json.loads(dates)
    return bytes([layout]) + dates, numbers, axis


def unpack(stored: bytes | str | None) -> dict[str, list]:
    """The curve :func:`pack` made, or a JSON text row of an older registry."""
    if not stored:
        return {"index": [], "values": []}
    if isinstance(stored, str):
        return json.loads(stored)
    _, numbers, axis = arrays(stored)
    index = axis()
    values = numbers.tolist()
    if np.isnan(numbers).any():
        values = [None if v != v else v for v in values]
    return {"index": index, "values": values}


class LazyDict(dict):
    """A dict that fills itself (:meth:`_materialize`) the first time anything reads it as a
    whole; :meth:`_lookup` may answer single keys earlier. Subclasses keep their unparsed
    parts until then. Pickled, copied or dumped to JSON it is an ordinary dict."""

    __slots__ = ("_pending",)

    def _materialize(self) -> None:  # pragma: no cover - each subclass has its own
        raise NotImplementedError

    def _load(self) -> None:
        if self._pending:
            self._pending = False
            self._materialize()

    def _lookup(self, key: Any) -> Any:
        """The value of ``key`` (KeyError when missing), parsing as little as possible."""
        self._load()
        return dict.__getitem__(self, key)

    def __getitem__(self, key: Any) -> Any:
        return self._lookup(key)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self._lookup(key)
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        try:
            self._lookup(key)
        except KeyError:
            return False
        return True

    def _whole(name: str):  # noqa: N805 - builds the methods below
        method = getattr(dict, name)

        def read(self, *args, **kwargs):
            self._load()
            return method(self, *args, **kwargs)

        read.__name__ = name
        return read

    for _name in ("__iter__", "__len__", "__repr__", "__or__", "keys", "values", "items",
                  "copy", "pop", "setdefault", "update", "__setitem__", "__delitem__",
                  "popitem", "clear"):
        locals()[_name] = _whole(_name)
    del _name, _whole
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        self._load()
        if isinstance(other, LazyDict):
            other._load()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self.items()),)


class Curve(LazyDict):
    """A record's ``equity``: a plain ``{"index", "values"}`` dict to every reader, unpacked
    from its stored bytes the first time any of it is read."""

    __slots__ = ("_stored",)

    def __init__(self, stored: bytes | str | None):
        # the keys are there from the start: C code that asks only for the size (the json
        # encoder does, before it calls items()) must not see an empty dict
        super().__init__(index=None, values=None)
        self._stored, self._pending = stored, True

    def _materialize(self) -> None:
        stored, self._stored = self._stored, None
        dict.update(self, unpack(stored))
