"""The report's fixed words: the labels of indices and asset classes, the Sources heading, and the wording that
contains digits but is not a figure (the claim check masks it before it looks for numbers). Facts, charts, the
renderer and the claim check all read them here, so none of them needs another."""

from __future__ import annotations

INDEX_LABELS: dict[str, str] = {
    "l2": "Layer 2 (L2)",
    "gaming": "Gaming",
    "depin": "Decentralized IoT (DePIN)",
    "ai": "Artificial Intelligence (AI)",
    "defi": "DeFi",
    "meme": "Memecoins",
    "core_l1": "Core Layer 1s (Core L1s)",
    "top30": "Top-30 index (GMCI-30-like)",
    "mid_caps": "Mid caps (ranks 11-50)",
    "small_caps": "Small caps (ranks 51-100)",
}

ASSET_LABELS: dict[str, str] = {
    "crypto": "Crypto (total market cap)",
    "btc": "Bitcoin",
    "eth": "Ether",
    "sp500": "S&P 500",
    "nasdaq": "Nasdaq Composite",
    "gold": "Gold",
    "treasuries": "US Treasuries (10Y price proxy)",
    "dollar": "US dollar (broad index)",
    "yen": "Japanese yen",
}

SOURCES_HEADING = "## Sources"  # the lineage list below it holds partition keys and hashes, not figures
# Fixed wording that contains digits but is not a figure (the claim check masks it before looking for numbers).
FIXED_TERMS: tuple[str, ...] = tuple(
    sorted(
        set(INDEX_LABELS.values())
        | set(ASSET_LABELS.values())
        | {
            "1-10",
            "11-50",
            "51-100",
            "top 10",
            "top 100",
            "7-day",
            "30-day",
            "90-day",
            "8h",
            "00:00",
            "10Y-2Y",
            "2Y",
            "10Y",
            "GMCI-30",
            "cuts of 25 bp",
        },
        key=len,
        reverse=True,
    )
)
