"""The claim check: every figure printed in a report, re-derived from the lake with an independent query.

The report is rendered from frames; this module asks DuckDB for the same numbers directly from the Parquet
files and formats them the same way. A figure that disagrees, or one that is missing from the text, fails the
check, and the check blocks publication.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrative.format import pct, usd_compact
from pipelines.warehouse import Warehouse


@dataclass
class Claim:
    label: str
    expected_text: str
    source: str  # table and partition
    found: bool


def summary_claims(wh: Warehouse, week: str, markdown: str) -> list[Claim]:
    rows = wh.query(
        """
        SELECT total_mcap_start_usd, total_mcap_end_usd, total_mcap_change_pct, btc_return_pct, eth_return_pct
        FROM weekly_market_summary WHERE week = CAST(? AS DATE)
        """,
        [week],
    )
    if rows.height != 1:
        return [Claim("weekly_market_summary row", "1 row", f"weekly_market_summary/week={week}", False)]
    r = rows.row(0, named=True)
    src = f"weekly_market_summary/week={week}"
    expected = {
        "total market cap at the open": usd_compact(r["total_mcap_start_usd"]),
        "total market cap at the close": usd_compact(r["total_mcap_end_usd"]),
        "total market cap change": pct(r["total_mcap_change_pct"]),
        "BTC weekly return": pct(r["btc_return_pct"]),
        "ETH weekly return": pct(r["eth_return_pct"]),
    }
    movers = wh.query(
        "SELECT kind, position, return_pct FROM weekly_movers WHERE week = CAST(? AS DATE) ORDER BY kind, position",
        [week],
    )
    for m in movers.iter_rows(named=True):
        expected[f"{m['kind']} #{m['position']}"] = pct(m["return_pct"])
    return [
        Claim(label, text, src if "#" not in label else f"weekly_movers/week={week}", text in markdown)
        for label, text in expected.items()
    ]
