"""Pure maths over the clean tables (polars / numpy / DuckDB): no Dagster, no I/O.

One module per topic; every weekly function is point in time (it only reads rows known by the week's close)
and returns a frame that matches its table, declared in ``pipelines.schemas`` (the one registry of tables). Definitions and
parameters are written up in ``METHODOLOGY.md``.
"""
