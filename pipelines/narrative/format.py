"""Number formatting used by every template, so the claim check can re-derive exactly what is printed."""

from __future__ import annotations


def usd_compact(value: float) -> str:
    """$2.97T, $135.4B, $812.0M."""
    for div, suffix, places in ((1e12, "T", 2), (1e9, "B", 1), (1e6, "M", 1)):
        if abs(value) >= div:
            return f"${value / div:,.{places}f}{suffix}"
    return f"${value:,.0f}"


def pct(value: float | None, places: int = 1) -> str:
    """+3.4% / -7.8%; 'n/a' when missing."""
    if value is None:
        return "n/a"
    if round(value, places) == 0:
        return f"{0:.{places}f}%"  # never "-0.0%"
    return f"{value:+.{places}f}%"


def direction(value: float | None, up: str = "up", down: str = "down", flat: str = "flat") -> str:
    if value is None:
        return "unknown"
    if round(value, 1) == 0:
        return flat
    return up if value > 0 else down


def abs_pct(value: float | None, places: int = 1) -> str:
    return "n/a" if value is None else f"{abs(value):.{places}f}%"


# ---- the formats a claim can name -------------------------------------------------------------------------
# The renderer prints every number through one of these, by name, and records the name in the claim; the claim
# check formats its own query result with the same function, so "what is printed" is re-derivable exactly.
from collections.abc import Callable  # noqa: E402
from datetime import date  # noqa: E402

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def usd_level(value: float) -> str:
    """A round level: $3T, $2.5T, $750B."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= div:
            return f"${value / div:,.2f}".rstrip("0").rstrip(".") + suffix
    return f"${value:,.0f}"


def ordinal(n: int) -> str:
    n = int(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def long_date(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def day_month(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}"


def month_year(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.year}"


def share_pct(v: float) -> str:
    """A share (0..1) as a whole percent, 48%; a share below 1 that would round to 100% prints 99.9% (floored)."""
    if v >= 1 or round(v * 100) < 100:
        return f"{v * 100:.0f}%"
    return f"{int(v * 1000) / 10:.1f}%"


FORMATS: dict[str, Callable] = {
    "usd": usd_compact,
    "usd_level": usd_level,
    "pct": pct,  # signed, +3.4%
    "abs_pct": abs_pct,  # unsigned magnitude, 3.4%
    "updown_pct": lambda v: "flat" if round(v, 1) == 0 else f"{'up' if v > 0 else 'down'} {abs(v):.1f}%",
    "below_above_pct": lambda v: f"{abs(v):.1f}% {'below' if v < 0 else 'above'}",
    "level_pct": lambda v: f"{v:.1f}%",  # a rate or a volatility, 4.4%
    "rate2": lambda v: f"{v:.2f}%",  # a yield, 3.51%
    "pp2": lambda v: f"{v:+.2f} pp",  # a spread in percentage points
    "corr": lambda v: f"{v:.2f}",
    "corr_change": lambda v: "0.00" if round(v, 2) == 0 else f"{v:+.2f}",
    "ratio": lambda v: f"{v:.2f}x",
    "pts": lambda v: "0.0 pts" if round(v, 1) == 0 else f"{v:+.1f} pts",
    "usd_price": lambda v: f"${v:,.0f}",  # a price level, $87,412
    "fixed2": lambda v: f"{v:.2f}",
    "bp0": lambda v: "0 bp" if round(v) == 0 else f"{v:+.0f} bp",  # a change in basis points, whole
    "cuts1": lambda v: f"{v:.1f}",  # a number of 25 bp cuts, one decimal
    "funding_bp": lambda v: "0.00 bp" if round(v * 1e4, 2) == 0 else f"{v * 1e4:+.2f} bp",  # per 8h, in bp
    "ann_pct": lambda v: "0.0%" if round(v * 100, 1) == 0 else f"{v * 100:+.1f}%",  # annualized, in percent
    "share_pct": lambda v: share_pct(v),  # a share (0..1): 48%, never rounded up to 100% (99.9%)
    "share_pct1": lambda v: f"{v * 100:.1f}%",  # a share (0..1) to a tenth of a point: 98.6%
    "thousands": lambda v: f"{v:+,.0f}k",
    "int": lambda v: f"{int(v):,d}",
    "ordinal": ordinal,
    "long_date": long_date,
    "day_month": day_month,
    "month_year": month_year,
    "iso_date": lambda d: d.isoformat(),
}


def fmt(name: str, value) -> str:
    return FORMATS[name](value)
