"""Pure weekly market maths (issue 4): plain frames in, frames out, no Dagster, no I/O.

One module per topic. Every weekly function takes a weekly partition key (the Monday, ``YYYY-MM-DD``) and only
uses rows known by that week's close (see ``pipelines.metrics.pit``). The output schema of every weekly table is
declared in its module with ``pipelines.schemas.Table`` and registered in ``pipelines.schemas.TABLES``.
Definitions, parameters and the reasons for them are in ``METHODOLOGY.md`` at the repository root.
"""
