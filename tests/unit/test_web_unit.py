"""The web view without Ray: the binding and token rules, and the server's answers over a
real socket on 127.0.0.1 with a hand-written desk behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from actors.lifecycle import BasketState
from cluster.web import view
from cluster.web.security import (
    MIN_TOKEN_CHARS,
    TOKEN_ENV,
    Denied,
    Guard,
    WebError,
    check_bind,
    is_loopback,
    load_token,
)
from cluster.web.server import make_app
from cluster.web.sources import NotFound

TOKEN = "s3cret-token-for-tests-0123456789"


# -- the rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "desk.example.com"])
def test_binding_beyond_the_loopback_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(WebError, match="needs a token") as e:
        check_bind(host, None)
    assert TOKEN_ENV in str(e.value) and "--token-file" in str(e.value)
    check_bind(host, TOKEN)  # with one it may
    with pytest.raises(WebError, match="needs a token"):
        make_app("ns", host=host, token=None)


def test_the_loopback_may_be_bound_without_a_token() -> None:
    check_bind("127.0.0.1", None)


def test_the_token_comes_from_the_file_before_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-the-file-0123456789\n")
    assert load_token({TOKEN_ENV: TOKEN}, path) == "from-the-file-0123456789"
    assert load_token({TOKEN_ENV: f"  {TOKEN} "}) == TOKEN
    assert load_token({}) is None
    assert load_token({TOKEN_ENV: "  "}) is None


def test_a_bad_token_is_refused_naming_where_it_came_from_never_what_it_is(
    tmp_path: Path,
) -> None:
    short = "x" * (MIN_TOKEN_CHARS - 1)
    with pytest.raises(WebError, match=rf"\${TOKEN_ENV}: the token must be at least") as e:
        load_token({TOKEN_ENV: short})
    assert short not in str(e.value)
    with pytest.raises(WebError, match=r"--token-file .*cannot read it"):
        load_token({}, tmp_path / "missing")
    spaced = tmp_path / "spaced"
    spaced.write_text("two words but long enough\n")
    with pytest.raises(WebError, match="one word") as e:
        load_token({}, spaced)
    assert "two words" not in str(e.value)


def test_actions_need_the_token_and_are_disabled_without_one() -> None:
    with pytest.raises(Denied) as e:
        Guard(None, "127.0.0.1").check_action(f"Bearer {TOKEN}")
    assert e.value.status == 403 and TOKEN_ENV in e.value.message
    guard = Guard(TOKEN, "127.0.0.1")
    for header in (None, "", "Basic abc", "Bearer", f"Bearer {TOKEN}x"):
        with pytest.raises(Denied) as e:
            guard.check_action(header)
        assert e.value.status == 401 and TOKEN not in e.value.message
    guard.check_action(f"Bearer {TOKEN}")
    guard.check_action(f"bearer   {TOKEN}  ")


def test_reads_need_the_token_only_beyond_the_loopback() -> None:
    Guard(TOKEN, "127.0.0.1").check_read(None, None)
    wide = Guard(TOKEN, "0.0.0.0")
    with pytest.raises(Denied) as e:
        wide.check_read(None, None)
    assert e.value.status == 401
    with pytest.raises(Denied):
        wide.check_read(None, TOKEN)  # the cookie holds a value derived from it, not it
    wide.check_read(f"Bearer {TOKEN}", None)
    wide.check_read(None, wide.session_cookie())
    assert TOKEN not in wide.session_cookie()


# -- the server, with a desk of our own ------------------------------------------------------
def _state(progress: float, actions: bool) -> view.DeskState:
    leg = view.LegRow(
        leg_id="eth",
        side="BUY",
        status="WORKING",
        progress=progress,
        filled_qty=Decimal(progress),
        target_qty=Decimal(1),
        open_qty=Decimal(0),
        avg_price=None,
        mark_price=None,
        imbalance_usd=None,
        blocked=False,
        reason="",
    )
    basket = view.BasketRow(
        basket_id="b/1",
        state="RUNNING",
        reason="",
        queue="running",
        terminal=False,
        schedule_progress=progress,
        band=0.05,
        skew=0.0,
        outside_band=False,
        imbalance_usd=None,
        hedge_position_usd=0.0,
        legs=[leg],
        transfers=[],
        ts_ns=1,
        cancel_url=view.cancel_url("b/1"),
    )
    return view.DeskState(
        ts_ns=1,
        namespace="ns",
        journal="",
        actions_enabled=actions,
        baskets=[basket],
        waiting=[],
        hedge=None,
        collateral=None,
        transfers=[],
        runs=[],
        problems=[],
    )


class StubDesk:
    """Answers as `DeskReader` does; its basket's progress moves on each reading."""

    def __init__(self) -> None:
        self.readings = 0
        self.cancelled: list[tuple[str, str]] = []

    async def state(self, *, actions_enabled: bool) -> view.DeskState:
        self.readings += 1
        return _state(min(1.0, self.readings / 100), actions_enabled)

    async def runs(self, limit: int) -> list[object]:
        return []

    async def report_html(self, run_id: str) -> str:
        raise NotFound(f"no run {run_id!r} in the journal")

    async def cancel(self, basket_id: str, reason: str) -> BasketState:
        self.cancelled.append((basket_id, reason))
        return BasketState.RUNNING

    async def release(self, basket_id: str) -> list[object]:
        return []

    async def close(self) -> None:
        pass


