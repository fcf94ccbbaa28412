"""`legato validate`: every example is accepted, every broken file refused naming its field,
and nothing is sent anywhere (no Ray, no socket: the simulated venues are built in-process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cluster.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BROKEN = ROOT / "tests" / "data" / "broken"
VENUES = EXAMPLES / "venues.toml"
BASKETS = sorted(p for p in EXAMPLES.glob("*.toml") if not p.name.startswith("venues"))


def test_there_are_examples_and_broken_files_to_check() -> None:
    assert len(BASKETS) >= 5
    assert len(sorted(BROKEN.glob("*.toml"))) == 5


@pytest.mark.parametrize("basket", BASKETS, ids=lambda p: p.name)
def test_every_example_basket_validates(basket: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(basket)]) == 0
    out = capsys.readouterr().out
    assert " ok against " in out and "nothing was sent" in out
    assert "reservable now on every venue" in out
    assert "\x1b[" not in out  # plain text: stdout is no terminal


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "wrong_types.toml",
            [
                "params.horizon_s: expected a number, got str",
                "legs[0].side: 1 is not accepted; accepted: BUY, SELL",
                "legs[0].quantity: Invalid decimal string ('lots')",
            ],
        ),
        (
            "unknown_venue.toml",
            ["legs[0].venue: 'delta' is not a known venue; known venues: alpha, beta, gamma"],
        ),
        (
            "symbol_not_listed.toml",
            [
                "legs[0].symbol: 'XYZUSDT' is not listed on venue gamma;",
                "gamma lists BTCUSDT, SOLUSDT",
            ],
        ),
        (
            "below_min_notional.toml",
            [
                "legs[0].quantity: 0.001 (",
                "is below the minimum notional of gamma/BTCUSDT; accepted: at least 100 USD",
            ],
        ),
        (
            "unfundable.toml",
            [
                "legs[0].quantity: venue gamma needs ",
                "but 500,000.00 USD is available",
                "[collateral] routing is off in the venues configuration, so nothing moves",
                "missing overall",
            ],
        ),
    ],
)
def test_a_broken_basket_is_refused_naming_each_field(
    name: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(BROKEN / name)]) == 2
    captured = capsys.readouterr()
    assert "ok against" not in captured.out
    err = captured.err
    assert err.startswith(f"legato: error: {BROKEN / name}: invalid basket")
    for part in expected:
        assert part in err
    assert "Traceback" not in err


def test_validate_is_a_command_that_sends_nothing_and_starts_no_ray() -> None:
    # A process of its own: Ray was never imported (no cluster, no venue actor), and the
    # exit statuses are those of the command line.
    script = (
        "import sys\n"
        "from cluster.cli import main\n"
        f"ok = main(['validate', {str(BASKETS[0])!r}])\n"
        f"bad = main(['validate', {str(BROKEN / 'unfundable.toml')!r}])\n"
        "assert 'ray' not in sys.modules, 'Ray was imported'\n"
        "sys.exit(10 * ok + bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr  # 10 × 0 + 2
    assert "Traceback" not in done.stderr


def routing_venues(tmp_path: Path) -> Path:
    text = VENUES.read_text()
    marker = "[venues.alpha]\n"
    assert marker in text
    path = tmp_path / "venues.toml"
    path.write_text(
        text.replace(marker, "[collateral]\nrouting = true\nwithdrawals = true\n\n" + marker, 1)
    )
    return path


def test_a_short_basket_under_routing_shows_the_transfers_that_would_fund_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venues = routing_venues(tmp_path)
    basket = EXAMPLES / "synthetic_eth_quick.toml"
    args = ["validate", str(basket), "--venues", str(venues)]
    assert main([*args, "--set", "legs.btc.notional_usd=1_500_000"]) == 0
    out = capsys.readouterr().out
    assert "short: under [collateral] routing these transfers would fund it: withdraw" in out
    assert "to gamma's spot wallet" in out
    # The same shortfall with a basket that asks for no transfers: refused.
    assert main([*args, "--set", "legs.btc.notional_usd=1_500_000", "--set",
                 "params.on_unfunded=refuse"]) == 2  # fmt: skip
    assert "params.on_unfunded is refuse, so nothing moves" in capsys.readouterr().err
    # Beyond what every venue holds: no route.
    assert main(["validate", str(BROKEN / "unfundable.toml"), "--venues", str(venues)]) == 2
    assert "no transfer can cure it" in capsys.readouterr().err


def test_a_real_venue_without_credentials_is_an_error_naming_the_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEGATO_TEST_NO_KEY", raising=False)
    monkeypatch.delenv("LEGATO_TEST_NO_SECRET", raising=False)
    venues = tmp_path / "venues.toml"
    venues.write_text(
        VENUES.read_text()
        + '\n[venues.live]\nkind = "binance_usdm"\napi_key_env = "LEGATO_TEST_NO_KEY"\n'
        'secret_env = "LEGATO_TEST_NO_SECRET"\n'
    )
    basket = tmp_path / "basket.toml"
    basket.write_text(
        (BROKEN / "unknown_venue.toml").read_text().replace('venue = "delta"', 'venue = "live"')
    )
    assert main(["validate", str(basket), "--venues", str(venues)]) == 2
    err = capsys.readouterr().err
    assert "venues.live: no credentials to read it with" in err
    assert "LEGATO_TEST_NO_KEY" in err and "Traceback" not in err


def test_a_missing_basket_or_venues_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/no/such/basket.toml"]) == 2
    assert "cannot read /no/such/basket.toml" in capsys.readouterr().err
    assert main(["validate", str(BASKETS[0]), "--venues", "/no/such/venues.toml"]) == 2
    assert "no such" in capsys.readouterr().err
