"""CoinGecko: the registry snapshot, the daily charts, the market's total and the clean daily tables."""
