"""Notebook pipeline: jupytext → papermill → nbconvert → scrapbook → registry.

One module per step, as papermill does it: :mod:`.notebooks` (find, read, inspect),
:mod:`.parameterize` (check values), :mod:`.execute` (papermill), :mod:`.export` (HTML),
:mod:`.run` (the whole ``meridian run``: the kernel glues the run's one record,
:meth:`meridian.record.RunRecord.glue`, and the pipeline files it). Nothing is imported here:
a kernel must not pay for papermill and nbconvert.
"""
