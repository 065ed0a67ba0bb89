"""The emulated coin universe: a hand-written head shaped like the real 2025 market, and a generated tail.

Market caps are in billions of USD on 2025-01-01. ``kind`` decides how a coin's price moves:
``free`` (market factor + sector + own noise), ``stable`` (pegged at $1), ``wrapped`` / ``staked`` (track an
underlying at a ratio) and ``gold`` (tracks the gold path). Categories use CoinGecko's real category ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

L1, L2, GAMING, DEPIN, AI, MEME, DEFI = (
    "layer-1",
    "layer-2",
    "gaming",
    "depin",
    "artificial-intelligence",
    "meme-token",
    "decentralized-finance-defi",
)
STABLE, WRAPPED, LST, GOLD = "stablecoins", "wrapped-tokens", "liquid-staking-tokens", "tokenized-gold"

CATEGORY_NAMES = {
    L1: "Layer 1 (L1)",
    L2: "Layer 2 (L2)",
    GAMING: "Gaming (GameFi)",
    DEPIN: "DePIN",
    AI: "Artificial Intelligence (AI)",
    MEME: "Meme",
    DEFI: "Decentralized Finance (DeFi)",
    STABLE: "Stablecoins",
    WRAPPED: "Wrapped-Tokens",
    LST: "Liquid Staking Tokens",
    GOLD: "Tokenized Gold",
    "smart-contract-platform": "Smart Contract Platform",
    "privacy-coins": "Privacy Coins",
    "oracle": "Oracle",
    "liquid-restaking-tokens": "Liquid Restaking Tokens",
    "real-world-assets-rwa": "Real World Assets (RWA)",
}


@dataclass(frozen=True)
class CoinSpec:
    id: str
    symbol: str
    name: str
    mcap_bn: float  # market cap on 2025-01-01, billions USD
    categories: tuple[str, ...]
    kind: str = "free"  # free | stable | wrapped | staked | gold
    underlying: str | None = None  # for wrapped / staked
    ratio: float = 1.0  # price ratio to the underlying on 2025-01-01
    listed: str | None = None  # first day with data, when listed after 2025-01-01
    max_supply: float | None = None
    supply_growth: float = 0.0  # yearly growth of circulating supply


HEAD: tuple[CoinSpec, ...] = (
    CoinSpec("bitcoin", "btc", "Bitcoin", 1850, (L1,), max_supply=21e6, supply_growth=0.008),
    CoinSpec("ethereum", "eth", "Ethereum", 405, (L1, "smart-contract-platform")),
    CoinSpec("tether", "usdt", "Tether", 137, (STABLE,), kind="stable", supply_growth=0.33),
    CoinSpec("ripple", "xrp", "XRP", 135, (L1,), max_supply=100e9, supply_growth=0.03),
    CoinSpec("binancecoin", "bnb", "BNB", 100, (L1, "smart-contract-platform")),
    CoinSpec("solana", "sol", "Solana", 94, (L1, "smart-contract-platform"), supply_growth=0.04),
    CoinSpec("usd-coin", "usdc", "USDC", 44, (STABLE,), kind="stable", supply_growth=0.65),
    CoinSpec("staked-ether", "steth", "Lido Staked Ether", 33, (LST,), kind="staked", underlying="ethereum"),
    CoinSpec("dogecoin", "doge", "Dogecoin", 47, (MEME,), supply_growth=0.035),
    CoinSpec("cardano", "ada", "Cardano", 30, (L1, "smart-contract-platform"), max_supply=45e9),
    CoinSpec("tron", "trx", "TRON", 22, (L1, "smart-contract-platform")),
    CoinSpec(
        "wrapped-bitcoin", "wbtc", "Wrapped Bitcoin", 13, (WRAPPED,), kind="wrapped", underlying="bitcoin"
    ),
    CoinSpec("avalanche-2", "avax", "Avalanche", 15, (L1, "smart-contract-platform"), max_supply=720e6),
    CoinSpec("the-open-network", "ton", "Toncoin", 13, (L1,)),
    CoinSpec("chainlink", "link", "Chainlink", 13, (DEFI, "oracle"), max_supply=1e9),
    CoinSpec("shiba-inu", "shib", "Shiba Inu", 12.5, (MEME,)),
    CoinSpec("sui", "sui", "Sui", 12, (L1, "smart-contract-platform"), max_supply=10e9, supply_growth=0.25),
    CoinSpec(
        "wrapped-steth",
        "wsteth",
        "Wrapped stETH",
        11,
        (LST, WRAPPED),
        kind="staked",
        underlying="ethereum",
        ratio=1.19,
    ),
    CoinSpec("stellar", "xlm", "Stellar", 10, (L1,)),
    CoinSpec("hedera-hashgraph", "hbar", "Hedera", 10, (L1,), max_supply=50e9),
    CoinSpec("polkadot", "dot", "Polkadot", 10, (L1,), supply_growth=0.08),
    CoinSpec("bitcoin-cash", "bch", "Bitcoin Cash", 8.6, (L1,), max_supply=21e6),
    CoinSpec("uniswap", "uni", "Uniswap", 8, (DEFI,), max_supply=1e9),
    CoinSpec("weth", "weth", "WETH", 7.5, (WRAPPED,), kind="wrapped", underlying="ethereum"),
    CoinSpec("litecoin", "ltc", "Litecoin", 7.6, (L1,), max_supply=84e6),
    CoinSpec("pepe", "pepe", "Pepe", 7.5, (MEME,)),
    CoinSpec("hyperliquid", "hype", "Hyperliquid", 7.0, (DEFI, L1), max_supply=1e9, supply_growth=0.05),
    CoinSpec(
        "wrapped-eeth",
        "weeth",
        "Wrapped eETH",
        6.5,
        (LST, "liquid-restaking-tokens"),
        kind="staked",
        underlying="ethereum",
        ratio=1.055,
    ),
    CoinSpec("ethena-usde", "usde", "Ethena USDe", 6.0, (STABLE,), kind="stable", supply_growth=1.2),
    CoinSpec("near", "near", "NEAR Protocol", 6.2, (L1, AI), supply_growth=0.05),
    CoinSpec("aptos", "apt", "Aptos", 5.2, (L1,), supply_growth=0.15),
    CoinSpec("internet-computer", "icp", "Internet Computer", 5.0, (L1, AI)),
    CoinSpec("aave", "aave", "Aave", 5.0, (DEFI,), max_supply=16e6),
    CoinSpec("monero", "xmr", "Monero", 3.6, (L1, "privacy-coins")),
    CoinSpec("mantle", "mnt", "Mantle", 3.9, (L2,), max_supply=6.2e9),
    CoinSpec("polygon-ecosystem-token", "pol", "POL (ex-MATIC)", 3.8, (L2,), supply_growth=0.02),
    CoinSpec("render-token", "render", "Render", 3.7, (AI, DEPIN)),
    CoinSpec("bittensor", "tao", "Bittensor", 3.5, (AI, L1), max_supply=21e6, supply_growth=0.25),
    CoinSpec("dai", "dai", "Dai", 3.4, (STABLE,), kind="stable"),
    CoinSpec("fetch-ai", "fet", "Artificial Superintelligence Alliance", 3.3, (AI,)),
    CoinSpec("arbitrum", "arb", "Arbitrum", 3.2, (L2,), max_supply=10e9, supply_growth=0.3),
    CoinSpec("filecoin", "fil", "Filecoin", 3.2, (DEPIN,), supply_growth=0.1),
    CoinSpec("ethena", "ena", "Ethena", 3.0, (DEFI,), max_supply=15e9, supply_growth=0.4),
    CoinSpec("injective-protocol", "inj", "Injective", 2.1, (DEFI, L1), max_supply=100e6),
    CoinSpec("optimism", "op", "Optimism", 2.6, (L2,), max_supply=4.29e9, supply_growth=0.3),
    CoinSpec("bonk", "bonk", "Bonk", 2.5, (MEME,)),
    CoinSpec("immutable-x", "imx", "Immutable", 2.3, (GAMING, L2), max_supply=2e9, supply_growth=0.15),
    CoinSpec("theta-token", "theta", "Theta Network", 2.0, (DEPIN,), max_supply=1e9),
    CoinSpec(
        "first-digital-usd", "fdusd", "First Digital USD", 2.0, (STABLE,), kind="stable", supply_growth=-0.3
    ),
    CoinSpec("dogwifcoin", "wif", "dogwifhat", 1.9, (MEME,)),
    CoinSpec(
        "jito-staked-sol",
        "jitosol",
        "Jito Staked SOL",
        2.0,
        (LST,),
        kind="staked",
        underlying="solana",
        ratio=1.17,
    ),
    CoinSpec("worldcoin-wld", "wld", "Worldcoin", 1.6, (AI,), max_supply=10e9, supply_growth=0.6),
    CoinSpec("the-sandbox", "sand", "The Sandbox", 1.5, (GAMING,), max_supply=3e9),
    CoinSpec("gala", "gala", "GALA", 1.5, (GAMING,)),
    CoinSpec("starknet", "strk", "Starknet", 1.3, (L2,), max_supply=10e9, supply_growth=0.4),
    CoinSpec("axie-infinity", "axs", "Axie Infinity", 1.1, (GAMING,), max_supply=270e6),
    CoinSpec("helium", "hnt", "Helium", 1.0, (DEPIN,), max_supply=223e6),
    CoinSpec("zcash", "zec", "Zcash", 0.8, (L1, "privacy-coins"), max_supply=21e6),
    CoinSpec("akash-network", "akt", "Akash Network", 0.8, (DEPIN, AI), max_supply=388e6),
    CoinSpec(
        "pax-gold", "paxg", "PAX Gold", 0.55, (GOLD, "real-world-assets-rwa"), kind="gold", supply_growth=0.8
    ),
    CoinSpec(
        "tether-gold",
        "xaut",
        "Tether Gold",
        0.65,
        (GOLD, "real-world-assets-rwa"),
        kind="gold",
        supply_growth=1.0,
    ),
    CoinSpec("iotex", "iotx", "IoTeX", 0.45, (DEPIN,), max_supply=10e9),
    CoinSpec("beam-2", "beam", "Beam", 1.0, (GAMING,), max_supply=62e9),
    CoinSpec("celestia", "tia", "Celestia", 2.6, (L1,), supply_growth=0.3),
)

# Sector of a coin for the sector factor: the first category that is a sector.
SECTORS = (L1, L2, GAMING, DEPIN, AI, MEME, DEFI)

_SYLLABLES = (
    "ar",
    "bel",
    "cor",
    "dax",
    "el",
    "fyn",
    "gor",
    "hal",
    "ix",
    "jun",
    "kor",
    "lum",
    "mir",
    "nex",
    "or",
    "pra",
    "qua",
    "rho",
    "syl",
    "tor",
    "um",
    "vex",
    "wyn",
    "xer",
    "yal",
    "zen",
    "ka",
    "lo",
    "ve",
    "ta",
    "ri",
    "so",
)
_SUFFIX = {
    L1: ("Chain", "Network", "Protocol"),
    L2: ("Rollup", "L2", "Layer"),
    GAMING: ("Games", "Quest", "Arena"),
    DEPIN: ("Grid", "Mesh", "Nodes"),
    AI: ("AI", "Mind", "Neural"),
    MEME: ("Inu", "Cat", "Frog"),
    DEFI: ("Swap", "Finance", "Lend"),
}
TAIL_SECTOR_WEIGHTS = {DEFI: 0.24, AI: 0.15, MEME: 0.15, GAMING: 0.12, DEPIN: 0.11, L1: 0.12, L2: 0.11}


def generate_tail(rng: np.random.Generator, n: int) -> list[CoinSpec]:
    """``n`` invented mid- and small-cap coins, log-uniform between $40M and $1.8B, with sectors."""
    sectors = list(TAIL_SECTOR_WEIGHTS)
    probs = np.array(list(TAIL_SECTOR_WEIGHTS.values()))
    probs = probs / probs.sum()
    taken = {c.symbol for c in HEAD}
    out: list[CoinSpec] = []
    caps = np.exp(rng.uniform(np.log(0.04), np.log(1.8), size=n))
    for i in range(n):
        sector = sectors[int(rng.choice(len(sectors), p=probs))]
        while True:
            stem = "".join(_SYLLABLES[int(k)] for k in rng.integers(0, len(_SYLLABLES), size=2))
            symbol = stem[:4]
            if symbol not in taken:
                taken.add(symbol)
                break
        name = f"{stem.capitalize()} {_SUFFIX[sector][int(rng.integers(0, 3))]}"
        cats: tuple[str, ...] = (sector,)
        if rng.uniform() < 0.18:  # some coins sit in two sectors
            other = sectors[int(rng.integers(0, len(sectors)))]
            if other != sector:
                cats = (sector, other)
        listed = None
        if rng.uniform() < 0.08:  # a few listed during 2025
            listed = f"2025-{int(rng.integers(3, 11)):02d}-{int(rng.integers(1, 28)):02d}"
        out.append(
            CoinSpec(
                id=f"{stem}-{_SUFFIX[sector][0].lower()}-{i:03d}",
                symbol=symbol,
                name=name,
                mcap_bn=float(caps[i]),
                categories=cats,
                listed=listed,
                supply_growth=float(rng.uniform(0.0, 0.3)),
            )
        )
    return out
