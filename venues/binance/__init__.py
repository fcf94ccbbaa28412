"""Native adapters for the Binance USD-M futures and spot APIs: wire schemas, pure parsing,
aiohttp I/O."""

from venues.binance.client import BinanceUsdmClient
from venues.binance.spot_client import BinanceSpotClient

__all__ = ["BinanceSpotClient", "BinanceUsdmClient"]
