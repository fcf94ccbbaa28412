"""One simulated venue served as the Binance USD-M futures API (REST, user and market streams)."""

from venues.sim.server.app import BinanceServer
from venues.sim.server.errors import REJECT_CODES, reject_error

__all__ = ["REJECT_CODES", "BinanceServer", "reject_error"]
