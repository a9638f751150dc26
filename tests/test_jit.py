"""meridian.engine._jit: a worker loads numba's tables without scipy.linalg, and numba ends up
exactly as its own loading leaves it. Each check runs in a fresh interpreter: numba loads its
tables once per process."""

from __future__ import annotations

import json
import subprocess
import sys

STATE = """
import json, sys
import numba.np.arraymath as arraymath, numba.np.linalg as linalg
print(json.dumps({"have_blas": arraymath._HAVE_BLAS,
                  "restored": arraymath.ensure_blas is linalg.ensure_blas,
                  "ensure_blas": linalg.ensure_blas.__qualname__,
                  "scipy_linalg": "scipy.linalg" in sys.modules}))
"""


def _python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_load_compiler_leaves_numba_as_its_own_loading_does_without_scipy_linalg():
    ours = _python("from meridian.engine._jit import load_compiler\nload_compiler()\n" + STATE)
    numbas = _python("from numba.core.registry import cpu_target\n"
                     "cpu_target.target_context.refresh()\n" + STATE)
    assert ours["have_blas"] == numbas["have_blas"]
    assert ours["restored"] and ours["ensure_blas"] == numbas["ensure_blas"] == "ensure_blas"
    assert not ours["scipy_linalg"]


def test_linear_algebra_still_compiles_and_agrees_with_numpy_after_load_compiler():
    result = _python("""
import json
import numpy as np
from numba import njit
from meridian.engine._jit import load_compiler
load_compiler()
import numba.np.arraymath as arraymath
a, b = np.random.default_rng(3).normal(size=(2, 257))
correlate = njit(lambda x, y: np.correlate(x, y))
convolve = njit(lambda x, y: np.convolve(x, y))
out = {"correlate": bool(np.allclose(correlate(a, b), np.correlate(a, b), rtol=1e-12)),
       "convolve": bool(np.allclose(convolve(a, b), np.convolve(a, b), rtol=1e-12))}
if arraymath._HAVE_BLAS:  # np.dot needs scipy's BLAS, imported and checked by numba as usual
    out["dot"] = bool(np.isclose(njit(lambda x, y: np.dot(x, y))(a, b), np.dot(a, b),
                                 rtol=1e-12))
print(json.dumps(out))
""")
    assert all(result.values()), result


def test_load_compiler_does_nothing_once_numba_has_loaded_its_tables():
    state = _python("from numba.core.registry import cpu_target\n"
                    "cpu_target.target_context.refresh()\n"
                    "import numba.np.linalg as linalg\n"
                    "before = linalg.ensure_blas\n"
                    "from meridian.engine._jit import load_compiler\nload_compiler()\n"
                    "assert linalg.ensure_blas is before\n" + STATE)
    assert state["restored"]