@pytest.fixture
async def serving(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, StubDesk]]:
    token, host = getattr(request, "param", (None, "127.0.0.1"))
    desk = StubDesk()
    app = make_app("ns", host=host, token=token, every_s=0.05, reader=desk)  # type: ignore[arg-type]
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", desk
    finally:
        await server.close()


async def test_the_page_and_its_script_are_served_locally(serving: tuple[str, StubDesk]) -> None:
    url, _ = serving
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/") as r:
            page = await r.text()
            assert r.status == 200 and "/static/app.js" in page
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert "http" not in page.replace("http-equiv", "")  # nothing fetched elsewhere
        for name in ("app.js", "style.css"):
            async with http.get(f"{url}/static/{name}") as r:
                assert r.status == 200
        async with http.get(url + "/nowhere") as r:
            assert r.status == 404 and "no page" in (await r.json())["error"]


async def test_the_event_stream_carries_states_as_they_change(
    serving: tuple[str, StubDesk],
) -> None:
    url, _ = serving
    seen: list[float] = []
    async with aiohttp.ClientSession() as http, http.get(url + "/api/events") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        async with asyncio.timeout(10):
            async for line in r.content:
                if line.startswith(b"data: "):
                    state = msgspec.json.decode(line[6:], type=view.DeskState)
                    seen.append(state.baskets[0].legs[0].progress)
                    if len(set(seen)) >= 2:
                        break
    assert len(set(seen)) >= 2


async def test_actions_without_a_token_answer_403_saying_how_to_enable_them(
    serving: tuple[str, StubDesk],
) -> None:
    url, desk = serving
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/api/baskets/b%2F1/cancel") as r:
            body = await r.json()
            assert r.status == 403 and TOKEN_ENV in body["error"]
        async with http.get(url + "/api/state") as r:
            assert (await r.json())["actions_enabled"] is False
    assert desk.cancelled == []


@pytest.mark.parametrize("serving", [(TOKEN, "127.0.0.1")], indirect=True)
async def test_a_cancel_needs_the_right_token(serving: tuple[str, StubDesk]) -> None:
    url, desk = serving
    cancel = url + "/api/baskets/b%2F1/cancel"
    async with aiohttp.ClientSession() as http:
        async with http.post(cancel, headers={"Authorization": "Bearer wrong-wrong-wrong"}) as r:
            body = await r.json()
            assert r.status == 401 and TOKEN not in str(body)
        assert desk.cancelled == []
        bad = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(cancel, headers=bad, json={"reason": 7}) as r:
            assert r.status == 400 and "reason" in (await r.json())["error"]
        async with http.post(cancel, headers=bad, json={"reason": "desk says stop"}) as r:
            assert r.status == 200 and (await r.json())["was"] == "RUNNING"
        async with http.post(url + "/api/hedges/b%2F1/release", headers=bad) as r:
            assert r.status == 404 and "holds no hedge" in (await r.json())["error"]
    assert desk.cancelled == [("b/1", "desk says stop")]


@pytest.mark.parametrize("serving", [(TOKEN, "0.0.0.0")], indirect=True)
async def test_beyond_the_loopback_reads_need_the_token_or_its_session(
    serving: tuple[str, StubDesk],
) -> None:
    url, _ = serving
    # The cookie jar keeps cookies of an IP address only when told to (the server is one).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url + "/api/state") as r:
            assert r.status == 401
        async with http.post(url + "/api/session", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with http.post(url + "/api/session", headers={"Authorization": f"Bearer {TOKEN}"}):
            pass
        async with http.get(url + "/api/state") as r:
            assert r.status == 200 and (await r.json())["baskets"][0]["basket_id"] == "b/1"


async def test_a_page_under_another_name_is_turned_away(serving: tuple[str, StubDesk]) -> None:
    # DNS rebinding: evil.example resolving to 127.0.0.1 must not read the desk.
    url, _ = serving
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/api/state", headers={"Host": "evil.example"}) as r,
    ):
        assert r.status == 421


def test_the_app_is_an_aiohttp_application() -> None:
    assert isinstance(make_app("ns"), web.Application)


# -- `legato web`'s refusals, before any cluster is asked ------------------------------------
def _web(argv: list[str]) -> int:
    import argparse  # noqa: PLC0415

    from cluster.web import add_web_command  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="legato")
    add_web_command(parser.add_subparsers())
    args = parser.parse_args(["web", *argv])
    return args.func(args)


def test_legato_web_refuses_a_wide_binding_without_a_token_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert _web(["--host", "0.0.0.0", "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("legato: error: --host 0.0.0.0:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_legato_web_without_a_cluster_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert _web([]) == 2
    err = capsys.readouterr().err
    assert "--address" in err and "RAY_ADDRESS" in err and TOKEN not in err
