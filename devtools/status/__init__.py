"""The support status view of the availability caches: read-only, never taking the run's lock.

`python -m devtools.status` (or `make status` for the local database); see `cli.py` for the options.
"""
