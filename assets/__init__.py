"""Thin Dagster assets, one folder per source domain (``coingecko/``, ``derivatives/``, ``macro/``: ``raw.py``
pulls, ``clean.py`` clean daily tables), the weekly tables (``weekly/``, one asset shape) and the report.

Each asset body gathers its inputs and calls one pure function from ``pipelines``. A clean or weekly asset returns
its table's partitions, which ``LakeIOManager`` (``_lake_io.py``) writes into the lake with their metadata; a raw
pull stores its recordings and the report its files themselves. ``pipelines.definitions`` loads every asset and
check from this package.
"""
