"""`legato run` on the session's Ray: progress lines, the summary, the JSON report, the exit
status."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors.lifecycle import BasketState
from actors.report import load_report
from cluster import cli
from tests.cluster.test_baskets import BETA, SYNTH_ETH, VENUES

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
