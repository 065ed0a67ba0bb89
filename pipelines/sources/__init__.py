"""One httpx client per API, on a shared HTTP layer (rate limits, retries, clear errors)."""
