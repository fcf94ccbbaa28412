"""legato's client order ids on venues with other rules (DESIGN §7).

legato names every child order `<prefix>-<leg>-<n>` (up to 36 characters of
`[A-Za-z0-9._:/-]`): deterministic, so a retry or a restarted leg never sends a second order
for one slice. Binance accepts these as they are. A venue whose rule refuses one (OKX: 1-32
alphanumerics; Hyperliquid: "0x" and 32 hex digits) gets a digest of it instead: the same id
always gives the same digest, so a restarted leg that queries by its journaled id reaches its
own order. `ClientIds` keeps the way back (venue id → legato id) for every id it mapped, so
reports carry legato's ids; a venue id it never mapped (an order placed elsewhere, or before
a restart and not yet asked for) is passed on as the venue gave it.
"""

from __future__ import annotations

import hashlib

from venues.model import ClientIdRule

_KEPT = 200_000  # mapped ids remembered per adapter (the oldest are forgotten first)


def venue_client_id(client_order_id: str, rule: ClientIdRule) -> str:
    """The id the venue is sent for legato's `client_order_id`: itself when the rule
    accepts it, else a digest of it that the rule accepts (deterministic)."""
    if rule.accepts(client_order_id):
        return client_order_id
    width = rule.max_len - len(rule.prefix)
    digits = rule.digest_alphabet
    if width <= 0 or len(digits) < 2:
        raise ValueError(f"client id rule {rule!r} leaves no room for a digest")
    number = int.from_bytes(hashlib.blake2b(client_order_id.encode(), digest_size=32).digest())
    out = []
    for _ in range(width):
        number, digit = divmod(number, len(digits))
        out.append(digits[digit])
    return rule.prefix + "".join(out)


class ClientIds:
    """One adapter's mapping of client order ids under its venue's rule, both ways."""

    def __init__(self, rule: ClientIdRule, kept: int = _KEPT) -> None:
        self.rule = rule
        self._back: dict[str, str] = {}
        self._kept = kept

    def to_venue(self, client_order_id: str) -> str:
        """The venue's id for legato's id, remembered for the way back."""
        venue_id = venue_client_id(client_order_id, self.rule)
        if venue_id != client_order_id:
            if venue_id not in self._back and len(self._back) >= self._kept:
                del self._back[next(iter(self._back))]
            self._back[venue_id] = client_order_id
        return venue_id

    def from_venue(self, venue_id: str) -> str:
        """legato's id for the venue's id (the venue's own when it was never mapped here)."""
        return self._back.get(venue_id, venue_id)
