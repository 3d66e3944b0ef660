"""The use cases of the one core, one module each, all working on a ``wiring.Wiring``:
users (lookup, import, progress, shards), runs (start, execute, finish, poll), evolution (which
jobs are due), reports (timeline, usage, purge, gallery), fallback sets, doctor checks.
``core.Mirror`` is the facade every edge calls; it holds no behaviour of its own."""
