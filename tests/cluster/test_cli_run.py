"""`legato run` on the session's Ray: progress lines, the summary, the JSON report, the exit
status."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import ray

from actors.lifecycle import BasketState
from actors.report import load_report
from cluster import cli
from tests.cluster.test_baskets import (  # noqa: F401 (make_engine: a fixture)
    BETA,
    NAMESPACE,
    SYNTH_ETH,
    VENUES,
    make_engine,
    synth_eth,
    venues,
)

pytestmark = pytest.mark.usefixtures("ray_session")


def files(tmp_path: Path, gamma_usdt: int = 500_000) -> tuple[Path, Path]:
    venues = tmp_path / "venues.toml"
    venues.write_text(VENUES.format(beta_profile=BETA, gamma_rejects=0.0, gamma_usdt=gamma_usdt))
    basket = tmp_path / "basket.toml"
    basket.write_text(
        SYNTH_ETH.format(
            basket_id=f"t-cli-{gamma_usdt}",
            policy="unwind",
            steth_usd=1000,
            btc_usd=10400,
            activation=10_000,
            risk_price=1.0,
        )
    )
    return venues, basket


def test_run_prints_progress_and_the_summary_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venues, basket = files(tmp_path)
    out = tmp_path / "report.json"
    rc = cli.main(["run", str(basket), "--venues", str(venues), "--json", str(out), "--every", "1"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "t-cli-500000 RUNNING" in printed  # plain progress lines: stdout is no terminal
    assert "basket t-cli-500000: COMPLETED" in printed
    for leg in ("eth", "steth", "btc"):
        assert f"\n  {leg} " in printed
    report = load_report(out)
    assert report.status is BasketState.COMPLETED
    assert msgspec.json.decode(out.read_bytes())["basket_id"] == "t-cli-500000"


def test_run_exits_non_zero_when_the_basket_does_not_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venues, basket = files(tmp_path, gamma_usdt=100)  # gamma cannot margin its leg
    rc = cli.main(["run", str(basket), "--venues", str(venues), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 1
    assert "FAILED" in printed and "gamma" in printed


def test_status_json_and_release_hedge_on_a_basket_that_holds_its_hedge(
    make_engine,  # noqa: F811 (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # As test_complete_policy_keeps_the_healthy_legs_going_and_holds_the_hedge: gamma refuses
    # every order, so under `complete` the basket ends holding its hedge.
    engine = make_engine(venues(gamma_rejects=1.0))
    handle = engine.submit(synth_eth("t-cli-hold", policy="complete", activation=5, eager=True))
    capsys.readouterr()
    assert cli.main(["status", "--json", "--namespace", NAMESPACE, "--recent", "0"]) == 0
    doc = msgspec.json.decode(capsys.readouterr().out)
    assert doc["namespace"] == NAMESPACE and doc["recent"] == []
    # The journal the cluster's engine keeps, whatever this machine's default would be.
    monkeypatch.setenv("LEGATO_JOURNAL", str(tmp_path / "not-the-clusters"))
    assert cli.main(["status", "--json", "--namespace", NAMESPACE]) == 0
    assert msgspec.json.decode(capsys.readouterr().out)["journal"] == engine.journal
    seen = [s["basket_id"] for s in doc["running"] + doc["queued"]]
    assert seen in ([], ["t-cli-hold"])  # listed while it lives (it may have ended already)
    report = handle.result(timeout=120)
    assert report.hedge is not None and report.hedge.held
    # What the web view lists as held: the hedge actor's own account of it.
    assert "t-cli-hold" in ray.get(engine.hedger.held.remote(), timeout=10)

    assert cli.main(["release-hedge", "t-cli-hold", "--namespace", NAMESPACE]) == 0
    out = capsys.readouterr().out
    assert "basket t-cli-hold: hedge released:" in out and out.rstrip().endswith("flat")
    assert "t-cli-hold" not in ray.get(engine.hedger.held.remote(), timeout=10)
    # Released once: nothing is held any more.
    assert cli.main(["release-hedge", "t-cli-hold", "--namespace", NAMESPACE]) == 2
    assert "holds no hedge" in capsys.readouterr().err
