"""Hand-made weekly tables for the narrative tests, built through each table's registered schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from pipelines.narrative.data import BY_NAME

WEEK = date(2025, 11, 17)
WEEKS = [WEEK - timedelta(days=7 * i) for i in range(7, -1, -1)]  # 8 weeks ending with WEEK


def table(name: str, rows: list[dict]) -> pl.DataFrame:
    t = BY_NAME[name]
    if not rows:
        return pl.from_arrow(t.arrow_schema.empty_table())
    df = pl.DataFrame(rows, infer_schema_length=None)
    # The key is unique per partition (week): conform each week on its own, as the lake writer does.
    parts = [pl.from_arrow(t.conform(g)) for _, g in df.group_by("week_start", maintain_order=True)]
    return pl.concat(parts)


SHARE = 0.995  # the top 100's share of the market's total in the hand-made weeks (their tracked coins are the top 100)
SHARE_AT = datetime(2025, 11, 25, 6, tzinfo=UTC)


def market_total(start: float, end: float) -> dict:
    """The weekly_total_market_cap columns of the market's total: both ends estimated with one measured share."""
    a, b = start / SHARE, end / SHARE
    return {
        "market_total_open_usd": a,
        "market_total_close_usd": b,
        "market_total_change_pct": (b / a - 1) * 100,
        "market_total_low_usd": min(a, b),
        "market_total_high_usd": max(a, b),
        "basis_open": "estimated",
        "basis_close": "estimated",
        "share_open": SHARE,
        "share_close": SHARE,
        "share_source_open": "measured",
        "share_source_close": "measured",
        "share_observed_at_open": SHARE_AT,
        "share_observed_at_close": SHARE_AT,
        "top_coins_open": 100,
        "top_coins_close": 100,
    }


