"""The weekly tables: one asset shape (``shape.weekly_table_asset``), every table point in time."""
