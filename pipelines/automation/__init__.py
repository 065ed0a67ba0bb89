"""When things run: schedules, sensors, freshness checks and concurrency pools."""
