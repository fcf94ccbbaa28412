"""The simulated venue's rule for a reused client order id, over real sockets: refused for
ever by default, or (`client_id_reuse = "after_close"`, Binance USD-M's rule) only while the
order that has it is open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.integration.test_binance_server import (
    FAST,
    Client,
    Sim,
    order_updates,
    receive,
    running,
    until,
)
from venues.config import ConfigError, load_venues, profile_from
from venues.model import Side
from venues.sim.profile import ClientIdReuse

AFTER_CLOSE = msgspec.structs.replace(FAST, client_id_reuse=ClientIdReuse.AFTER_CLOSE)
DUPLICATE = -4116  # Binance's "ClientOrderId is duplicated."


async def rest(c: Client, coid: str, price: str = "59990.0") -> tuple[int, Any]:
    """A resting bid for 0.002 BTC below the book's best bid (60000.0)."""
    return await c.order(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.002",
        price=price,
        newClientOrderId=coid,
        newOrderRespType="RESULT",
    )


async def by_client_id(c: Client, coid: str) -> dict[str, Any]:
    status, body = await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId=coid)
    assert status == 200, body
    return body


async def by_order_id(c: Client, order_id: int) -> dict[str, Any]:
    status, body = await c.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=order_id)
    assert status == 200, body
    return body


async def cancel(c: Client, **which: Any) -> tuple[int, Any]:
    return await c.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", **which)


async def test_after_close_an_id_is_refused_while_open_and_taken_again_once_filled() -> None:
    async with running(AFTER_CLOSE) as sim:
        c = sim.client
        status, first = await rest(c, "re-1")
        assert (status, first["status"]) == (200, "NEW"), first
        status, refused = await rest(c, "re-1", "59980.0")
        assert (status, refused.get("code")) == (400, DUPLICATE)
        assert refused["msg"].startswith("ClientOrderId is duplicated.")

        # A seller from the rest of the market takes the book's 1 BTC bid at 60000.0, then
        # fills the resting bid.
        sim.trade("BTCUSDT", Side.SELL, "59990.0", "1.002")

        async def filled() -> bool:
            return (await by_order_id(c, first["orderId"]))["status"] == "FILLED"

        await until(filled)
        status, second = await rest(c, "re-1", "59980.0")
        assert (status, second["status"]) == (200, "NEW"), second
        assert second["orderId"] != first["orderId"]

        newest = await by_client_id(c, "re-1")
        assert (newest["orderId"], newest["price"], newest["status"]) == (
            second["orderId"],
            "59980.0",
            "NEW",
        )
        older = await by_order_id(c, first["orderId"])
        assert (older["clientOrderId"], older["status"]) == ("re-1", "FILLED")
        # The fill stays the first order's; the position is the first order's alone.
        _, trades = await c.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
        assert [t["orderId"] for t in trades] == [first["orderId"]]
        _, risk = await c.signed("GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")
        assert [p["positionAmt"] for p in risk] == ["0.002"]


