"""Synthetic perpetual-futures markets (Binance USDT-M, Bybit linear, OKX swaps) over the synthetic market.

Perpetuals exist for the ``N_PERPS`` largest free-floating coins of the market (by market cap on 2025-01-01,
listed from the start); the symbol is ``<SYMBOL>USDT`` (OKX: ``<SYMBOL>-USDT-SWAP``). Everything is hourly,
aligned with ``market.price``, and derives from the market's seed through ``numpy.random.SeedSequence``
children (never the wall clock), so one seed gives the same arrays.

Funding (a fraction of notional per funding interval, as the venues quote it)::

    f8(t) = 0.00008 + 0.0011 * ret7d(t) + 0.0008 * min(ret7d(t) + 0.04, 0) + AR(1) noise

``f8`` is the rate for an 8-hour interval; ``ret7d`` mixes the coin's and the whole market's trailing 7-day log
return, so rallies pay about +0.0001 per 8h and a sharp sell-off (November 2025) turns funding negative. A
settlement with an interval of ``I`` hours pays ``f8 * I / 8``, read at the settlement hour. Binance runs some
symbols on 4h and a couple on 1h; Bybit and OKX a few on 4h; everything else settles every 8h at 00/08/16 UTC.

Open interest in USD: a total across the three venues follows invented anchors (about $150B in January 2025,
$230B at the early-October 2025 peak, a drop of about 30% in the 10-11 October liquidation cascade, about
$135B in late November 2025), moves with the market's hourly wobble around its own anchors, is split across
venues (Binance ~42%, Bybit ~30%, OKX ~28%, drifting slowly) and across coins in proportion to market
cap^0.85 with a per-coin appetite factor. Base-coin OI is USD OI divided by the coin's price.

Long/short account ratio (Binance "global" accounts): the long share leans contrarian (more accounts long
after a fall), kept within 0.35..0.80.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from pipelines.emulator.market import HOURS, TOTAL_ANCHORS, _anchored_path, _parse, build_market

N_PERPS = 45
VENUES = ("binance", "bybit", "okx")
VENUE_SHARE = {"binance": 0.42, "bybit": 0.30, "okx": 0.28}

# Total OI across the three venues, $B (invented, shaped like 2025).
OI_ANCHORS: tuple[tuple[str, float], ...] = (
    ("2025-01-01T00", 150.0),
    ("2025-01-21T00", 168.0),
    ("2025-02-28T00", 128.0),
    ("2025-04-08T00", 104.0),
    ("2025-05-12T00", 142.0),
    ("2025-07-14T00", 178.0),
    ("2025-08-13T00", 205.0),
    ("2025-09-01T00", 188.0),
    ("2025-09-20T00", 214.0),
    ("2025-10-06T00", 232.0),
    ("2025-10-10T20", 226.0),
    ("2025-10-11T02", 160.0),
    ("2025-10-13T00", 166.0),
    ("2025-10-27T00", 170.0),
    ("2025-11-04T00", 152.0),
    ("2025-11-17T00", 142.0),
    ("2025-11-21T12", 129.0),
    ("2025-11-26T00", 135.0),
    ("2025-12-10T00", 140.0),
    ("2026-02-25T00", 120.0),
    ("2026-06-30T00", 165.0),
    ("2026-10-05T00", 185.0),
    ("2026-12-31T00", 175.0),
    ("2027-12-31T23", 200.0),
)


@dataclass
class Derivatives:
    seed: int
    coin_idx: list[int]  # market coin index of each perp
    bases: list[str]  # "BTC"
    intervals: dict[str, np.ndarray]  # venue -> [perp] funding interval in hours
    f8: dict[str, np.ndarray]  # venue -> [hour, perp] 8h-equivalent funding rate
    oi_usd: dict[str, np.ndarray]  # venue -> [hour, perp] USD notional
    price: np.ndarray  # [hour, perp] mark price (USD)
    long_account: np.ndarray  # [hour, perp] share of accounts net long (Binance)

    @cached_property
    def symbols(self) -> list[str]:
        """Each perp's symbol ("BTCUSDT"); built once, as every answer names its rows by it."""
        return [f"{b}USDT" for b in self.bases]

    def index(self, symbol: str) -> int:
        return self._sym[symbol]

    def __post_init__(self) -> None:
        self._sym = {s: i for i, s in enumerate(self.symbols)}

    def has(self, symbol: str) -> bool:
        return symbol in self._sym

    def settlements(self, venue: str, j: int, h0: int, h1: int) -> list[tuple[int, float]]:
        """(hour, rate per interval) of every settlement of perp ``j`` at ``venue`` in hours [h0, h1]."""
        step = int(self.intervals[venue][j])
        first = max(h0, 0) + (-max(h0, 0)) % step
        return [
            (h, float(self.f8[venue][h, j]) * step / 8.0) for h in range(first, min(h1, HOURS - 1) + 1, step)
        ]

    def total_oi(self, h: int) -> float:
        return float(sum(np.nansum(self.oi_usd[v][h]) for v in VENUES))


