"""Real venue accounts claimed per namespace, on a real local Ray: an engine's claim
refuses another namespace while the claiming namespace's venue actors live, and lapses
once they are gone."""

from __future__ import annotations

import uuid

import pytest
import ray

from actors.shells.accounts import ACCOUNTS_NAME, ACCOUNTS_NAMESPACE, account_key
from cluster.engine import Engine
from tests.cluster.test_baskets import venues
from venues.config import BinanceUsdmConfig, VenuesConfig

pytestmark = pytest.mark.usefixtures("ray_session")


def test_an_account_a_live_namespace_trades_is_refused_to_another_until_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAIMS_TEST_KEY", f"key-{uuid.uuid4().hex}")
    real = BinanceUsdmConfig(api_key_env="CLAIMS_TEST_KEY", secret_env="CLAIMS_TEST_SECRET")
    config = VenuesConfig(venues={"desk": real})
    first = Engine.start(venues(), namespace="legato-test-claims-a")
    try:
        # The first namespace's engine trades the account through its venue actor "alpha".
        held_by = {"desk": first.venues["alpha"]}
        assert Engine._claim_accounts(config, "legato-test-claims-a", held_by) == ""
        claims = ray.get_actor(ACCOUNTS_NAME, namespace=ACCOUNTS_NAMESPACE)
        assert ray.get(claims.held.remote())[account_key(real)] == "legato-test-claims-a"
        # Another namespace is refused it, by name, and told what to do.
        other = {"desk": first.venues["beta"]}
        said = Engine._claim_accounts(config, "legato-test-claims-b", other)
        assert "venue desk: its account is traded by namespace 'legato-test-claims-a'" in said
        assert "run both in one namespace" in said
        assert "key-" not in said  # the key never shows
    finally:
        first.shutdown()
    # Its engine gone (its venue actors with it), the claim lapses.
    second = Engine.start(venues(), namespace="legato-test-claims-b")
    try:
        assert (
            Engine._claim_accounts(config, "legato-test-claims-b", {"desk": second.venues["alpha"]})
            == ""
        )
    finally:
        second.shutdown()
