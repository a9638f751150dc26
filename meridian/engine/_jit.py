"""numba's ``njit``, imported only after its cache folder is set.

numba caches compiled code next to the module by default; an installed package must never be
written to, so the cache goes to the user's cache folder (unless the user chose one). Every
compiled loop of the engine imports ``njit`` from here.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get(
    "XDG_CACHE_HOME", Path.home() / ".cache")) / "meridian" / "numba"))

from numba import njit  # noqa: E402 - after the cache folder is set

__all__ = ["njit"]
