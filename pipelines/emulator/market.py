"""A deterministic synthetic crypto market, hour by hour, from 2025-01-01 to the end of 2027.

The path is shaped like 2025 (calibrated by eye against ``shared/data/real``, none of it copied): total market
cap near $3.3T in January, a dip below $3T around April, a rally into early October (about $4.3T), a crash
on 10-11 October in which alts fall much further than BTC, and a November sell-off that takes the total below
$3T. 2026 and 2027 continue as a random path between invented anchors.

How prices move (hourly log returns)::

    r_i(t) = beta_i * m(t) + gamma_i * s_sector(i)(t) + sigma_i * e_i(t) + drift_i

``m`` is the market factor (the log change of the target total), ``s`` a factor per sector and ``e`` the coin's
own noise. The largest coins have beta near 1 and little own noise, so the market factor binds them tightly;
small coins carry more own noise, and from November 2025 they decouple further (lower beta, more noise).
After simulation, the free-floating coins are scaled together, hour by hour, so that the listed coins' total
(stablecoins and gold tokens included) is the target path less an **unlisted tail**. Stablecoins stay near $1,
wrapped and staked tokens track their underlying, gold tokens track a gold path.

The target path is the market's total, CoinGecko's global figure (``/global``). A real market has thousands of
coins beyond any top-N list; the emulator lists its 189 coins in ``/coins/markets`` and counts the rest as a tail
worth ``unlisted_tail_share(h)`` of the total: 1.3% +/- 0.25%, a sine of period 120 days (deterministic, no
seed). So the listed coins are 98.45% to 98.95% of ``/global`` and the top 100 about 98.6% (98.54% to 98.61% in
2025), like the real top 100's 98.6% (METHODOLOGY.md, "The market's total"): a pipeline that sums the listed coins
does not get the total.

Everything derives from one seed through ``numpy.random.SeedSequence``; the same seed gives the same arrays,
and the arrays never depend on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np

from pipelines.emulator.coins import HEAD, SECTORS, CoinSpec, generate_tail

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
END = datetime(2028, 1, 1, tzinfo=timezone.utc)  # exclusive
HOURS = int((END - START).total_seconds() // 3600)
DEFAULT_SEED = 20250101
TAIL_COINS = 125
# The unlisted tail: coins /coins/markets does not list, as a share of the market's total (/global).
UNLISTED_TAIL_MEAN, UNLISTED_TAIL_SWING, UNLISTED_TAIL_PERIOD_HOURS = 0.013, 0.0025, 24 * 120

# (time, total market cap in $T). Log-linear between anchors, plus a Brownian bridge (zero at anchors).
TOTAL_ANCHORS: tuple[tuple[str, float], ...] = (
    ("2025-01-01T00", 3.32),
    ("2025-01-21T00", 3.72),
    ("2025-02-03T00", 3.30),
    ("2025-02-28T00", 2.86),
    ("2025-03-24T00", 3.02),
    ("2025-04-08T00", 2.55),
    ("2025-04-23T00", 3.05),
    ("2025-05-12T00", 3.38),
    ("2025-06-22T00", 3.22),
    ("2025-07-14T00", 3.86),
    ("2025-08-13T00", 4.12),
    ("2025-09-01T00", 3.80),
    ("2025-09-20T00", 4.08),
    ("2025-10-06T00", 4.28),
    ("2025-10-10T20", 4.12),
    ("2025-10-11T00", 3.74),
    ("2025-10-13T00", 3.96),
    ("2025-10-17T00", 3.72),
    ("2025-10-27T00", 3.92),
    ("2025-11-04T00", 3.42),
    ("2025-11-10T00", 3.50),
    ("2025-11-17T00", 3.22),
    ("2025-11-21T12", 2.86),
    ("2025-11-24T00", 2.97),
    ("2025-12-10T00", 3.18),
    ("2026-01-14T00", 3.30),
    ("2026-02-25T00", 2.92),
    ("2026-04-20T00", 3.36),
    ("2026-06-30T00", 3.78),
    ("2026-08-18T00", 3.52),
    ("2026-10-05T00", 3.95),
    ("2026-11-09T00", 3.70),
    ("2026-11-23T00", 3.58),
    ("2026-12-31T00", 3.85),
    ("2027-06-30T00", 4.30),
    ("2027-12-31T23", 4.10),
)
# Gold in USD per ounce (drives the tokenized-gold coins and the emulated gold proxy).
GOLD_ANCHORS: tuple[tuple[str, float], ...] = (
    ("2025-01-01T00", 2625),
    ("2025-04-21T00", 3420),
    ("2025-06-30T00", 3300),
    ("2025-08-29T00", 3450),
    ("2025-10-20T00", 4350),
    ("2025-10-28T00", 3950),
    ("2025-11-24T00", 4090),
    ("2026-03-01T00", 4300),
    ("2026-11-23T00", 4150),
    ("2027-12-31T23", 4400),
)
# Approximate USD prices on 2025-01-01 for the head, so levels look familiar (supplies follow from the caps).
HEAD_PRICES = {
    "bitcoin": 93_400.0,
    "ethereum": 3_350.0,
    "ripple": 2.08,
    "binancecoin": 705.0,
    "solana": 190.0,
    "dogecoin": 0.32,
    "cardano": 0.85,
    "tron": 0.255,
    "avalanche-2": 36.5,
    "the-open-network": 5.6,
    "chainlink": 20.5,
    "shiba-inu": 0.0000213,
    "sui": 4.1,
    "stellar": 0.33,
    "hedera-hashgraph": 0.27,
    "polkadot": 6.6,
    "bitcoin-cash": 430.0,
    "uniswap": 13.3,
    "litecoin": 102.0,
    "pepe": 0.0000178,
    "hyperliquid": 20.5,
    "near": 5.0,
    "aptos": 8.7,
    "internet-computer": 10.3,
    "aave": 300.0,
    "monero": 195.0,
    "mantle": 1.15,
    "polygon-ecosystem-token": 0.45,
    "render-token": 7.1,
    "bittensor": 460.0,
    "fetch-ai": 1.3,
    "arbitrum": 0.74,
    "filecoin": 5.0,
    "ethena": 0.9,
    "injective-protocol": 21.0,
    "optimism": 1.8,
    "bonk": 0.000032,
    "immutable-x": 1.25,
    "theta-token": 2.0,
    "dogwifcoin": 1.95,
    "worldcoin-wld": 2.1,
    "the-sandbox": 0.6,
    "gala": 0.035,
    "starknet": 0.45,
    "axie-infinity": 6.5,
    "helium": 6.0,
    "zcash": 52.0,
    "akash-network": 3.1,
    "iotex": 0.047,
    "beam-2": 0.021,
    "celestia": 5.2,
}
CRASH_HOUR = "2025-10-10T21"  # the alt liquidation cascade
DECOUPLE_FROM, DECOUPLE_TO = "2025-11-01T00", "2025-12-15T00"

SECTOR_BETA = {
    "layer-1": 1.05,
    "layer-2": 1.3,
    "gaming": 1.25,
    "depin": 1.22,
    "artificial-intelligence": 1.2,
    "meme-token": 1.35,
    "decentralized-finance-defi": 1.12,
}


def hour_index(t: datetime) -> int:
    """Index of the hour that contains ``t`` (clamped to the simulated range)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    h = int((t - START).total_seconds() // 3600)
    return min(max(h, 0), HOURS - 1)


def hour_time(h: int) -> datetime:
    return START + timedelta(hours=int(h))


def unlisted_tail_share(h: np.ndarray | int) -> np.ndarray | float:
    """Share of the market's total (``/global``) held by coins the emulator does not list, at hour ``h``:
    ``UNLISTED_TAIL_MEAN + UNLISTED_TAIL_SWING * sin(2 pi h / UNLISTED_TAIL_PERIOD_HOURS)``."""
    return UNLISTED_TAIL_MEAN + UNLISTED_TAIL_SWING * np.sin(
        2 * np.pi * np.asarray(h) / UNLISTED_TAIL_PERIOD_HOURS
    )


def _parse(ts: str) -> int:
    return hour_index(datetime.strptime(ts, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc))


def _anchored_path(
    rng: np.random.Generator, anchors: tuple[tuple[str, float], ...], sigma: float
) -> np.ndarray:
    """exp(log-linear interpolation between anchors + a Brownian bridge pinned to 0 at each anchor)."""
    hours = np.array([_parse(t) for t, _ in anchors])
    levels = np.log(np.array([v for _, v in anchors]))
    grid = np.arange(HOURS)
    base = np.interp(grid, hours, levels)
    walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, sigma, HOURS - 1))])
    bridge_anchor = np.interp(grid, hours, walk[hours])
    return np.exp(base + walk - bridge_anchor)