def frames(names: tuple[str, str] = ("Bitcoin", "btc")) -> dict[str, pl.DataFrame]:
    out: dict[str, list[dict]] = {k: [] for k in BY_NAME}
    for i, w in enumerate(WEEKS):
        last = w == WEEK
        start = 3.6e12 - 0.08e12 * i
        end = 2.95e12 if last else start - 0.08e12
        out["weekly_market_summary"].append(
            {
                "week_start": w,
                "week_end": w + timedelta(7),
                "total_mcap_start_usd": start,
                "total_mcap_end_usd": end,
                "total_mcap_change_pct": (end / start - 1) * 100,
                "btc_return_pct": -8.3 if last else -1.0,
                "eth_return_pct": -11.2 if last else -1.5,
                "coins_start": 190,
                "coins_end": 190,
                "last_close_day": w + timedelta(6),
                "total_mcap_start_common_usd": start,
                "total_mcap_end_common_usd": end,
                "total_mcap_change_like_for_like_pct": (end / start - 1) * 100,
                "coins_common": 190,
            }
        )
        out["weekly_total_market_cap"].append(
            {
                "week_start": w,
                "open_day": w - timedelta(1),
                "close_day": w + timedelta(6),
                "mcap_open_usd": start,
                "mcap_close_usd": end,
                "mcap_low_usd": min(start, end),
                "mcap_high_usd": max(start, end),
                "change_pct": (end / start - 1) * 100,
                "coins_open": 190,
                "coins_close": 190,
                "coins_carried_open": 0,
                "coins_carried_close": 0,
                **market_total(start, end),
            }
        )
        out["weekly_crypto_rank"].append(
            {
                "week_start": w,
                "crypto_rank": 7 if i >= 5 else 3,
                "assets_ranked": 7,
                "is_worst": i >= 5,
                "worst_streak_weeks": max(0, i - 4),
            }
        )
        out["weekly_leverage"].append(
            {
                "week_start": w,
                "funding_8h_mean": -0.00002 if last else 0.00008,
                "funding_annualized_mean": (-0.00002 if last else 0.00008) * 3 * 365,
                "funding_weighting": "oi",
                "negative_days": 3 if last else 0,
                "first_negative_day": w + timedelta(3) if last else None,
                "first_negative_since": date(2025, 10, 26) if last else None,
                "longest_negative_run_days": 3 if last else 0,
                "longest_negative_run_since": date(2025, 10, 12) if last else None,
                "oi_open_usd": 150e9,
                "oi_close_usd": 135e9 if last else 200e9 - 8e9 * i,
                "oi_change_pct": -10.0 if last else -3.0,
                "oi_ref_day": date(2025, 10, 6),
                "oi_ref_usd": 230e9,
                "funding_settlements": 63,
                "funding_oi_share": 1.0,
                "funding_venues_without_oi": None,
                "oi_open_common_usd": 150e9,
                "oi_close_common_usd": 135e9 if last else 200e9 - 8e9 * i,
                "oi_change_like_for_like_pct": -10.0 if last else -3.0,
                "oi_series_open": 3,
                "oi_series_close": 3,
                "oi_series_common": 3,
                "oi_venues_open": "binance, bybit, okx",
                "oi_venues_close": "binance, bybit, okx",
                "oi_venues_common": "binance, bybit, okx",
                "oi_missing_at_open": None,
                "oi_missing_at_close": None,
                "coverage_changed": False,
                "oi_ref_close_usd": 135e9 if last else 200e9 - 8e9 * i,
                "oi_ref_missing": None,
                "oi_vs_ref_pct": (135e9 / 230e9 - 1) * 100 if last else -5.0,
                "long_short_ratio_mean": 0.94,
                "leverage_skew": "short" if last else "neutral",
            }
        )
        out["weekly_volume"].append(
            {
                "week_start": w,
                "spot_volume_usd": 210e9,
                "spot_volume_prev_usd": 215e9,
                "spot_change_pct": -2.3,
                "perp_volume_usd": 380e9,
                "perp_volume_prev_usd": 450e9,
                "perp_change_pct": -15.6,
                "perp_to_spot": 1.81,
                "perp_to_spot_prev": 2.09,
            }
        )
        out["weekly_btc_volatility"].append(
            {
                "week_start": w,
                "rv7_hourly_pct": 66.1 if last else 40.0 + i,
                "rv7_hourly_prev_pct": 48.0,
                "rv7_change_pts": 18.1,
                "rv30_hourly_pct": 50.2,
                "rv7_daily_pct": 48.3,
                "rv30_daily_pct": 45.0,
                "rv7_highest_since": date(2025, 4, 9) if last else None,
            }
        )
        for b, corr, btc, ret, dec in (
            ("1-10", 0.78, 0.81, -9.8, False),
            ("11-50", 0.61, 0.66, -8.0, False),
            ("51-100", 0.41, 0.45, -5.1, True),
        ):
            out["weekly_correlation_buckets"].append(
                {
                    "week_start": w,
                    "bucket": b,
                    "coins": 10 if b == "1-10" else 40 if b == "11-50" else 50,
                    "avg_pairwise_corr": corr - (0 if last else 0.01 * i),
                    "avg_corr_to_btc": btc,
                    "ew_return_pct": ret,
                    "avg_pairwise_corr_change": 0.02,
                    "avg_corr_to_btc_change": -0.14 if b == "51-100" else 0.01,
                    "decoupling": dec and last,
                }
            )
        for idx, ret in (
            ("l2", -14.9),
            ("gaming", -12.0),
            ("depin", -11.4),
            ("ai", -10.5),
            ("core_l1", -7.0),
            ("top30", -7.2),
            ("mid_caps", -9.0),
            ("small_caps", -6.0),
        ):
            out["weekly_index_returns"].append(
                {
                    "week_start": w,
                    "index": idx,
                    "constituents": 12,
                    "max_weight": 0.25,
                    "return_pct": ret,
                    "prev_return_pct": -1.0,
                    "members_close": 12,
                    "members_carried": 0,
                    "members_dropped": 0,
                }
            )
        for a, ret, rank in (
            ("crypto", -8.4, 7),
            ("sp500", -1.9, 4),
            ("nasdaq", -2.7, 5),
            ("gold", 0.5, 2),
            ("treasuries", 0.9, 1),
            ("dollar", 0.2, 3),
            ("yen", -3.1, 6),
            ("btc", -8.3, None),
        ):
            out["weekly_cross_asset"].append(
                {
                    "week_start": w,
                    "asset": a,
                    "series": a,
                    "kind": "price",
                    "open_date": w - timedelta(3),
                    "close_date": w + timedelta(4),
                    "open_value": 100.0,
                    "close_value": 100.0 + ret,
                    "return_pct": ret,
                    "rank": rank,
                    "is_worst": rank == 7 if rank else None,
                }
            )
        for m, sid, v, d, st, unit in (
            ("payrolls_change_k", "PAYEMS", 119.0, date(2025, 9, 1), "ok", "k"),
            ("unemployment_rate", "UNRATE", None, date(2025, 10, 1), "missing", "percent"),
            ("ust_2y", "DGS2", 3.51, w + timedelta(4), "ok", "percent"),
            ("ust_10y", "DGS10", 4.06, w + timedelta(4), "ok", "percent"),
            ("curve_10y_2y", "DGS10-DGS2", 0.55, w + timedelta(4), "ok", "pp"),
            ("japan_10y", "IRLTLT01JPM156N", 1.70, date(2025, 10, 1), "ok", "percent"),
            ("usd_jpy", "DEXJPUS", 156.4, w + timedelta(4), "ok", "yen"),
        ):
            out["weekly_macro"].append(
                {
                    "week_start": w,
                    "metric": m,
                    "series_id": sid,
                    "value": v,
                    "observation_date": d,
                    "status": st,
                    "unit": unit,
                }
            )
        # bills price fewer cuts each week: -22 bp seven weeks back, -8.2 bp this week (+3 bp on the week)
        implied, prev = -8.2 if last else -22.0 + 2.0 * (7 - i), -11.2 if last else -24.0 + 2.0 * (7 - i)
        out["weekly_rate_expectations"].append(
            {
                "week_start": w,
                "bill_series": "DTB3",
                "funds_series": "DFF",
                "observation_date": w + timedelta(4),
                "bill_discount_pct": 3.77,
                "bill_overnight_pct": 3.87 + implied / 100,
                "funds_rate_pct": 3.87,
                "implied_change_bp": implied,
                "cuts_priced": -implied / 25,
                "status": "ok",
                "prev_observation_date": w - timedelta(3),
                "prev_implied_change_bp": prev,
                "change_bp": implied - prev,
            }
        )
        for k in range(1, 4):
            out["weekly_movers"].append(
                {
                    "week_start": w,
                    "kind": "gainer",
                    "position": k,
                    "coin_id": f"g{k}",
                    "symbol": names[1] if k == 1 else f"g{k}",
                    "name": names[0] if k == 1 else f"Gainer {k}",
                    "rank_start": 10 + k,
                    "return_pct": 30.0 - k,
                }
            )
            out["weekly_movers"].append(
                {
                    "week_start": w,
                    "kind": "loser",
                    "position": k,
                    "coin_id": f"l{k}",
                    "symbol": f"l{k}",
                    "name": f"Loser {k}",
                    "rank_start": 20 + k,
                    "return_pct": -30.0 + k,
                }
            )
        for k in range(1, 4):
            out["weekly_universe"].append(
                {
                    "week_start": w,
                    "rank": k,
                    "coin_id": f"c{k}",
                    "symbol": f"c{k}",
                    "name": f"Coin {k}",
                    "market_cap_open_usd": 1e11 / k,
                    "price_open_usd": 10.0,
                }
            )
    out["weekly_mcap_crossings"].append(
        {
            "week_start": WEEK,
            "level_usd": 3e12,
            "direction": "down",
            "crossed_on": WEEK + timedelta(3),
            "last_other_side_day": date(2025, 4, 21),
        }
    )
    return {k: table(k, v) for k, v in out.items()}


