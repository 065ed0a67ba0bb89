"""The emulator: deterministic, shaped like 2025, and in CoinGecko's real formats and limits."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import numpy as np

from pipelines.emulator.market import build_market, hour_index
from pipelines.emulator.server import MarketEmulator
from pipelines.metrics.sectors import DEFAULT_INDICES
from pipelines.metrics.universe import EXCLUDED_CATEGORIES
from pipelines.pulls.coingecko import MEMBERSHIP_CATEGORIES
from tests.conftest import TEST_NOW


def _h(day: str) -> int:
    return hour_index(datetime.fromisoformat(day).replace(tzinfo=timezone.utc))


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    params = {"vs_currency": "usd", "from": 1735776000, "to": 1764547200}
    bodies = []
    for seed in (7, 7, 8):
        build_market.cache_clear()
        with MarketEmulator(seed=seed, now=TEST_NOW) as emu:
            base = emu.base_urls()["COINGECKO_BASE_URL"]
            chart = httpx.get(f"{base}/coins/bitcoin/market_chart/range", params=params).content
            markets = httpx.get(
                f"{base}/coins/markets", params={"vs_currency": "usd", "per_page": 250}
            ).content
            bodies.append(chart + markets)
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_universe_has_coins_ids_and_excluded_kinds() -> None:
    m = build_market()
    assert len(m.coins) >= 150
    assert len({c.id for c in m.coins}) == len(m.coins)
    cats = {cat for c in m.coins for cat in c.categories}
    # every category the pipeline pulls membership of: the report's sectors and the excluded kinds
    for needed in MEMBERSHIP_CATEGORIES:
        assert needed in cats


def test_membership_pulled_is_every_sector_category_and_excluded_kinds_only() -> None:
    """The registry's categories are pulled for the sector indices and the universe's exclusions: a category an
    index is made of and not pulled would leave that index empty, one neither uses costs a request a run."""
    sectors = {c for spec in DEFAULT_INDICES for c in spec.categories or ()}
    assert len(MEMBERSHIP_CATEGORIES) == len(set(MEMBERSHIP_CATEGORIES))
    assert sectors <= set(MEMBERSHIP_CATEGORIES)
    assert set(MEMBERSHIP_CATEGORIES) - sectors <= EXCLUDED_CATEGORIES


def test_market_path_shape() -> None:
    m = build_market()
    total = m.total_mcap
    # a rally into early October, the highest level of 2025 so far
    assert total[_h("2025-10-06")] > 4.1e12
    peak = int(np.argmax(total[: _h("2025-10-10")]))
    assert _h("2025-09-01") < peak  # the year's high so far comes in the autumn rally
    # the 10-11 October crash: alts fall much further than BTC
    before, after = _h("2025-10-10T20:00"), _h("2025-10-11T00:00")
    btc = m.price[after, 0] / m.price[before, 0] - 1
    small = [i for i, c in enumerate(m.coins) if c.kind == "free" and m.mcap[before, i] < 1e9]
    alt = np.nanmedian(m.price[after, small] / m.price[before, small] - 1)
    assert alt < btc - 0.05
    # November: below $3T for the first time since April
    daily = total[::24]
    below = np.where(daily < 3e12)[0]
    assert total[_h("2025-11-24")] < 3e12 < total[_h("2025-11-17")]
    earlier = below[below < _h("2025-11-17") // 24]
    assert (datetime(2025, 1, 1) + np.timedelta64(int(earlier.max()), "D").astype(object)).month == 4


def test_top_coins_are_bound_more_tightly_than_small_ones() -> None:
    m = build_market()
    d = slice(_h("2025-06-01"), _h("2025-10-01"), 24)
    r = np.diff(np.log(m.price[d]), axis=0)
    caps = m.mcap[_h("2025-06-01")]
    free = [i for i, c in enumerate(m.coins) if c.kind == "free" and not np.isnan(caps[i])]
    order = sorted(free, key=lambda i: -caps[i])
    top, small = order[:10], order[60:100]

    def avg_corr(idx: list[int]) -> float:
        c = np.corrcoef(r[:, idx].T)
        return float(c[np.triu_indices(len(idx), 1)].mean())

    assert avg_corr(top) > avg_corr(small) + 0.1


def test_markets_paging_caps_and_category(emulator: MarketEmulator) -> None:
    base = emulator.base_urls()["COINGECKO_BASE_URL"]
    page = httpx.get(f"{base}/coins/markets", params={"vs_currency": "usd", "per_page": 1000}).json()
    assert len(page) == min(250, len(build_market().coins))  # per_page=1000 is capped at 250
    p1 = httpx.get(f"{base}/coins/markets", params={"vs_currency": "usd", "per_page": 100, "page": 1}).json()
    p2 = httpx.get(f"{base}/coins/markets", params={"vs_currency": "usd", "per_page": 100, "page": 2}).json()
    assert p1[0]["market_cap_rank"] == 1 and p2[0]["market_cap_rank"] == 101
    assert [r["market_cap"] for r in p1] == sorted((r["market_cap"] for r in p1), reverse=True)
    l2 = httpx.get(f"{base}/coins/markets", params={"vs_currency": "usd", "category": "layer-2"}).json()
    assert l2 and {"arbitrum", "optimism"} <= {r["id"] for r in l2}
    assert httpx.get(f"{base}/coins/markets", params={"per_page": 10}).status_code == 400
    extra = httpx.get(
        f"{base}/coins/markets", params={"vs_currency": "usd", "price_change_percentage": "1h,7d"}
    ).json()
    assert "price_change_percentage_7d_in_currency" in extra[0] and "price_change_percentage_24h" in extra[0]


def test_market_chart_granularity_rules(emulator: MarketEmulator) -> None:
    base = emulator.base_urls()["COINGECKO_BASE_URL"]
    url = f"{base}/coins/ethereum/market_chart/range"
    day = 86400
    t0 = int(datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp())
    daily = httpx.get(url, params={"vs_currency": "usd", "from": t0, "to": t0 + 120 * day}).json()
    assert len(daily["prices"]) == 121
    assert all(p[0] % 86_400_000 == 0 for p in daily["prices"])  # stamped 00:00 UTC, in ms
    hourly = httpx.get(url, params={"vs_currency": "usd", "from": t0, "to": t0 + 10 * day}).json()
    assert 239 <= len(hourly["prices"]) <= 241
    assert any(p[0] % 3_600_000 for p in hourly["prices"])  # not exactly on the hour
    now = int(TEST_NOW.timestamp())
    fine = httpx.get(url, params={"vs_currency": "usd", "from": now - day, "to": now}).json()
    assert len(fine["prices"]) == 288  # 1 day ending now: 5-minutely
    iso = httpx.get(url, params={"vs_currency": "usd", "from": "2025-06-01", "to": "2025-06-11"}).json()
    assert iso["prices"] == hourly["prices"]
    assert set(daily) == {"prices", "market_caps", "total_volumes"}


def test_demo_plan_history_window_error() -> None:
    with MarketEmulator(now=datetime(2026, 6, 1, tzinfo=timezone.utc), plan="demo") as emu:
        base = emu.base_urls()["COINGECKO_BASE_URL"]
        r = httpx.get(
            f"{base}/coins/bitcoin/market_chart/range",
            params={"vs_currency": "usd", "from": 1735776000, "to": 1740000000},
        )
        assert r.status_code == 401
        assert r.json()["error"]["status"]["error_code"] == 10012
        recent = httpx.get(
            f"{base}/coins/bitcoin/market_chart/range",
            params={"vs_currency": "usd", "from": 1762000000, "to": 1763000000},
        )  # Nov 2025
        assert recent.status_code == 200


def test_unknown_coin_and_rate_limit_bodies() -> None:
    with MarketEmulator(now=TEST_NOW, rate_limits=True, coingecko_calls_per_minute=3) as emu:
        base = emu.base_urls()["COINGECKO_BASE_URL"]
        assert (
            httpx.get(
                f"{base}/coins/nope/market_chart/range", params={"vs_currency": "usd", "from": 1, "to": 2}
            ).status_code
            == 404
        )
        codes = [httpx.get(f"{base}/ping").status_code for _ in range(4)]
        assert codes[-1] == 429
        assert httpx.get(f"{base}/ping").json()["status"]["error_code"] == 429


def test_binds_loopback_on_an_ephemeral_port(emulator: MarketEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    assert not emulator.url.endswith(":0")


def _block_bar(hb, h: int, hours: int) -> list:
    """The reference for the emulator's bars: the bar of ``hours`` hours opening at hour ``h``, aggregated from its
    slice of the hourly rows on its own, in the REST format."""
    from pipelines.emulator.binance import HOUR_MS, START_MS, dec

    blk = hb[h : h + hours]
    t = START_MS + h * HOUR_MS
    return [
        t,
        dec(blk[0, 0]),
        dec(blk[:, 1].max()),
        dec(blk[:, 2].min()),
        dec(blk[-1, 3]),
        dec(blk[:, 4].sum(), 3),
        t + hours * HOUR_MS - 1,
        dec(blk[:, 5].sum(), 5),
        int(blk[:, 6].sum()),
        dec(blk[:, 7].sum(), 3),
        dec(blk[:, 8].sum(), 5),
        "0",
    ]


def test_hourly_bars_are_the_hours_rows_as_a_block_of_one_hour_gives_them() -> None:
    """The hourly bars, formatted a column at a time, are the text the block aggregation gives each hour (before
    the coin lists, across the listing and at the last hour), and a day bar is its 24 hours aggregated."""
    from pipelines.emulator.binance import HOURS, bars, hourly_bars

    hb = hourly_bars(20250101, 71, "spot")
    listed = [h for h in range(HOURS) if hb[h, 0] == hb[h, 0]]  # NaN before the listing
    assert 0 < listed[0] < HOURS - 2000  # the range crosses the listing
    for lo, hi in ((0, listed[0] + 500), (HOURS - 500, HOURS - 1)):
        want = [_block_bar(hb, h, 1) for h in listed if lo <= h <= hi]
        assert bars(20250101, 71, "spot", 1, lo, hi) == want and len(want) > 400
    assert bars(20250101, 71, "spot", 24, HOURS - 48, HOURS - 47) == [_block_bar(hb, HOURS - 48, 24)]


def test_block_bars_are_each_blocks_aggregation() -> None:
    """Bars aggregated for all of them at once are the text ``_block_bar`` (one bar's slice of hours on its own)
    gives each one, on every bar of a coin's history (across its listing) and of every interval, an hour included."""
    from pipelines.emulator.binance import HOURS, INTERVAL_HOURS, bars, hourly_bars

    for coin, venue in ((71, "spot"), (3, "fapi")):
        hb = hourly_bars(20250101, coin, venue)
        for hours in sorted(set(INTERVAL_HOURS.values())):
            want = [
                _block_bar(hb, h, hours) for h in range(0, HOURS - hours + 1, hours) if hb[h, 0] == hb[h, 0]
            ]
            assert bars(20250101, coin, venue, hours, 0, HOURS - 1) == want and len(want) > 600


def test_a_kline_page_is_the_first_bars_of_the_whole_range() -> None:
    """A page (``limit``) stops building bars once it has them: the same bars as building the whole range and
    keeping its first ``limit`` (before the coin lists, across the listing, hourly and daily)."""
    from pipelines.emulator.binance import HOURS, bars

    for hours, lo, limit in (
        (1, 0, 1500),
        (1, 4000, 1500),
        (24, 0, 1500),
        (24, 1000, 7),
        (1, HOURS - 10, 1500),
    ):
        whole = bars(20250101, 3, "fapi", hours, lo, HOURS - 1)
        assert bars(20250101, 3, "fapi", hours, lo, HOURS - 1, limit) == whole[:limit]
