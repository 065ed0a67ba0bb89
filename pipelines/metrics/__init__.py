"""Pure maths over the clean tables (polars / DuckDB): no Dagster, no I/O."""
