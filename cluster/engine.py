"""`Engine`: the driver API. Connect to (or start) Ray, bring up the venues and the cluster
singletons, submit baskets, watch them, get their reports (DESIGN §1).

```python
from cluster import Engine
with Engine.start("examples/venues.toml") as engine:
    handle = engine.submit("examples/synthetic_eth.toml")
    report = handle.result(timeout=300)
```

Placement: every venue has a node label (`venue=<name>` unless its config says otherwise).
When the cluster has nodes with those label keys, each venue actor and each leg actor is
pinned with `label_selector` to a node carrying its venue's label, and a venue whose label
no node carries is an error at once. When no node carries any of them (a laptop, the
embedded default), everything runs wherever Ray puts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from actors.journal.dsn import shown as _shown
from actors.lifecycle import BasketState
from actors.protocol import BasketOptions, BasketStatus, HedgeStatement, VenueEndpoint
from actors.report import BasketReport
from actors.shells.accounts import ACCOUNTS_NAME, ACCOUNTS_NAMESPACE, AccountClaims, account_key
from actors.shells.basket import BasketActor
from actors.shells.collateral import CollateralActor
from actors.shells.hedge import HedgeActor
from actors.shells.registry import BasketRegistry
from actors.shells.remote import (
    COLLATERAL_NAME,
    HEDGE_NAME,
    REGISTRY_NAME,
    actor_options,
    basket_actor_name,
    basket_actor_options,
    remote,
    singleton_options,
    venue_actor_name,
)
from actors.shells.venue import VenueActor
from actors.spec import (
    ID_ROOM,
    BasketSpec,
    HedgeSpec,
    RebalanceSpec,
    ResolvedBasket,
    SpecError,
    dump_basket,
    load_basket,
)
from cluster.address import AddressError, check_reachable
from cluster.config import ClusterConfig, check_pool, journal_location, load_cluster
from cluster.pool import BASKET, WarmPool, pooled_options
from venues.config import VenuesConfig

log = logging.getLogger(__name__)
Placement = Literal["auto", "labels", "anywhere"]
_START_TIMEOUT_S = 60.0
_RESTART_POLL_S = 0.2  # between calls to a supervisor Ray is restarting


class EngineError(RuntimeError):
    """The engine cannot do what was asked (a cluster, venue or basket problem, said plainly)."""


_Venue = remote(VenueActor)
_Basket = remote(BasketActor)
_Collateral = remote(CollateralActor)
_Hedge = remote(HedgeActor)
_Registry = remote(BasketRegistry)
_Accounts = remote(AccountClaims)


def _selector(label: str) -> dict[str, str]:
    key, _, value = label.partition("=")
    return {key.strip(): value.strip()}


def _alive_node_labels() -> list[dict[str, str]]:
    return [dict(n.get("Labels") or {}) for n in ray.nodes() if n.get("Alive")]


def running_baskets(namespace: str) -> dict[str, Any]:
    """The live basket actors of a namespace by basket id, those from a warm pool (which
    have no name) included: what `legato status` and `legato cancel` look for. Needs a
    connected Ray; {} when no engine ever ran in the namespace."""
    try:
        registry = ray.get_actor(REGISTRY_NAME, namespace=namespace)
    except ValueError:
        return {}
    return ray.get(registry.running.remote(), timeout=_START_TIMEOUT_S)


class BasketHandle:
    """A submitted basket: watch it, cancel it, wait for its report."""

    def __init__(
        self,
        basket: ResolvedBasket,
        actor: Any,
        run_ref: Any,
        *,
        warm_basket: bool = False,
        warm_legs: dict[str, Any] | None = None,
        on_end: Callable[[], None] | None = None,
        run_id: str = "",
        registry: Any = None,
    ) -> None:
        self.basket = basket
        self.basket_id = basket.basket_id
        self.run_id = run_id  # the run's identity in the journal ("<basket_id>#<n>")
        self._registry = registry
        self.actor = actor
        self.warm_basket = warm_basket  # its basket actor came from the warm pool
        self.warm_legs = dict(warm_legs or {})  # leg id → the pool's leg actor it runs on
        self._run = run_ref
        self._on_end = on_end
        self._report: BasketReport | None = None

    def status(self) -> BasketStatus:
        try:
            return ray.get(self.actor.status.remote())
        except RayActorError:
            # Taken over by a fresh actor (the supervisor's), under the same name; or ended.
            try:
                actor = ray.get_actor(basket_actor_name(self.basket_id), namespace=self._ns())
            except ValueError:
                raise RayActorError() from None  # ended, and its actor gone
            if actor._actor_id == self.actor._actor_id:
                raise
            self.actor = actor
            return ray.get(actor.status.remote())

    def _ns(self) -> str:
        return ray.get_runtime_context().namespace

    def _follow(self, timeout: float | None) -> BasketReport:
        """The run's report from the supervisor, asked again while Ray is still restarting
        it (a call to an actor that is restarting can fail at once rather than wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return ray.get(self._registry.follow.remote(self.run_id), timeout=left)
            except ActorUnavailableError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise GetTimeoutError(
                        f"run {self.run_id}: the supervisor did not come back"
                    ) from None
                time.sleep(_RESTART_POLL_S)  # back off while Ray brings the supervisor up

    def progress(
        self, every_s: float = 0.5, timeout: float | None = None
    ) -> Iterator[BasketStatus]:
        """Live snapshots of the basket until it ends (or `timeout` seconds pass)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                snapshot = self.status()
            except RayActorError:
                return  # finished and gone
            yield snapshot
            if snapshot.state.is_terminal:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            ready, _ = ray.wait([self._run], timeout=every_s)
            if ready:  # the basket ended: one last look, with the legs as they ended
                try:
                    yield self.status()
                except RayActorError:
                    yield msgspec.structs.replace(snapshot, state=self.result().status)
                return

    def cancel(self, reason: str = "cancelled by the user") -> None:
        with contextlib.suppress(RayActorError):
            ray.get(self.actor.cancel.remote(reason))

    def result(self, timeout: float | None = None) -> BasketReport:
        """The basket's report once it has ended; `TimeoutError` if not within `timeout` s."""
        if self._report is None:
            try:
                try:
                    self._report = ray.get(self._run, timeout=timeout)
                except RayActorError:
                    if self._registry is None or not self.run_id:
                        raise
                    # The supervisor restarted (and carries the run on): ask it again.
                    self._report = self._follow(timeout)
            except GetTimeoutError:
                raise TimeoutError(
                    f"basket {self.basket_id} still running after {timeout} s; it runs on "
                    f"(`legato attach {self.run_id or self.basket_id}` follows it)"
                ) from None
            # The basket is over: its actor (and its name, its memory) goes, and so do the
            # pool's legs it ran on (the basket ended them; this is in case it died first).
            for actor in (self.actor, *self.warm_legs.values()):
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
            if self._on_end is not None:
                self._on_end()
        return self._report


class Engine:
    """Venues, singletons and baskets on one Ray cluster (see the module docstring)."""

    def __init__(
        self,
        config: VenuesConfig,
        *,
        namespace: str,
        labels: dict[str, dict[str, str]],
        venues: dict[str, Any],
        endpoints: dict[str, VenueEndpoint],
        owned_venues: list[Any],
        collateral: Any,
        hedger: Any,
        started_ray: bool,
        basket_options: BasketOptions,
        registry: Any,
        default_hedge: HedgeSpec | None = None,
        warm_legs_per_venue: int = 0,
        warm_baskets: int = 0,
        journal: str = "",
        recovered: list[str] | None = None,
    ) -> None:
        self.config = config
        self.namespace = namespace
        self.labels = labels
        self.venues = venues
        self.endpoints = endpoints
        self._owned_venues = owned_venues
        self.collateral = collateral
        self.hedger = hedger
        self._started_ray = started_ray
        self.basket_options = basket_options
        self.default_hedge = default_hedge
        self.handles: dict[str, BasketHandle] = {}
        self.registry = registry
        self.journal = journal
        # Runs the journal showed unfinished when this engine started, carried on by the
        # supervisor (adopted, or taken over from the journal).
        self.recovered = list(recovered or [])
        self.pool: WarmPool | None = None
        if warm_legs_per_venue or warm_baskets:
            self.pool = WarmPool(
                legs_per_venue=warm_legs_per_venue,
                baskets=warm_baskets,
                namespace=namespace,
                labels=labels,
                endpoints=endpoints,
                make_basket=self._idle_basket_actor,
            )
        self._closed = False
        digest = hashlib.sha256(msgspec.json.encode(config)).hexdigest()
        self._venues_digest = digest  # which venues configuration each run was checked against

    # -- start -------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        venues: str | Path | VenuesConfig | ClusterConfig,
        *,
        address: str | None = None,
        namespace: str | None = None,
        placement: Placement | None = None,
        num_cpus: int | None = None,
        basket_options: BasketOptions | None = None,
        warm_legs_per_venue: int | None = None,
        warm_baskets: int | None = None,
        journal: str | None = None,
    ) -> Engine:
        """Connect to Ray (`address`: "auto", "ray://…"; None: the running instance, or a new
        local one), start the venues of `venues`, ensure the singletons exist, and start
        filling the warm pool when it has a size.

        `venues` is a configuration file (its `[venues.*]` and `[engine]` tables), or the
        parsed configuration; `namespace`, `placement`, `basket_options`,
        `warm_legs_per_venue`, `warm_baskets` and `journal` override what its `[engine]`
        table says.

        The journal (`journal_location`) is opened by the supervisor, which then carries on
        every run of this namespace the journal shows unfinished (`recovered`).
        """
        if isinstance(venues, str | Path):
            venues = load_cluster(venues)
        if isinstance(venues, VenuesConfig):
            venues = ClusterConfig(venues=venues)
        settings = venues.engine
        sizes = {"warm_legs_per_venue": warm_legs_per_venue, "warm_baskets": warm_baskets}
        sizes = {k: v for k, v in sizes.items() if v is not None}
        if sizes:
            settings = msgspec.structs.replace(settings, **sizes)
            check_pool(settings, "Engine.start: ")
        config = venues.venues
        risk = venues.risk
        namespace = namespace or settings.namespace
        placement = placement or settings.placement
        basket_options = basket_options or msgspec.structs.replace(
            settings.basket_options(),
            risk=risk,
            routing=venues.collateral.rules(),
            audit=venues.audit,
        )
        journal = journal_location(journal if journal is not None else settings.journal)
        started = False
        if not ray.is_initialized():
            # Inside a Ray job (or with RAY_ADDRESS set) ray.init joins that cluster.
            joining = address is not None or bool(os.environ.get("RAY_ADDRESS"))
            if address is not None:
                try:
                    check_reachable(address)
                except AddressError as e:
                    raise EngineError(str(e)) from None
            try:
                ray.init(
                    address=address,
                    namespace=namespace,
                    num_cpus=None if joining else num_cpus,
                    include_dashboard=False if not joining else None,
                    log_to_driver=True,
                )
            except (ConnectionError, ValueError) as e:
                where = address or os.environ.get("RAY_ADDRESS")
                raise EngineError(f"cannot connect to the Ray cluster at {where}: {e}") from None
            started = not joining
        labels = cls._placement(config, placement)
        origin = time.time_ns()
        handles: dict[str, Any] = {}
        owned: list[Any] = []
        busy = _runs_at_work(namespace)
        for name, cfg in config.venues.items():
            for attempt in range(3):
                try:
                    handles[name] = _running_venue(namespace, name, cfg, busy)
                except EngineError:
                    cls._kill(owned)
                    raise
                if handles[name] is not None:
                    break
                # Detached: a basket outlives the driver that submitted it, and trades on
                # its venues; `shutdown` stops them when no basket needs them any more.
                opts = actor_options(namespace, labels.get(name), name=venue_actor_name(name))
                try:
                    handles[name] = _Venue.options(**opts, lifetime="detached").remote(
                        name, cfg, origin, risk
                    )
                except ValueError:  # another engine starting at once created it first
                    if attempt == 2:
                        cls._kill(owned)
                        raise EngineError(
                            f"venue {name}: its actor's name is taken in namespace "
                            f"{namespace!r} and no actor answers to it; try again"
                        ) from None
                    continue  # shared if it serves this very configuration
                owned.append(handles[name])
                break
        refs = {name: h.start.remote() for name, h in handles.items()}
        endpoints: dict[str, VenueEndpoint] = {}
        try:
            for name, ref in refs.items():
                endpoints[name] = ray.get(ref, timeout=_START_TIMEOUT_S)
        except GetTimeoutError:
            cls._kill(owned)
            raise EngineError(
                f"venue {name} did not start within {_START_TIMEOUT_S:g} s"
                + (f" (needs a node with label {labels[name]})" if name in labels else "")
            ) from None
        except RayTaskError as e:
            cls._kill(owned)
            raise EngineError(f"venue {name} failed to start: {_cause(e)}") from None
        refused = cls._claim_accounts(config, namespace, handles)
        if refused:
            cls._kill(owned)
            raise EngineError(refused)
        collateral = _Collateral.options(**singleton_options(namespace, COLLATERAL_NAME)).remote(
            journal
        )
        hedger = _Hedge.options(**singleton_options(namespace, HEDGE_NAME)).remote(
            journal, venues.audit
        )
        registry = _Registry.options(**singleton_options(namespace, REGISTRY_NAME)).remote(
            journal, namespace
        )
        try:  # every submission asks it first: have it up before the first one
            running_journal = ray.get(registry.journal_location.remote(), timeout=_START_TIMEOUT_S)
            if running_journal != journal:
                cls._kill(owned)
                raise EngineError(
                    f"namespace {namespace!r} already runs with the journal at "
                    f"{_shown(running_journal)}, not {_shown(journal)}: one namespace keeps "
                    "one journal; use that one, or another namespace"
                )
            registry.configure.remote(handles, endpoints, collateral, hedger)
            recovered = ray.get(registry.recover.remote(), timeout=_START_TIMEOUT_S)
        except (GetTimeoutError, RayActorError):
            cls._kill(owned)
            raise EngineError(
                f"the supervisor ({REGISTRY_NAME}) did not start within {_START_TIMEOUT_S:g} s"
            ) from None
        except RayTaskError as e:
            cls._kill(owned)
            raise EngineError(f"the journal at {_shown(journal)}: {_cause(e)}") from None
        return cls(
            config,
            namespace=namespace,
            labels=labels,
            venues=handles,
            endpoints=endpoints,
            owned_venues=owned,
            collateral=collateral,
            hedger=hedger,
            started_ray=started,
            basket_options=basket_options,
            default_hedge=venues.hedge,
            registry=registry,
            warm_legs_per_venue=settings.warm_legs_per_venue,
            warm_baskets=settings.warm_baskets,
            journal=journal,
            recovered=recovered,
        )

    @staticmethod
    def _claim_accounts(config: VenuesConfig, namespace: str, handles: dict[str, Any]) -> str:
        """Claim the real venue accounts for this namespace's collateral book (see
        `actors.shells.accounts`); "" when claimed, else why not, in words."""
        accounts = {n: k for n, cfg in config.venues.items() if (k := account_key(cfg))}
        if not accounts:
            return ""
        claims = _Accounts.options(**singleton_options(ACCOUNTS_NAMESPACE, ACCOUNTS_NAME)).remote()
        try:
            refused = ray.get(
                claims.claim.remote(namespace, accounts, {n: handles[n] for n in accounts}),
                timeout=_START_TIMEOUT_S,
            )
        except (GetTimeoutError, RayActorError) as e:
            return (
                f"the account registry ({ACCOUNTS_NAME}) did not answer within "
                f"{_START_TIMEOUT_S:g} s ({type(e).__name__}); nothing was sent"
            )
        return "; ".join(
            f"venue {venue}: its account is traded by namespace {other!r}, whose collateral "
            "book would not see this one's reservations (nor it, that one's): run both in "
            "one namespace, or stop that one's engines and baskets first"
            for venue, other in refused.items()
        )

    @staticmethod
    def _placement(config: VenuesConfig, placement: Placement) -> dict[str, dict[str, str]]:
        """The label selector of every venue, or {} when nothing is pinned."""
        wanted = {name: _selector(config.node_label(name)) for name in config.venues}
        if placement == "anywhere":
            return {}
        nodes = _alive_node_labels()
        keys = {k for sel in wanted.values() for k in sel}
        if placement == "auto" and not any(k in labels for labels in nodes for k in keys):
            return {}
        missing = [
            f"{name} (label {next(iter(sel))}={next(iter(sel.values()))})"
            for name, sel in wanted.items()
            if not any(all(labels.get(k) == v for k, v in sel.items()) for labels in nodes)
        ]
        if missing:
            carried = sorted(
                {f"{k}={v}" for labels in nodes for k, v in labels.items() if k in keys}
            )
            raise EngineError(
                f"no node carries the label of venue {', '.join(missing)}; the cluster's nodes "
                f"carry {', '.join(carried) or 'no venue labels'}. Start a node near the venue "
                "with `ray start --labels venue=<name>`."
            )
        return wanted

    # -- baskets -----------------------------------------------------------------------------
    def submit(
        self,
        spec: str | Path | BasketSpec | RebalanceSpec,
        *,
        options: BasketOptions | None = None,
        submitted_by: str = "",
    ) -> BasketHandle:
        """Validate and start a basket (a TOML path, TOML text, or a spec object).

        Raises `SpecError` listing every mistake (nothing is sent), `EngineError` when a
        basket with the same id is still running. With a warm pool, the basket runs on a
        pooled basket actor and pooled leg actors where it has them.
        """
        if self._closed:
            raise EngineError("the engine is shut down")
        if not isinstance(spec, BasketSpec | RebalanceSpec):
            spec = load_basket(spec)
        if spec.hedge is None and self.default_hedge is not None:
            spec = msgspec.structs.replace(spec, hedge=self.default_hedge)  # the config's [hedge]
        # Legs go where their venues are: the engine's placement, whatever the options say.
        options = msgspec.structs.replace(
            options or self.basket_options,
            labels=self.labels,
            namespace=self.namespace,
            journal=self.journal,
        )
        # The run's identity and its client order ids' prefix, with the spec journaled
        # before anything else happens (DESIGN §9).
        try:
            run_id, prefix = ray.get(
                self.registry.open_run.remote(
                    spec.basket_id,
                    dump_basket(spec),
                    "x" * max(0, ID_ROOM - len(spec.basket_id)),
                    options,
                    self._venues_digest,
                    submitted_by,
                ),
                timeout=_START_TIMEOUT_S,
            )
        except (GetTimeoutError, RayActorError, RayTaskError) as e:
            why = _cause(e) if isinstance(e, RayTaskError) else type(e).__name__
            raise EngineError(
                f"basket {spec.basket_id}: the supervisor could not open a run in the "
                f"journal ({why}); nothing was sent"
            ) from None
        options = msgspec.structs.replace(options, run_id=run_id, order_prefix=prefix)
        taken = self.pool.take_basket() if self.pool is not None else None
        if taken is not None:
            actor = taken
        else:
            # A cold basket actor keeps its name (`legato status` and `legato cancel` find
            # it by it); the registry below is what refuses a second basket of an id. It is
            # detached: it runs on when this driver ends.
            try:
                actor = _Basket.options(
                    **basket_actor_options(self.namespace, spec.basket_id)
                ).remote(
                    spec,
                    self.venues,
                    self.endpoints,
                    self.collateral,
                    self.hedger,
                    options,
                    self.registry,
                )
            except ValueError:  # the name is taken: a basket of this id runs
                self._abandon(run_id, "a basket of this id is still running")
                raise self._still_running(spec.basket_id) from None
        token = uuid.uuid4().hex
        # The id is claimed while the basket is checked (checking sends nothing): one wait,
        # not two, before the basket runs.
        claimed = self.registry.claim.remote(spec.basket_id, token, actor)
        checked = actor.assign.remote(spec, options) if taken else actor.prepare.remote()
        try:
            free = ray.get(claimed, timeout=_START_TIMEOUT_S)
        except (GetTimeoutError, RayActorError) as e:
            _kill_now(actor)
            self._abandon(run_id, "the supervisor did not answer its claim")
            raise EngineError(
                f"basket {spec.basket_id}: the basket registry ({REGISTRY_NAME}) did not "
                f"answer within {_START_TIMEOUT_S:g} s ({type(e).__name__}); nothing was sent"
            ) from None
        if not free:
            _kill_now(actor)
            self._abandon(run_id, "a basket of this id is still running")
            raise self._still_running(spec.basket_id)

        def release() -> None:
            with contextlib.suppress(Exception):
                self.registry.release.remote(spec.basket_id, token)

        try:
            resolved = ray.get(checked, timeout=_START_TIMEOUT_S)
        except RayTaskError as e:
            _kill_now(actor)
            release()
            cause = e.cause if isinstance(e.cause, Exception) else None
            self._abandon(run_id, f"not accepted: {_cause(e)}")
            if isinstance(cause, SpecError):
                raise cause from None
            raise EngineError(f"basket {spec.basket_id}: cannot be checked: {_cause(e)}") from None
        except (GetTimeoutError, RayActorError) as e:
            _kill_now(actor)
            release()
            self._abandon(run_id, f"its actor did not answer ({type(e).__name__})")
            raise EngineError(
                f"basket {spec.basket_id}: its actor did not answer within "
                f"{_START_TIMEOUT_S:g} s ({type(e).__name__}); nothing was sent"
            ) from None
        legs: dict[str, Any] = {}
        if self.pool is not None:
            # A leg whose node clock a test skews needs an actor created with that skew.
            legs = self.pool.take_legs(
                {
                    leg.leg_id: leg.venue
                    for leg in resolved.legs
                    if leg.leg_id not in options.leg_clock_offsets_ns
                }
            )
        # The supervisor runs it: the run is its from here, whatever becomes of this driver.
        run = self.registry.supervise.remote(run_id, actor, legs)
        if self.pool is not None and (taken is not None or legs):
            lent = [BASKET] if taken is not None else []
            self.pool.lend(run, lent + [resolved.leg(i).venue for i in legs])
        handle = BasketHandle(
            resolved,
            actor,
            run,
            run_id=run_id,
            registry=self.registry,
            warm_basket=taken is not None,
            warm_legs=legs,
            on_end=release,
        )
        self.handles[spec.basket_id] = handle
        return handle

    def _abandon(self, run_id: str, reason: str) -> None:
        """A run that never started: the journal says so (not left unfinished, to be taken
        over at the next start)."""
        if run_id:
            with contextlib.suppress(Exception):
                ray.get(self.registry.abandon_run.remote(run_id, reason), timeout=10)

    @staticmethod
    def _still_running(basket_id: str) -> EngineError:
        return EngineError(
            f"basket_id: {basket_id!r} is still running; a basket id names one "
            "basket (and its client order ids): choose another"
        )

    def _idle_basket_actor(self) -> Any:
        """A basket actor for the warm pool: it knows the engine's venues and singletons,
        and waits for `assign` to give it a basket."""
        return _Basket.options(**pooled_options(self.namespace)).remote(
            None,
            self.venues,
            self.endpoints,
            self.collateral,
            self.hedger,
            self.basket_options,
            self.registry,
        )

    @property
    def journal_shown(self) -> str:
        """Where the journal lives, fit to show (a DSN without its password)."""
        return _shown(self.journal)

    def baskets(self) -> dict[str, BasketState]:
        """The state of every basket this engine submitted."""
        out: dict[str, BasketState] = {}
        for basket_id, handle in self.handles.items():
            if handle._report is not None:
                out[basket_id] = handle._report.status
                continue
            try:
                out[basket_id] = handle.status().state
            except RayActorError:
                out[basket_id] = handle.result().status
        return out

    def release_hedge(self, basket_id: str) -> list[HedgeStatement]:
        """Let go of the hedge a finished basket holds (policy `hedge_and_hold`, or
        `complete` after a failure): the hedge actor trades it away."""
        return ray.get(self.hedger.release.remote(basket_id))

    def venue_stat(self, venue: str, method: str, *args: Any) -> Any:
        """Call a read-only method of a venue actor (tests and tools)."""
        return ray.get(getattr(self.venues[venue], method).remote(*args))

    # -- stop --------------------------------------------------------------------------------
    @staticmethod
    def _kill(actors: list[Any]) -> None:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.get(actor.stop.remote(), timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def shutdown(self) -> None:
        """Stop what this engine started (its warm pool's idle actors, its venues; Ray
        itself if it started it). Venues that its baskets still trade on are left running
        (on a cluster the baskets run on without this driver: `legato attach` follows
        them), unless this engine started Ray itself: then everything ends with it, and
        the journal has what the next start (`legato recover`) carries on."""
        if self._closed:
            return
        self._closed = True
        if self.pool is not None:
            self.pool.shutdown()
        running: list[str] = []
        if not self._started_ray:
            with contextlib.suppress(Exception):
                watched = ray.get(self.registry.watching.remote(), timeout=10)
                mine = {h.run_id for h in self.handles.values()} | set(self.recovered)
                running = [r for r in watched if r in mine]
        if running:
            log.warning(
                "engine shut down while %d baskets run (%s): their venues stay up",
                len(running),
                ", ".join(running),
            )
        else:
            self._kill(self._owned_venues)
        if self._started_ray:
            ray.shutdown()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _runs_at_work(namespace: str) -> list[str]:
    """The runs the namespace's supervisor carries on now ([] when it has none, or none
    runs yet)."""
    try:
        supervisor = ray.get_actor(REGISTRY_NAME, namespace=namespace)
        return ray.get(supervisor.watching.remote(), timeout=_START_TIMEOUT_S)
    except Exception:
        return []


def _running_venue(namespace: str, name: str, cfg: Any, busy: list[str]) -> Any:
    """The venue actor of `name` already running in `namespace` (another engine's, or one
    whose baskets outlived their driver), shared only if it serves this very
    configuration; None when there is none. One of another configuration is replaced
    when no basket runs (`busy`: the runs at work), else refused."""
    try:
        actor = ray.get_actor(venue_actor_name(name), namespace=namespace)
    except ValueError:
        return None
    digest = hashlib.sha256(msgspec.json.encode(cfg)).hexdigest()
    try:
        running = ray.get(actor.config_digest.remote(), timeout=_START_TIMEOUT_S)
    except (GetTimeoutError, RayActorError) as e:
        raise EngineError(
            f"venue {name}: an actor of that name runs in namespace {namespace!r} but does "
            f"not answer ({type(e).__name__}); try again, or use another namespace"
        ) from None
    if running != digest and not busy:
        log.warning("venue %s: replacing a stale actor of another configuration", name)
        with contextlib.suppress(Exception):
            ray.get(actor.stop.remote(), timeout=10)
        ray.kill(actor, no_restart=True)
        wait_until_gone = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < wait_until_gone:  # its name is free once it is gone
            try:
                ray.get_actor(venue_actor_name(name), namespace=namespace)
            except ValueError:
                return None
            time.sleep(0.05)
        raise EngineError(f"venue {name}: a stale actor of that name would not go")
    if running != digest:
        raise EngineError(
            f"venue {name} already runs in namespace {namespace!r} with another configuration "
            "(another engine started it, or its baskets outlived their driver); use another "
            "namespace, or stop that engine first"
        )
    return actor


def _kill_now(actor: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


def _cause(e: RayTaskError) -> str:
    cause = e.cause if isinstance(e.cause, BaseException) else e
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__
