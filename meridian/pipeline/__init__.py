"""Notebook pipeline: jupytext → papermill → nbconvert → scrapbook → registry.

One module per step, as papermill does it: :mod:`.notebooks` (find, read, inspect),
:mod:`.parameterize` (check values), :mod:`.execute` (papermill), :mod:`.export` (HTML),
:mod:`.scraps` (what notebooks glue) and :mod:`.run` (the whole ``meridian run``).
Nothing is imported here: the kernel imports :mod:`.scraps` and must not pay for papermill
and nbconvert.
"""
