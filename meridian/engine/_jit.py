"""numba's ``njit``, imported only after its cache folder is set.

numba caches compiled code next to the module by default; an installed package must never be
written to, so the cache goes to the user's cache folder (unless the user chose one). Every
compiled loop of the engine imports ``njit`` from here.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get(
    "XDG_CACHE_HOME", Path.home() / ".cache")) / "meridian" / "numba"))

from numba import njit  # noqa: E402 - after the cache folder is set

__all__ = ["load_compiler", "njit"]


def load_compiler() -> None:
    """Load numba's compiler tables (its CPU target context) now, as a sweep worker starts,
    without importing ``scipy.linalg``.

    numba loads them before it runs even a cached function: 0.3–0.4 s in every worker, and a
    third of that is one import. ``numba.np.arraymath`` asks on import whether BLAS is there
    by importing ``scipy.linalg`` whole, only to pick how ``np.correlate`` and
    ``np.convolve`` multiply. Here that question is answered from whether scipy is installed
    (what numba finds, bar a broken scipy), and numba's own ``ensure_blas`` stays in place,
    so compiling any linear algebra imports and checks scipy as before. If numba's tables
    are already loaded, or numba's layout is not the one this expects, numba loads as usual.
    """
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.np import linalg

    ensure_blas = getattr(linalg, "ensure_blas", None)
    with global_compiler_lock:  # no other thread compiles (and asks for BLAS) meanwhile
        if ensure_blas is None or "numba.np.arraymath" in sys.modules:
            cpu_target.target_context.refresh()
            return
        linalg.ensure_blas = _assume_blas
        try:
            cpu_target.target_context.refresh()
        finally:
            linalg.ensure_blas = ensure_blas
        arraymath = sys.modules.get("numba.np.arraymath")
        if arraymath is not None and getattr(arraymath, "ensure_blas", None) is _assume_blas:
            arraymath.ensure_blas = ensure_blas
            arraymath._HAVE_BLAS = importlib.util.find_spec("scipy") is not None


def _assume_blas() -> None:
    """Stands in for ``numba.np.linalg.ensure_blas`` while numba loads its tables."""
