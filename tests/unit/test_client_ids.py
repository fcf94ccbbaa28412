"""legato's client order ids under other venues' rules: deterministic, accepted, reversible."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from venues.client_ids import ClientIds, venue_client_id
from venues.model import BINANCE_CLIENT_IDS, AckKind, Capabilities, ClientIdRule, InstrumentKind

OKX = ClientIdRule(max_len=32, alphabet=string.ascii_letters + string.digits)
HYPERLIQUID = ClientIdRule(
    max_len=34, alphabet="0123456789abcdef", prefix="0x", digest_alphabet="0123456789abcdef"
)
legato_ids = st.text(string.ascii_letters + string.digits + "._:/-", min_size=1, max_size=36)


def test_binance_takes_legatos_ids_as_they_are() -> None:
    coid = "synth-eth.k3f9x-ethperp-17"
    assert venue_client_id(coid, BINANCE_CLIENT_IDS) == coid
    assert ClientIds(BINANCE_CLIENT_IDS).from_venue(coid) == coid


@given(legato_ids)
def test_an_id_a_rule_refuses_becomes_a_digest_it_accepts_and_maps_back(coid: str) -> None:
    for rule in (OKX, HYPERLIQUID):
        ids = ClientIds(rule)
        venue_id = ids.to_venue(coid)
        assert rule.accepts(venue_id)
        assert ids.from_venue(venue_id) == coid
        # Deterministic: a fresh adapter (a restarted leg) computes the same id.
        assert ClientIds(rule).to_venue(coid) == venue_id


def test_hyperliquid_ids_are_0x_and_32_hex_digits() -> None:
    venue_id = venue_client_id("b-eth-1", HYPERLIQUID)
    assert venue_id.startswith("0x") and len(venue_id) == 34
    assert set(venue_id[2:]) <= set("0123456789abcdef")


def test_distinct_ids_get_distinct_digests() -> None:
    ids = [f"basket-{leg}-{n}" for leg in ("eth", "btc", "steth") for n in range(2000)]
    assert len({venue_client_id(i, OKX) for i in ids}) == len(ids)


def test_a_venue_id_never_mapped_passes_through() -> None:
    assert ClientIds(OKX).from_venue("placedElsewhere1") == "placedElsewhere1"


def test_the_table_of_ids_is_bounded_oldest_first() -> None:
    ids = ClientIds(OKX, kept=2)
    first, second, third = (ids.to_venue(f"b-eth-{n}") for n in range(3))
    assert ids.from_venue(first) == first  # forgotten: passed through
    assert (ids.from_venue(second), ids.from_venue(third)) == ("b-eth-1", "b-eth-2")


def test_capabilities_say_what_a_leg_needs_and_the_venue_lacks() -> None:
    caps = Capabilities(
        instrument_kinds=frozenset({InstrumentKind.PERP}),
        ack_semantics=AckKind.ACCEPTED,
        post_only=False,
    )
    assert caps.missing(kind=InstrumentKind.PERP, reduce_only=True) == []
    assert caps.missing(kind=InstrumentKind.SPOT, post_only=True) == [
        "spot instruments (it trades: perp)",
        "post-only orders",
    ]