def _trailing(logx: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(logx)
    out[n:] = logx[n:] - logx[:-n]
    out[:n] = logx[:n] - logx[:1]
    return out


@lru_cache(maxsize=4)
def build_derivatives(seed: int | None = None) -> Derivatives:
    market = build_market(seed) if seed is not None else build_market()
    seed = market.seed
    # children 7.. of the market's SeedSequence are never used by build_market (it spawns 7)
    ss = np.random.SeedSequence(seed)
    r_pick, r_fund, r_oi, r_ls, r_basis = (np.random.default_rng(s) for s in ss.spawn(12)[7:])

    free = [i for i, c in enumerate(market.coins) if c.kind == "free" and c.listed is None]
    free.sort(key=lambda i: -market.coins[i].mcap_bn)
    idx = free[:N_PERPS]
    bases = [market.coins[i].symbol.upper() for i in idx]
    n = len(idx)
    price = market.price[:, idx]
    logp = np.log(price)

    # funding intervals: majors 8h everywhere; some alts 4h (and two 1h at Binance)
    intervals = {}
    for v in VENUES:
        iv = np.full(n, 8, dtype=np.int64)
        share4 = {"binance": 0.22, "bybit": 0.12, "okx": 0.08}[v]
        alt = np.arange(n) >= 10
        iv[alt & (r_pick.uniform(0, 1, n) < share4)] = 4
        if v == "binance":
            ones = r_pick.choice(np.arange(20, n), size=2, replace=False)
            iv[ones] = 1
        intervals[v] = iv

    mkt_ret = _trailing(np.log(market.global_mcap), 168)
    coin_ret = _trailing(logp, 168)
    ret7 = 0.6 * mkt_ret[:, None] + 0.4 * coin_ret
    base_f8 = 0.00008 + 0.0011 * ret7 + 0.0008 * np.minimum(ret7 + 0.04, 0.0)
    appetite = np.exp(r_pick.normal(0.0, 0.35, n))  # alts with a crowded long side pay more
    appetite[:2] = 1.0
    f8 = {}
    for v in VENUES:
        eps = r_fund.normal(0.0, 0.00004, (HOURS, n))
        ar = np.empty_like(eps)
        ar[0] = eps[0]
        for t in range(1, HOURS):
            ar[t] = 0.97 * ar[t - 1] + eps[t]
        venue_bias = {"binance": 0.0, "bybit": 0.000005, "okx": -0.000005}[v]
        rate = base_f8 * np.where(base_f8 > 0, appetite, 1.0) + 0.25 * ar + venue_bias
        f8[v] = np.clip(rate, -0.0075, 0.0075)

    # total OI: anchors, times the market's wobble around its own anchors
    oi_total = _anchored_path(r_oi, OI_ANCHORS, 0.0015) * 1e9
    grid = np.arange(HOURS)
    t_hours = np.array([_parse(t) for t, _ in TOTAL_ANCHORS])
    anchor_log = np.interp(grid, t_hours, np.log([v for _, v in TOTAL_ANCHORS]))
    wobble = np.log(market.global_mcap / 1e12) - anchor_log
    oi_total = oi_total * np.exp(wobble)

    caps = np.nan_to_num(market.mcap[:, idx], nan=0.0)
    taste = np.exp(r_oi.normal(0.0, 0.4, n))
    taste[0] = 1.0
    w = caps**0.85 * taste
    w = w * np.exp(np.cumsum(r_oi.normal(0.0, 0.002, (HOURS, n)), axis=0))  # slow drift of each coin's share
    w = w / w.sum(axis=1, keepdims=True)
    oi_usd = {}
    drift = {v: np.exp(np.cumsum(r_oi.normal(0.0, 0.0008, HOURS))) for v in VENUES}
    norm = sum(VENUE_SHARE[v] * drift[v] for v in VENUES)
    for v in VENUES:
        share = VENUE_SHARE[v] * drift[v] / norm
        noise = np.exp(r_oi.normal(0.0, 0.004, (HOURS, n)))
        oi_usd[v] = oi_total[:, None] * share[:, None] * w * noise

    basis = 1.0 + r_basis.normal(0.0, 0.0002, (HOURS, n))
    mark = price * basis
    ls_noise = r_ls.normal(0.0, 0.02, (HOURS, n))
    long_account = np.clip(0.58 - 0.9 * _trailing(logp, 72) + ls_noise, 0.35, 0.80)

    return Derivatives(
        seed=seed,
        coin_idx=idx,
        bases=bases,
        intervals=intervals,
        f8=f8,
        oi_usd=oi_usd,
        price=mark,
        long_account=long_account,
    )
