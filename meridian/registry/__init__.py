"""The run registry, one SQLite file per output directory: an index over the run and sweep
folders, which are the source of truth (:mod:`.rebuild` recreates the index from them).

:mod:`.db` opens it (WAL, schema, damage, stale ``running`` records), :mod:`.records` turns
run records into rows and files, :mod:`.backup` keeps copies before destructive operations and
:mod:`.rebuild` restores it. :mod:`meridian.storage` is the public API over all of them.
"""
