"""Metrics and the audit log on a real local Ray: a basket runs on simulated venues, then the
node's Prometheus endpoint (Ray's metrics agent) is scraped until its counters agree with
the journal, and the audit file is checked against the journal's child orders."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import ray

from actors.journal import journal_store
from actors.journal.records import FillBooked, HedgeOrderSent
from actors.lifecycle import BasketState
from actors.shells.audit import AUDIT_FILE
from actors.spec import load_basket
from tests.cluster.test_baskets import (
    BETA,
    EAGER_RISK_PRICE,
    SYNTH_ETH,
    VENUES,
    make_engine,  # noqa: F401 (a fixture)
)
from venues.config import parse_venues

pytestmark = pytest.mark.usefixtures("ray_session")

# Venues of their own (series of other tests' baskets carry other venue names).
NAMES = {"alpha": "m_alpha", "beta": "m_beta", "gamma": "m_gamma"}
SCRAPE_DEADLINE_S = 40.0
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def renamed(text: str) -> str:
    for old, new in NAMES.items():
        text = text.replace(f"venues.{old}", f"venues.{new}").replace(f'"{old}"', f'"{new}"')
    return text


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the endpoint: (name, labels, value)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None or line.startswith("#"):
            continue
        out.append((m["name"], dict(_LABEL.findall(m["labels"] or "")), float(m["value"])))
    return out


def summed(samples, name: str, **labels: str) -> float:
    """A metric summed over the series with `labels` (over Ray's worker ids, say)."""
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


def journaled(location: str, run_id: str) -> tuple[list, list[FillBooked], list[HedgeOrderSent]]:
    async def read() -> tuple[list, list, list]:
        store = journal_store(location)
        await store.open()
        try:
            orders = await store.orders(run_id)
            fills = [e.record for e in await store.records(run_id, [FillBooked])]
            hedges = [e.record for e in await store.records(None, [HedgeOrderSent])]
            return orders, fills, hedges
        finally:
            await store.close()

    return asyncio.run(read())


def test_counters_gauges_and_the_audit_log_agree_with_the_journal(make_engine) -> None:  # noqa: F811
    import tomllib  # noqa: PLC0415

    text = VENUES.format(beta_profile=BETA, gamma_rejects=0.0, gamma_usdt=500_000)
    engine = make_engine(parse_venues(tomllib.loads(renamed(text)), source="metrics venues"))
    basket_id = f"t-metrics-{uuid.uuid4().hex[:6]}"
    spec = load_basket(
        renamed(
            SYNTH_ETH.format(
                basket_id=basket_id,
                policy="hedge_and_hold",
                steth_usd=1000,
                btc_usd=10400,
                activation=5,  # hedge at once: the hedge desk trades too
                risk_price=EAGER_RISK_PRICE,
            )
        )
    )
    handle = engine.submit(spec)
    report = handle.result(timeout=60)
    assert report.status is BasketState.COMPLETED, report.reason
    orders, fills, hedge_orders = journaled(engine.journal, handle.run_id)
    assert orders and fills

    sent: dict[str, int] = defaultdict(int)
    filled: dict[str, int] = defaultdict(int)
    for o in orders:
        sent[o.venue] += 1
    for f in fills:
        filled[f.venue] += 1
    hedged = sum(1 for h in hedge_orders if h.venue == NAMES["alpha"])
    expected = {
        **{("ray_legato_orders_sent_total", v, "leg"): n for v, n in sent.items()},
        **{("ray_legato_fills_total", v, "leg"): n for v, n in filled.items()},
        ("ray_legato_orders_sent_total", NAMES["alpha"], "hedge"): hedged,
    }

    port = ray._private.worker.global_worker.node.metrics_export_port
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    seen: dict = {}
    while True:
        samples = scrape(port)
        seen = {key: summed(samples, key[0], venue=key[1], role=key[2]) for key in expected}
        names = {n for n, _, _ in samples}
        gauges = {
            "ray_legato_collateral_free",
            "ray_legato_collateral_reserved",
            "ray_legato_hedge_position_usd",
            "ray_legato_baskets",
        }
        if seen == expected and gauges <= names:
            break
        assert time.monotonic() < deadline, f"scraped {seen}, journal {expected}; {names}"
        time.sleep(0.25)

    assert summed(samples, "ray_legato_collateral_free", venue=NAMES["gamma"]) > 0
    assert any(
        n == "ray_legato_hedge_position_usd" and lab.get("venue") == NAMES["alpha"]
        for n, lab, _ in samples
    )
    states = {lab["state"] for n, lab, _ in samples if n == "ray_legato_baskets"}
    assert {"RUNNING", "QUEUED", "ARMING"} <= states
    legato = [(n, lab) for n, lab, _ in samples if n.startswith("ray_legato_")]
    for name, labels in legato:
        assert not {"basket", "basket_id", "run_id", "leg", "client_order_id"} & set(labels), name

    # The audit log: beside the session's journal, a line for every child order sent, and
    # an answer for each; never a key or secret of the venues' accounts.
    audit = Path(engine.journal) / AUDIT_FILE
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    ours = [x for x in lines if x.get("run_id") == handle.run_id]
    coids = {o.order.client_order_id for o in orders}
    assert {x["client_order_id"] for x in ours if x["event"] == "order_sent"} == coids
    answered = {"order_acked", "order_rejected", "order_unknown"}
    assert {x["client_order_id"] for x in ours if x["event"] in answered} == coids
    assert sum(1 for x in ours if x["event"] == "fill") == len(fills)
    text = audit.read_text()
    for secret in ("test-alpha-key", "test-alpha-secret", "test-gamma-secret"):
        assert secret not in text
