"""A small synthetic lake for the weekly assets: every clean table they read, as known at an instant ``upto``.

The declarations below restate the clean derivative and macro tables' columns, so a change of the real tables'
columns (``pipelines.schemas``) fails here instead of silently changing what the synthetic lake writes.
Every table is generated for the whole period from one seeded random state and then cut at ``upto`` by the
time each row becomes known, so the lake at a later instant extends the lake at an earlier one exactly as
real data landing later would.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

import tests._week_pipeline as pipe
from pipelines.schemas import COIN_DAILY, COIN_REGISTRY, TABLES, Table
from pipelines.warehouse import Warehouse


def _table(name: str, *columns: str) -> Table:
    """The real clean table (declared in pipelines.schemas); its columns must be ``columns``, in this order."""
    table = TABLES[name]
    assert [c.name for c in table.columns] == list(columns), f"{name}: columns changed"
    return table


FUNDING_RATES = _table(
    "funding_rates", "exchange", "symbol", "funding_time", "funding_rate", "interval_hours", "raw_file"
)
OPEN_INTEREST = _table("open_interest", "exchange", "symbol", "ts", "oi_usd", "raw_file")
LONG_SHORT_RATIO = _table(
    "long_short_ratio", "exchange", "symbol", "ts", "long_account", "short_account", "raw_file"
)
BTC_HOURLY = _table("btc_hourly", "ts", "open", "high", "low", "close", "volume", "quote_volume", "raw_file")
PERP_VOLUME_DAILY = _table("perp_volume_daily", "exchange", "symbol", "quote_volume_usd", "raw_file")
MACRO_OBSERVATIONS = _table("macro_observations", "series_id", "date", "value", "pulled_at", "raw_file")
# the clean derivative tables (built from the raw derivative pulls) and, with the macro table (from FRED), all the
# clean tables that are not CoinGecko's
DERIVATIVE_TABLES = (FUNDING_RATES, OPEN_INTEREST, LONG_SHORT_RATIO, BTC_HOURLY, PERP_VOLUME_DAILY)
CLEAN_TABLES = (*DERIVATIVE_TABLES, MACRO_OBSERVATIONS)

FIRST_DAY = date(2025, 2, 10)
LAST_DAY = date(2025, 5, 25)
N_ALTS = 116
CATS = [
    "layer-1",
    "layer-2",
    "gaming",
    "depin",
    "artificial-intelligence",
    "decentralized-finance-defi",
    "meme-token",
]
SNAPSHOTS = {
    "2025-04-01T000000Z": datetime(2025, 4, 1, tzinfo=UTC),
    "2025-05-10T000000Z": datetime(2025, 5, 10, tzinfo=UTC),
}
DAILY_FRED = {
    "SP500": 5600.0,
    "NASDAQCOM": 17500.0,
    "DGS10": 4.3,
    "DGS2": 3.9,
    "DTWEXBGS": 125.0,
    "DEXJPUS": 145.0,
}
MONTHLY_FRED = {"PAYEMS": 159000.0, "UNRATE": 4.1, "IRLTLT01JPM156N": 1.4}
HOLIDAY = date(2025, 4, 18)  # Good Friday: FRED leaves equities blank


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _days() -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


def coins() -> pl.DataFrame:
    ids = ["bitcoin", "ethereum", "tether", "pax-gold"] + [f"alt{i:03d}" for i in range(N_ALTS)]
    cats = [["layer-1"], ["layer-1", "smart-contract-platform"], ["stablecoins"], ["tokenized-gold"]]
    cats += [[CATS[i % len(CATS)]] + (["layer-1"] if i % 11 == 0 else []) for i in range(N_ALTS)]
    mcap0 = [1.7e12, 3.0e11, 1.4e11, 8e8] + [9e10 / (i + 1) ** 1.05 for i in range(N_ALTS)]
    price0 = [85000.0, 2000.0, 1.0, 3000.0] + [float(1 + i % 17) for i in range(N_ALTS)]
    return pl.DataFrame({"coin_id": ids, "categories": cats, "mcap0": mcap0, "price0": price0})


def build(seed: int = 7) -> dict[str, pl.DataFrame]:
    """Every row of every table over FIRST_DAY..LAST_DAY, with ``known_at`` (when the row becomes known)."""
    rng = np.random.default_rng(seed)
    days = _days()
    c = coins()
    n, t = c.height, len(days)
    market = rng.normal(0.0, 0.03, t)
    market[65:72] -= 0.015  # a sell-off in the week of 2025-04-14 (days 65..71 from 2025-02-10)
    beta = np.r_[1.0, 1.2, 0.0, 0.0, rng.uniform(0.5, 1.5, N_ALTS)]
    idio = rng.normal(0.0, 0.04, (t, n)) * np.r_[0.3, 0.5, 0.0, 0.2, np.ones(N_ALTS)]
    gold = rng.normal(0.0005, 0.008, t)
    rets = market[:, None] * beta[None, :] + idio
    rets[:, 3] = gold
    price = c["price0"].to_numpy()[None, :] * np.exp(np.cumsum(rets, axis=0))
    price[:, 2] = 1.0 + rng.normal(0, 0.0005, t)
    supply = c["mcap0"].to_numpy() / c["price0"].to_numpy()
    rows = []
    for i, d in enumerate(days):
        for j, cid in enumerate(c["coin_id"].to_list()):
            if cid == "alt115" and d > date(2025, 4, 16):
                continue  # a coin that vanishes mid-week
            mc = price[i, j] * supply[j]
            rows.append(
                (
                    d,
                    cid,
                    cid[:4],
                    cid.title(),
                    float(price[i, j]),
                    float(mc),
                    float(mc * 0.04 * (1 + 0.3 * rng.random())),
                    _midnight(d + timedelta(days=1)),
                    f"raw/cg/{cid}.json",
                )
            )
    coin_daily = pl.DataFrame(
        rows,
        orient="row",
        schema=[
            "date",
            "coin_id",
            "symbol",
            "name",
            "price_usd",
            "market_cap_usd",
            "volume_24h_usd",
            "observed_at",
            "raw_file",
        ],
    )
    coin_daily = coin_daily.with_columns(known_at=pl.col("observed_at"))

    reg = []
    for snap, pulled in SNAPSHOTS.items():
        for j, (cid, cats) in enumerate(c.select("coin_id", "categories").iter_rows()):
            if snap.startswith("2025-05") and cid == "alt003":
                cats = [
                    "usd-stablecoin"
                ]  # a later snapshot reclassifies a coin: earlier weeks must not change
            reg.append((snap, cid, cid[:4], cid.title(), j + 1, float(c["mcap0"][j]), cats, pulled))
    registry = pl.DataFrame(
        reg,
        orient="row",
        schema={
            "snapshot": pl.String,
            "coin_id": pl.String,
            "symbol": pl.String,
            "name": pl.String,
            "market_cap_rank": pl.Int32,
            "market_cap_usd": pl.Float64,
            "categories": pl.List(pl.String),
            "pulled_at": pl.Datetime("us", "UTC"),
        },
    ).with_columns(known_at=pl.col("pulled_at"))

    hours = int((_midnight(LAST_DAY) - _midnight(FIRST_DAY)).total_seconds() // 3600) + 24
    hr = rng.normal(0, 0.006, hours)
    hr[(65 * 24) : (72 * 24)] *= 2.0  # volatility rises in the sell-off week
    close = 85000.0 * np.exp(np.cumsum(hr))
    ts = [_midnight(FIRST_DAY) + timedelta(hours=h) for h in range(hours)]
    btc = pl.DataFrame(
        {
            "ts": ts,
            "open": np.r_[85000.0, close[:-1]],
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": np.full(hours, 100.0),
            "quote_volume": close * 100.0,
            "raw_file": ["raw/binance/klines.json"] * hours,
        }
    ).with_columns(date=pl.col("ts").dt.date(), known_at=pl.col("ts") + pl.duration(hours=1))

    fund, oi, ls = [], [], []
    for e, ex in enumerate(("binance", "bybit")):
        for k, sym in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
            for s in range(t * 3):
                at = _midnight(FIRST_DAY) + timedelta(hours=8 * s)
                rate = 0.0001 + 0.00015 * np.sin(s / 9.0 + k) + rng.normal(0, 0.00003)
                fund.append((ex, sym, at, float(rate), 8, f"raw/{ex}/funding.json"))
                oi.append(
                    (
                        ex,
                        sym,
                        at,
                        float((2e10 / (k + 1)) * (1 + 0.2 * np.sin(s / 30.0)) * (1 + e)),
                        f"raw/{ex}/oi.json",
                    )
                )
                la = float(0.5 + 0.1 * np.sin(s / 7.0 + e))
                ls.append((ex, sym, at, la, 1 - la, f"raw/{ex}/ls.json"))
    funding = pl.DataFrame(
        fund,
        orient="row",
        schema=["exchange", "symbol", "funding_time", "funding_rate", "interval_hours", "raw_file"],
    )
    funding = funding.with_columns(date=pl.col("funding_time").dt.date(), known_at=pl.col("funding_time"))
    open_interest = pl.DataFrame(oi, orient="row", schema=["exchange", "symbol", "ts", "oi_usd", "raw_file"])
    open_interest = open_interest.with_columns(date=pl.col("ts").dt.date(), known_at=pl.col("ts"))
    long_short = pl.DataFrame(
        ls, orient="row", schema=["exchange", "symbol", "ts", "long_account", "short_account", "raw_file"]
    )
    long_short = long_short.with_columns(date=pl.col("ts").dt.date(), known_at=pl.col("ts"))

    pv = [
        (d, ex, sym, float(1e10 * (1 + rng.random())), f"raw/{ex}/perp_volume.json")
        for d in days
        for ex in ("binance", "bybit")
        for sym in ("BTCUSDT", "ETHUSDT")
    ]
    perp_volume = pl.DataFrame(
        pv, orient="row", schema=["date", "exchange", "symbol", "quote_volume_usd", "raw_file"]
    )
    perp_volume = perp_volume.with_columns(
        known_at=pl.col("date").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1)
    )

    mac = []
    for sid, v0 in DAILY_FRED.items():
        level = v0
        for d in days:
            step = rng.normal(0, 0.01)
            level = level + step * 0.1 if sid.startswith("DGS") else level * (1 + step)
            if d.weekday() < 5:
                blank = d == HOLIDAY and sid in ("SP500", "NASDAQCOM")
                mac.append((sid, d, None if blank else float(level), _midnight(d + timedelta(days=1))))
    # the bill (discount basis, weekdays) and the effective fed funds rate (every calendar day), without random
    # draws so the other series keep their values: bills price a cut drawing closer week by week
    for k, d in enumerate(days):
        if d.weekday() < 5:
            mac.append(("DTB3", d, round(4.28 - 0.002 * k, 2), _midnight(d + timedelta(days=1))))
        mac.append(("DFF", d, 4.33, _midnight(d + timedelta(days=1))))
    for sid, v0 in MONTHLY_FRED.items():
        for m, month in enumerate((date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1), date(2025, 4, 1))):
            v = v0 + (150.0 * m if sid == "PAYEMS" else 0.05 * m)
            mac.append((sid, month, float(v), _midnight(month + timedelta(days=35))))
    macro = pl.DataFrame(
        mac,
        orient="row",
        schema={
            "series_id": pl.String,
            "date": pl.Date,
            "value": pl.Float64,
            "known_at": pl.Datetime("us", "UTC"),
        },
    )
    macro = macro.with_columns(series=pl.col("series_id"), raw_file=pl.lit("raw/fred/series.csv"))
    return {
        "coin_daily": coin_daily,
        "coin_registry": registry,
        "btc_hourly": btc,
        "funding_rates": funding,
        "open_interest": open_interest,
        "long_short_ratio": long_short,
        "perp_volume_daily": perp_volume,
        "macro_observations": macro,
    }


TABLE_OF = {t.name: t for t in (COIN_DAILY, COIN_REGISTRY, *CLEAN_TABLES)}


def write_lake(
    root: Path,
    world: dict[str, pl.DataFrame],
    upto: datetime,
    skip: tuple[str, ...] = (),
    transform: dict | None = None,
) -> Warehouse:
    """Write every partition of every table as known at ``upto`` (a partition holds only the rows known by then,
    and macro series are rewritten whole, as a new pull of a FRED series would be)."""
    wh = Warehouse(root)
    for name, frame in world.items():
        if name in skip:
            continue
        table = TABLE_OF[name]
        known = frame.filter(pl.col("known_at") <= upto)
        if name == "macro_observations":
            known = known.with_columns(pulled_at=pl.lit(upto).cast(pl.Datetime("us", "UTC")))
        if transform and name in transform:
            known = transform[name](known)
        for (key,), part in known.partition_by(table.partition_by, as_dict=True).items():
            part = part.drop(table.partition_by, "known_at")
            wh.write_partition(table, str(key), part.sort(part.columns[:3]))
    wh.refresh_catalog()
    return wh


def falling_lake(root: Path, macro_observations=None) -> Warehouse:
    """The world's ``coin_daily`` and ``macro_observations`` as known on 2025-06-01, every market cap falling 3% a
    day from ``FIRST_DAY`` (19% a week: crypto is the worst major class every week it is ranked), the
    observations passed through ``macro_observations`` (a function of the frame) when given."""
    assert FIRST_DAY.weekday() == 0  # the world starts on a Monday: its weeks are the report's

    def falling(df: pl.DataFrame) -> pl.DataFrame:
        days = (pl.col("date") - pl.lit(FIRST_DAY)).dt.total_days()
        return df.with_columns(pl.col("market_cap_usd") * (-0.03 * days).exp())

    world = build()
    transform = {"coin_daily": falling}
    if macro_observations is not None:
        transform["macro_observations"] = macro_observations
    return write_lake(
        root,
        {k: world[k] for k in ("coin_daily", "macro_observations")},
        datetime(2025, 6, 1, tzinfo=UTC),
        transform=transform,
    )


# The week the pipeline-level tests (mutations, second derivation) report on, and the weeks before it whose
# weekly tables its report reads.
WEEK = "2025-04-21"
HISTORY = ["2025-03-31", "2025-04-07", "2025-04-14"]


def write_week_lake(root: Path) -> Warehouse:
    """The lake as known on 2025-04-29 (after ``WEEK`` closed), with the weekly tables of ``HISTORY`` computed."""
    wh = write_lake(root, build(), datetime(2025, 4, 29, tzinfo=UTC))
    for w in HISTORY:
        assert pipe.compute_weekly(wh, w) == []
    return wh