@dataclass
class SyntheticMarket:
    seed: int
    coins: list[CoinSpec]
    price: np.ndarray  # [hour, coin] USD, NaN before listing
    supply: np.ndarray  # [hour, coin] circulating supply
    mcap: np.ndarray  # [hour, coin] USD, NaN before listing
    volume_24h: np.ndarray  # [hour, coin] rolling 24h volume, USD
    total_supply: np.ndarray  # [coin]
    max_supply: list[float | None]
    prior_ath: np.ndarray  # [coin] all-time high before 2025
    prior_atl: np.ndarray  # [coin]
    gold: np.ndarray  # [hour] USD per ounce
    total_mcap: np.ndarray  # [hour] the listed coins' total
    global_mcap: np.ndarray  # [hour] the market's total (/global): the listed coins and the unlisted tail

    def coin_index(self, coin_id: str) -> int:
        return self._ids[coin_id]

    def __post_init__(self) -> None:
        self._ids = {c.id: i for i, c in enumerate(self.coins)}

    def has_coin(self, coin_id: str) -> bool:
        return coin_id in self._ids

    def ranks_at(self, h: int) -> np.ndarray:
        """Market-cap rank (1 = largest) of every coin at hour h; 0 for a coin not listed yet."""
        caps = np.nan_to_num(self.mcap[h], nan=-1.0)
        order = np.argsort(-caps, kind="stable")
        ranks = np.zeros(len(self.coins), dtype=np.int64)
        ranks[order] = np.arange(1, len(self.coins) + 1)
        ranks[caps < 0] = 0
        return ranks


