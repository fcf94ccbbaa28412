"""Native adapter for the Binance USD-M futures API: wire schemas, pure parsing, aiohttp I/O."""

from venues.binance.client import BinanceUsdmClient

__all__ = ["BinanceUsdmClient"]
