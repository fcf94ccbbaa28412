"""The ccxt adapter: legato's `VenueClient` on ccxt.pro, for the long tail of exchanges."""

from venues.ccxt.client import CcxtClient
from venues.ccxt.rules import known_exchange

__all__ = ["CcxtClient", "known_exchange"]