@lru_cache(maxsize=4)
def build_market(seed: int = DEFAULT_SEED) -> SyntheticMarket:
    ss = np.random.SeedSequence(seed)
    r_tail, r_total, r_gold, r_factor, r_coin, r_vol, r_params = (
        np.random.default_rng(s) for s in ss.spawn(7)
    )

    coins = list(HEAD) + generate_tail(r_tail, TAIL_COINS)
    n = len(coins)
    ids = {c.id: i for i, c in enumerate(coins)}
    grid_years = np.arange(HOURS) / 8760.0

    total = _anchored_path(r_total, TOTAL_ANCHORS, 0.0042) * 1e12  # the market's total (/global)
    listed = total * (1.0 - unlisted_tail_share(np.arange(HOURS)))  # what the listed coins add up to
    gold = _anchored_path(r_gold, GOLD_ANCHORS, 0.0017)
    market = np.concatenate([[0.0], np.diff(np.log(total))])
    sector_f = {s: r_factor.normal(0.0, 0.0032, HOURS) for s in SECTORS}

    mcap0 = np.array([c.mcap_bn * 1e9 for c in coins])
    head_rank = np.argsort(np.argsort(-mcap0)) + 1  # rank on 2025-01-01
    # supplies: a plausible starting supply, growing at the coin's yearly rate up to its max supply
    price0 = np.empty(n)
    for i, c in enumerate(coins):
        price0[i] = (
            1.0 if c.kind == "stable" else float(np.exp(r_params.uniform(np.log(0.002), np.log(400.0))))
        )
    for coin_id, p0 in HEAD_PRICES.items():  # the head starts near its real 2025-01-01 price
        price0[ids[coin_id]] = p0
    for i, c in enumerate(coins):  # tracked coins start at their underlying's price
        if c.kind == "gold":
            price0[i] = gold[0]
        elif c.kind in ("wrapped", "staked"):
            price0[i] = price0[ids[c.underlying]] * c.ratio
    supply0 = mcap0 / price0
    supply = np.empty((HOURS, n))
    for i, c in enumerate(coins):
        s = supply0[i] * np.exp(c.supply_growth * grid_years)
        if c.max_supply:
            s = np.minimum(s, max(c.max_supply, supply0[i]))
        supply[:, i] = s

    decouple = np.zeros(HOURS, dtype=bool)
    decouple[_parse(DECOUPLE_FROM) : _parse(DECOUPLE_TO)] = True
    crash_h = _parse(CRASH_HOUR)

    logp = np.full((HOURS, n), np.nan)
    free = [i for i, c in enumerate(coins) if c.kind == "free"]
    for i in free:
        c = coins[i]
        rank = head_rank[i]
        sector = next((k for k in c.categories if k in SECTORS), "layer-1")
        if rank <= 10:
            beta, gamma, sigma = r_params.uniform(0.92, 1.08), 0.25, 0.0028
        else:
            beta = SECTOR_BETA[sector] * r_params.uniform(0.85, 1.12)
            gamma = r_params.uniform(0.6, 1.1)
            sigma = 0.0040 + 0.0016 * np.log10(max(1.0, 20.0 / c.mcap_bn)) + r_params.uniform(0.0, 0.0015)
        if c.id == "bitcoin":
            beta, gamma, sigma = 0.95, 0.0, 0.0017
        drift = r_params.normal(0.0, 0.12 if rank <= 10 else 0.35) / 8760.0
        if c.id in ("bitcoin", "ethereum"):
            drift = 0.0
        b = np.where(decouple & (rank > 40), beta * 0.45, beta)
        sg = np.where(decouple & (rank > 40), sigma * 1.5, sigma)
        r = b * market + gamma * sector_f[sector] + sg * r_coin.normal(0.0, 1.0, HOURS) + drift
        if rank > 10:  # the October cascade hits alts far harder, then partly reverses over three days
            hit = r_params.uniform(0.12, 0.38) * (1.0 if rank > 30 else 0.5)
            r[crash_h] -= hit
            r[crash_h + 1 : crash_h + 73] += 0.55 * hit / 72
        r[0] = 0.0
        logp[:, i] = np.log(price0[i]) + np.cumsum(r)
        if c.listed:
            logp[: _parse(c.listed + "T00"), i] = np.nan

    price = np.exp(logp)
    # stablecoins: an Ornstein-Uhlenbeck wobble around $1 (USDe briefly off peg in the October crash)
    for i, c in enumerate(coins):
        if c.kind == "stable":
            noise = r_coin.normal(0.0, 0.00025, HOURS)
            dev = np.zeros(HOURS)
            for t in range(1, HOURS):
                dev[t] = 0.9 * dev[t - 1] + noise[t]
            if c.id == "ethena-usde":
                dev[crash_h : crash_h + 20] -= 0.034 * np.exp(-np.arange(20) / 5.0)
            price[:, i] = 1.0 + dev
        elif c.kind == "gold":
            price[:, i] = (
                gold * (1.0 + r_coin.normal(0.0, 0.0008, HOURS)) * (1.004 if c.id == "tether-gold" else 1.0)
            )

    # scale the free-floating coins (and what tracks them) so the listed total follows the target path less the tail
    def derived_prices(p: np.ndarray) -> None:
        for i, c in enumerate(coins):
            if c.kind in ("wrapped", "staked"):
                u = ids[c.underlying]
                accrual = np.exp((0.03 if c.kind == "staked" else 0.0) * grid_years)
                p[:, i] = p[:, u] * c.ratio * accrual * (1.0 + r_coin.normal(0.0, 0.0004, HOURS))

    derived_prices(price)
    mcap = price * supply
    floating = np.array([c.kind in ("free", "wrapped", "staked") for c in coins])
    fixed_total = np.nansum(mcap[:, ~floating], axis=1)
    float_total = np.nansum(mcap[:, floating], axis=1)
    k = (listed - fixed_total) / float_total
    price[:, floating] *= k[:, None]
    mcap = price * supply

    # volume: turnover of market cap, higher on big moves, rolling 24h sums
    turnover = np.empty(n)
    for i, c in enumerate(coins):
        if c.kind == "stable":
            turnover[i] = 0.45 if c.id == "tether" else r_params.uniform(0.08, 0.2)
        elif c.kind in ("wrapped", "staked", "gold"):
            turnover[i] = r_params.uniform(0.005, 0.03)
        elif "meme-token" in c.categories:
            turnover[i] = r_params.uniform(0.08, 0.25)
        else:
            turnover[i] = r_params.uniform(0.02, 0.12)
    turnover[ids["bitcoin"]] = 0.028
    turnover[ids["ethereum"]] = 0.06
    logp_all = np.log(np.where(np.isnan(price), 1.0, price))
    absret = np.abs(np.diff(logp_all, axis=0, prepend=logp_all[:1]))
    hourly = (
        np.nan_to_num(mcap)
        * turnover
        / 24.0
        * (1.0 + 30.0 * absret)
        * np.exp(r_vol.normal(0.0, 0.3, (HOURS, n)))
    )
    csum = np.cumsum(hourly, axis=0)
    vol24 = csum.copy()
    vol24[24:] = csum[24:] - csum[:-24]
    vol24[np.isnan(price)] = np.nan

    total_supply = np.array([c.max_supply or supply[-1, i] * 1.05 for i, c in enumerate(coins)])
    prior_ath = price0 * r_params.uniform(1.0, 3.5, n)
    prior_atl = price0 * r_params.uniform(0.001, 0.2, n)
    for i, c in enumerate(coins):
        if c.kind == "stable":
            prior_ath[i], prior_atl[i] = 1.05, 0.95

    return SyntheticMarket(
        seed=seed,
        coins=coins,
        price=price,
        supply=supply,
        mcap=mcap,
        volume_24h=vol24,
        total_supply=total_supply,
        max_supply=[c.max_supply for c in coins],
        prior_ath=prior_ath,
        prior_atl=prior_atl,
        gold=gold,
        total_mcap=np.nansum(mcap, axis=1),
        global_mcap=total,
    )
