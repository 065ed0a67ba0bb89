"""Raw recordings to clean tables, per source, and the estimates for days beyond a plan's window."""