def frames_with_mcap_coverage_change() -> dict[str, pl.DataFrame]:
    """``frames()`` with coverage moving the week's market-cap change: 170 coins compared at both ends (+1.0% like
    for like) against 171 at the close, so the printed change and the plain totals' change differ."""
    fr = frames()
    cur = pl.col("week_start") == WEEK
    fr["weekly_market_summary"] = fr["weekly_market_summary"].with_columns(
        pl.when(cur)
        .then(pl.lit(1.0))
        .otherwise(pl.col("total_mcap_change_like_for_like_pct"))
        .alias("total_mcap_change_like_for_like_pct"),
        pl.when(cur)
        .then(pl.lit(170, dtype=pl.Int32))
        .otherwise(pl.col("coins_common"))
        .alias("coins_common"),
        pl.when(cur).then(pl.lit(171, dtype=pl.Int32)).otherwise(pl.col("coins_end")).alias("coins_end"),
    )
    return fr


def write_weeks(wh, fr: dict[str, pl.DataFrame], skip: tuple[str, ...] = ()):
    """The weekly tables of ``fr`` written into ``wh``, a partition per week (``weekly_mcap_crossings`` even
    when empty); ``skip``: tables left out."""
    for name, df in fr.items():
        if name in skip:
            continue
        for w in WEEKS:
            part = df.filter(pl.col("week_start") == w)
            if part.height or name == "weekly_mcap_crossings":
                wh.write_partition(BY_NAME[name], w.isoformat(), part)
    return wh
