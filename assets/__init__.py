"""Thin Dagster assets, one module per layer: raw pulls, clean tables, weekly tables, the report.

Each asset body gathers its inputs, calls one pure function from ``pipelines`` and writes the result with
metadata. ``pipelines.definitions`` loads every asset and check from this package.
"""
