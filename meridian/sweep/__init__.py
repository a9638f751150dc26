"""Parameter sweeps: a grid evaluated in-process and in parallel over the strategy module.

:func:`run_sweep` (``meridian sweep``) is the entry point; :mod:`.grid` parses ``--grid``,
:mod:`.evaluate` runs a batch through the vectorized engine, :mod:`.executors` spreads
batches over processes or a Dask cluster, :mod:`.store` records them, :mod:`.report` shows them.
"""
