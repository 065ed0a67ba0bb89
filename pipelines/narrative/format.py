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
    return f"{value:+.{places}f}%"


def direction(value: float | None, up: str = "up", down: str = "down", flat: str = "flat") -> str:
    if value is None:
        return "unknown"
    if round(value, 1) == 0:
        return flat
    return up if value > 0 else down


def abs_pct(value: float | None, places: int = 1) -> str:
    return "n/a" if value is None else f"{abs(value):.{places}f}%"
