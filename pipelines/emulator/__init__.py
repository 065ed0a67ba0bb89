"""The market emulator: a synthetic market served on loopback in the real APIs' formats."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator


def register_all(emulator: MarketEmulator) -> None:
    """Add every emulated API's routes to a server. Each API module has a ``register(emulator)``."""
    from pipelines.emulator import binance, binance_vision, bybit, coingecko, fred, okx

    for module in (coingecko, binance, binance_vision, bybit, okx, fred):
        module.register(emulator)
