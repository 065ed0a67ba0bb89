"""Thin Dagster assets, one folder per source domain (``coingecko/``, ``derivatives/``, ``macro/``: ``raw.py``
pulls, ``clean.py`` clean daily tables), the weekly tables (``weekly/``, one asset shape) and the report.

Each asset body gathers its inputs, calls one pure function from ``pipelines`` and writes the result with
metadata. ``pipelines.definitions`` loads every asset and check from this package.
"""