async def test_after_close_a_cancelled_orders_id_names_the_new_order() -> None:
    async with running(AFTER_CLOSE) as sim:
        c = sim.client
        status, key = await c.send("POST", "/fapi/v1/listenKey")
        assert status == 200
        async with c.session.ws_connect(f"{sim.server.ws_url}/ws/{key['listenKey']}") as ws:
            _, first = await rest(c, "re-2")
            status, canceled = await cancel(c, origClientOrderId="re-2")
            assert (status, canceled["status"]) == (200, "CANCELED")
            status, second = await rest(c, "re-2", "59980.0")
            assert (status, second["status"]) == (200, "NEW"), second
            assert second["orderId"] != first["orderId"]
            assert (await by_client_id(c, "re-2"))["orderId"] == second["orderId"]

            # The older order, cancelled, is still addressed by its own id: cancelling it
            # again is refused and leaves the newer one open.
            status, body = await cancel(c, orderId=first["orderId"])
            assert (status, body.get("code")) == (400, -2011)
            assert (await by_order_id(c, second["orderId"]))["status"] == "NEW"
            _, opened = await c.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
            assert [o["orderId"] for o in opened] == [second["orderId"]]

            status, body = await cancel(c, origClientOrderId="re-2")
            assert (status, body["orderId"], body["status"]) == (
                200,
                second["orderId"],
                "CANCELED",
            )

            # The user stream carries both orders under the one client order id.
            def both_closed(msgs: list[dict[str, Any]]) -> bool:
                done = [o for o in order_updates(msgs, "re-2") if o["X"] == "CANCELED"]
                return len(done) == 2

            msgs = await receive(ws, both_closed)
        updates = [(o["i"], o["X"]) for o in order_updates(msgs, "re-2")]
        assert updates == [
            (first["orderId"], "NEW"),
            (first["orderId"], "CANCELED"),
            (second["orderId"], "NEW"),
            (second["orderId"], "CANCELED"),
        ]


async def test_by_default_an_id_stays_refused_after_its_order_closed() -> None:
    async with running() as sim:
        c = sim.client
        _, first = await rest(c, "once")
        status, canceled = await cancel(c, origClientOrderId="once")
        assert (status, canceled["status"]) == (200, "CANCELED")
        status, refused = await rest(c, "once", "59980.0")
        assert (status, refused.get("code")) == (400, DUPLICATE)
        found = await by_client_id(c, "once")
        assert (found["orderId"], found["status"]) == (first["orderId"], "CANCELED")
        _, opened = await c.signed("GET", "/fapi/v1/openOrders")
        assert opened == []


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running() as s:
        yield s


async def test_the_admin_api_sets_the_rule_on_a_running_venue(sim: Sim) -> None:
    c = sim.client
    status, profile = await c.admin("GET", "/_sim/profile")
    assert (status, profile["client_id_reuse"]) == (200, "never")
    assert (await rest(c, "adm-1"))[0] == 200
    assert (await cancel(c, origClientOrderId="adm-1"))[0] == 200
    assert (await rest(c, "adm-1"))[1].get("code") == DUPLICATE

    status, profile = await c.admin("POST", "/_sim/profile", {"client_id_reuse": "after_close"})
    assert (status, profile["client_id_reuse"]) == (200, "after_close")
    status, again = await rest(c, "adm-1")
    assert (status, again["status"]) == (200, "NEW"), again

    status, body = await c.admin("POST", "/_sim/profile", {"client_id_reuse": "sometimes"})
    assert (status, body.get("code")) == (400, -1130)
    assert "client_id_reuse" in body["msg"]
    assert (await c.admin("GET", "/_sim/profile"))[1]["client_id_reuse"] == "after_close"


@pytest.mark.parametrize("value", ['"sometimes"', '"AFTER_CLOSE"', "true"])
def test_a_bad_rule_in_the_config_names_the_field_and_what_is_accepted(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "venues.toml"
    path.write_text(f'[venues.a]\nkind = "sim"\n[venues.a.profile]\nclient_id_reuse = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_venues(path)
    message = str(info.value)
    assert message.startswith(f"{path}: venues.a.profile.client_id_reuse: "), message
    assert message.endswith('; accepted: "never" or "after_close"'), message


def test_the_config_takes_the_rule_and_it_defaults_to_never(tmp_path: Path) -> None:
    path = tmp_path / "venues.toml"
    path.write_text(
        '[venues.a]\nkind = "sim"\n[venues.a.profile]\npreset = "colo"\n'
        'client_id_reuse = "after_close"\n'
        '[venues.b]\nkind = "sim"\nprofile = "colo"\n'
    )
    venues = load_venues(path).venues
    assert profile_from(venues["a"].profile).client_id_reuse is ClientIdReuse.AFTER_CLOSE
    assert profile_from(venues["b"].profile).client_id_reuse is ClientIdReuse.NEVER
