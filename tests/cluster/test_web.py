"""The web view live on Ray, over real HTTP on 127.0.0.1: a basket shows up with its legs,
its progress arrives as server-sent events, its run and report are there once it ends, and
the actions keep to the token rules (a cancel with the token cancels)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec
import pytest

from actors.lifecycle import BasketState
from actors.spec.overrides import load_basket_with_overrides
from cluster.engine import Engine
from cluster.web import RunningWeb, serve_in_thread
from tests.cluster.conftest import NAMESPACE as SESSION_NAMESPACE
from tests.support import without_injected_rejects

# A namespace of its own: no venue or basket another test left running can be in it.
NAMESPACE = f"{SESSION_NAMESPACE}-web"

pytestmark = pytest.mark.usefixtures("ray_session")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "web-test-token-0123456789abcdef"
T = TypeVar("T")


def quick(basket_id: str, horizon_s: int) -> Any:
    spec = load_basket_with_overrides(
        EXAMPLES / "synthetic_eth_quick.toml", [f"params.horizon_s={horizon_s}"]
    )
    return msgspec.structs.replace(spec, basket_id=basket_id)


def until(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    """`probe()` once it is truthy, asked again until `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)  # polling interval of a condition, with the deadline above


def call(
    url: str, *, method: str = "GET", token: str | None = None, body: bytes | None = None
) -> tuple[int, bytes, str]:
    """(status, body, content type) of one request."""
    request = urllib.request.Request(url, method=method, data=body)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def state_of(web: RunningWeb) -> dict[str, Any]:
    status, body, kind = call(web.url + "api/state")
    assert status == 200 and kind.startswith("application/json"), body
    return json.loads(body)


def basket_in(state: dict[str, Any], basket_id: str) -> dict[str, Any] | None:
    return next((b for b in state["baskets"] if b["basket_id"] == basket_id), None)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    venues = without_injected_rejects("venues.toml", tmp_path_factory.mktemp("web"))
    with Engine.start(venues, namespace=NAMESPACE) as engine:
        yield engine


@pytest.fixture(scope="module")
def web(engine: Engine) -> Iterator[RunningWeb]:
    with serve_in_thread(NAMESPACE, token=TOKEN, every_s=0.3) as running:
        assert running.url.startswith("http://127.0.0.1:")
        yield running


def test_a_running_basket_is_shown_live_and_its_report_after_it_ends(
    engine: Engine, web: RunningWeb
) -> None:
    handle = engine.submit(quick("web-live", horizon_s=20))

    row = until(
        "the basket in /api/state with its legs",
        lambda: (b := basket_in(state_of(web), "web-live")) and len(b["legs"]) == 3 and b,
        30,
    )
    assert {leg["leg_id"] for leg in row["legs"]} == {"eth", "steth", "btc"}
    assert row["band"] == pytest.approx(0.05)
    assert row["cancel_url"] == "/api/baskets/web-live/cancel"

    # The event stream: two snapshots of this basket whose legs' progress differs.
    progress: set[tuple[float, ...]] = set()
    deadline = time.monotonic() + 40
    with urllib.request.urlopen(web.url + "api/events", timeout=20) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for raw in stream:
            if raw.startswith(b"data: "):
                b = basket_in(json.loads(raw[6:]), "web-live")
                if b is not None:
                    progress.add(tuple(leg["progress"] for leg in b["legs"]))
            if len(progress) >= 2 or time.monotonic() > deadline:
                break
    assert len(progress) >= 2, f"the legs' progress never moved on the stream: {progress}"

    report = handle.result(timeout=90)
    assert report.status is BasketState.COMPLETED, report.reason
    run_id = handle.run_id

    def listed() -> dict[str, Any] | None:
        status, body, _ = call(web.url + "api/runs")
        assert status == 200, body
        runs = json.loads(body)["runs"]
        return next((r for r in runs if r["run_id"] == run_id and r["report_url"]), None)

    run = until(f"run {run_id} finished in /api/runs", listed, 30)
    assert run["state"] == "COMPLETED"
    assert run["report_url"] == f"/runs/{quote(run_id, safe='')}/report.html"
    status, page, kind = call(web.url + run["report_url"].lstrip("/"))
    assert status == 200 and kind.startswith("text/html")
    assert b"<!DOCTYPE html>" in page and b"web-live" in page
    # ... and the page of the desk lists it, the basket no longer running.
    state = until(
        "the run in the pushed state",
        lambda: (
            (s := state_of(web))
            and any(r["run_id"] == run_id for r in s["runs"])
            and basket_in(s, "web-live") is None
            and s
        ),
        15,
    )
    assert state["collateral"] is not None and state["hedge"] is not None

    status, body, _ = call(web.url + "runs/no-such-run%231/report.html")
    assert status == 404 and "no run" in json.loads(body)["error"]


def test_actions_keep_to_the_token_and_a_cancel_with_it_cancels(
    engine: Engine, web: RunningWeb
) -> None:
    handle = engine.submit(quick("web-cancel", horizon_s=120))
    until(
        "the basket running in /api/state",
        lambda: (b := basket_in(state_of(web), "web-cancel")) and b["state"] == "RUNNING",
        40,
    )
    cancel = web.url + "api/baskets/web-cancel/cancel"
    with serve_in_thread(NAMESPACE, every_s=0.3) as read_only:  # started without a token
        status, body, _ = call(read_only.url + "api/baskets/web-cancel/cancel", method="POST")
        assert status == 403 and "LEGATO_WEB_TOKEN" in json.loads(body)["error"]
        assert state_of(read_only)["actions_enabled"] is False
    status, body, _ = call(cancel, method="POST", token="not-the-token-0123456789")
    assert status == 401 and TOKEN not in body.decode()
    status, body, _ = call(web.url + "api/hedges/web-cancel/release", method="POST")
    assert status == 401
    assert handle.status().state is BasketState.RUNNING  # nothing above touched it

    reason = json.dumps({"reason": "stopped from the test"}).encode()
    status, body, _ = call(cancel, method="POST", token=TOKEN, body=reason)
    assert status == 200, body
    assert json.loads(body)["was"] == "RUNNING"
    report = handle.result(timeout=60)
    assert report.status is BasketState.CANCELLED

    status, body, _ = call(
        web.url + "api/baskets/web-cancel/cancel", method="POST", token=TOKEN, body=reason
    )
    assert status == 404 and "no basket 'web-cancel' is running" in json.loads(body)["error"]

    # Its policy (hedge_and_hold) may have left a hedge with the desk: released, or none.
    status, body, _ = call(web.url + "api/hedges/web-cancel/release", method="POST", token=TOKEN)
    answer = json.loads(body)
    if status == 200:
        assert [s["basket_id"] for s in answer["released"]] == ["web-cancel"] * len(
            answer["released"]
        )
    else:
        assert status == 404 and "holds no hedge for basket 'web-cancel'" in answer["error"]
