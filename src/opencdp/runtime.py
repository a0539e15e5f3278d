"""The composition root: builds OpenCDP's runtime from settings.

This is the only module that picks concrete backends. The web app and the CLI receive a
:class:`Runtime` and never construct stores themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial

from opencdp.activate.consent import ProfileConsent
from opencdp.activate.dispatcher import Dispatcher
from opencdp.activate.journey_runner import BatchStart, JourneyRunner
from opencdp.activate.router import Router
from opencdp.catalog.inventory import Restock
from opencdp.clock import Clock, SystemClock
from opencdp.collect.collector import Collector
from opencdp.collect.plan_cache import PlanCache
from opencdp.collect.suppression import Suppressions
from opencdp.compute.clv import ClvProvider
from opencdp.compute.engine import ComputeEngine
from opencdp.identity.rules import IdentityConfig
from opencdp.ids import load_or_create_key
from opencdp.loyalty.tokens import new_member_token
from opencdp.metrics import Metrics
from opencdp.recommend.catalog_view import CatalogCache
from opencdp.recommend.models import ModelCache
from opencdp.recommend.serving import Recommender
from opencdp.resolve.batch import StoredEvent
from opencdp.resolve.catalog_listener import CatalogListener
from opencdp.resolve.processor import BatchListeners, Processor
from opencdp.resolve.worker import Worker
from opencdp.retail.back_in_stock import BackInStock, StockPromise
from opencdp.retail.derived import DerivedEvents
from opencdp.retail.loyalty_book import LoyaltyBook
from opencdp.retail.loyalty_listener import LoyaltyListener
from opencdp.retail.loyalty_timer import LoyaltyTimer
from opencdp.settings import Settings
from opencdp.storage import migrate
from opencdp.storage.admin import DEFAULT_WORKSPACE, AccessToken, AdminStore
from opencdp.storage.audit import AuditStore
from opencdp.storage.catalog import CatalogStore
from opencdp.storage.catalog_reads import CatalogReads
from opencdp.storage.clv import ClvStore
from opencdp.storage.db import Connection, Database
from opencdp.storage.definitions import DefinitionStore
from opencdp.storage.destinations import DestinationStore
from opencdp.storage.hot_reads import HotReads
from opencdp.storage.inbox import InboxStore
from opencdp.storage.journeys import JourneyStore
from opencdp.storage.loyalty import LoyaltyStore
from opencdp.storage.outbox import OutboxStore
from opencdp.storage.plans import PlanStore
from opencdp.storage.product_lookup import ProductLookup
from opencdp.storage.profile_reads import ProfileReads
from opencdp.storage.profiles import ProfileStore
from opencdp.storage.qr_codes import QrCodeStore
from opencdp.storage.quarantine import QuarantineStore
from opencdp.storage.recs import RecsReads, RecsStore
from opencdp.storage.regulations import RegulationStore
from opencdp.storage.stock_requests import StockRequestStore
from opencdp.timeutil import to_us
from opencdp.ttl_cache import RefreshingCache, TtlCache

log = logging.getLogger(__name__)


class TokenCache:
    """Access tokens by secret, cached briefly so each API call does not hit the database."""

    def __init__(self, admin: AdminStore, clock: Clock, ttl: float = 10.0) -> None:
        self.admin = admin
        self._cache: TtlCache[str, AccessToken | None] = TtlCache(clock, ttl)

    def get(self, secret: str) -> AccessToken | None:
        return self._cache.get(secret, lambda: self.admin.token_for_secret(secret))

    def forget_all(self) -> None:
        """Drop every cached token (after this process rotated or revoked one: the cache is
        keyed by secrets, which the store does not keep)."""
        self._cache.clear()


def secret_key(settings: Settings) -> bytes:
    """The key write keys and tokens are hashed under: ``OPENCDP_SECRET_KEY``, else the key
    file in the data directory (made on first use)."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode("utf-8")
    return load_or_create_key(settings.data_dir / "secret.key")


class Runtime:
    """Everything a server, worker or CLI command needs, wired together."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db = Database(settings.resolved_database_url())
        self.db.check_connection()
        migrate.upgrade(self.db)
        self.metrics = Metrics()
        self.admin = AdminStore(self.db, secret_key(settings))
        self.quarantine = QuarantineStore(self.db)
        self.inbox = InboxStore(self.db, self.quarantine)
        self.profiles = ProfileStore(self.db)
        #: the hot reads (profile traits, products, member tokens): a connection per thread
        self.hot_reads = HotReads(self.db)
        self.profile_reads = ProfileReads(self.db, self.hot_reads)
        self.tokens = TokenCache(self.admin, self.clock)
        #: who did what: writes through the API and the CLI, privacy requests, support reads
        self.audit = AuditStore(self.db)
        self.plans = PlanStore(self.db)
        self.governance = PlanCache(
            self.plans, self.admin, self.clock, settings.governance_refresh_seconds
        )
        #: privacy requests and the suppressed persons the collector refuses
        self.regulations = RegulationStore(self.db)
        self.suppressions = Suppressions(
            self.regulations.suppressed_hashes, self.admin.key, self.clock
        )
        self.collector = Collector(
            self.db,
            settings,
            self.clock,
            self.admin,
            self.inbox,
            self.governance,
            self.suppressions,
        )
        self._identity_configs: TtlCache[str, IdentityConfig] = TtlCache(self.clock, 10.0)
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        #: more durable work the worker's timer tick moves (services install it: privacy
        #: requests), each returning how much it moved
        self.timer_hooks: list[Callable[[], int]] = []
        #: called with (workspace, version) after a recommendation version becomes active (a
        #: training or a rollback), once ``recommended_items`` is refreshed
        self.recs_trained_hooks: list[Callable[[str, str], None]] = []
        self.admin.ensure_workspace(DEFAULT_WORKSPACE, "Default workspace", self.now_us())
        self._bootstrap()
        definitions = DefinitionStore(self.db)
        #: computes ``clv('…')`` definitions with the workspace's fitted CLV model
        self.clv = ClvProvider(ClvStore(self.db), definitions)
        #: recommendations: trained versions and settings, each process's loaded models and
        #: catalog snapshot, and what serves them (also the ``recommended_items()`` provider)
        self.recs = RecsStore(self.db)
        self.recommender = Recommender(
            self.recs,
            RecsReads(self.db, self.hot_reads),
            ModelCache(self.recs, settings.data_dir, self.clock, settings.recs_model_ttl),
            CatalogCache(self.recs, self.clock, settings.recs_catalog_ttl),
            RefreshingCache(self.clock, settings.recs_model_ttl),
            definitions,
        )
        self.compute = ComputeEngine(
            self.db,
            definitions,
            self.profiles,
            self.clock,
            self.metrics,
            providers={"clv": self.clv, "recommended_items": self.recommender},
        )
        self.processor = Processor(
            db=self.db,
            profiles=self.profiles,
            inbox=self.inbox,
            quarantine=self.quarantine,
            collector=self.collector,
            rules=self,
            metrics=self.metrics,
            clock=self.clock,
            batch_size=settings.worker_batch_size,
            cache_profiles=settings.worker_cache_profiles,
        )
        #: activation: configured destinations, the outbox, routing into it
        self.destinations = DestinationStore(self.db)
        self.outbox = OutboxStore(self.db)
        self.router = Router(self.destinations, self.outbox, definitions, self.clock, self.metrics)
        self._dispatcher: Dispatcher | None = None
        #: journeys: definitions, instances and their durable timers
        self.journeys = JourneyStore(self.db)
        self.journey_runner = JourneyRunner(
            self.db,
            self.journeys,
            self.outbox,
            self.destinations,
            definitions,
            self.clock,
            self.metrics,
        )
        #: events OpenCDP derives (points, tiers, back in stock), written with their cause
        self.derived = DerivedEvents(self.collector, self.inbox, self.admin, self.clock)
        #: loyalty: the programme, members, tokens and the points ledger
        self.loyalty = LoyaltyStore(self.db, self.hot_reads)
        self.loyalty_book = LoyaltyBook(self.loyalty, self.derived, self.clock)
        self.loyalty_timer = LoyaltyTimer(self.db, self.loyalty_book)
        self.timer_hooks.append(self.loyalty_timer.tick)
        #: back in stock: requests answered when stock returns (inventory writes call the
        #: restock hooks in their transaction), checked again when the e-mail is sent
        self.stock_requests = StockRequestStore(self.db)
        self.back_in_stock = BackInStock(self.stock_requests, self.derived, self.clock)
        self.restock_hooks: list[Callable[[Connection, str, Sequence[Restock]], int]] = [
            self.back_in_stock.restocked
        ]
        self.timer_hooks.append(self.back_in_stock.sweep)
        #: campaign QR codes: the short links printed on posters and receipts
        self.qr_codes = QrCodeStore(self.db)
        #: the product catalog and its stock (the headless API's product read is a hot read,
        #: like the Profile API's traits)
        self.catalog = CatalogStore(self.db)
        self.inventory = self.catalog.inventory
        self.catalog_reads = CatalogReads(self.hot_reads)
        self.catalog_listener = CatalogListener(self.catalog, self.clock, self.restocked)
        # The catalog (Product Updated events of catalog sources), loyalty (enrolments,
        # orders, refunds, merges) and computed traits and audiences
        # follow each stored batch (in its transaction), then its events and the membership
        # changes are routed to destinations and offered to journeys (in it too).
        self.compute.emitted = self._emitted
        self.processor.listener = BatchListeners(
            BatchStart(self.journey_runner),
            self.catalog_listener,
            LoyaltyListener(self.loyalty_book, self.mint_member_token),
            self.back_in_stock,
            self.compute,
            self.router,
            self.journey_runner,
        )

    def _emitted(self, conn: Connection, workspace_id: str, events: Sequence[StoredEvent]) -> int:
        routed = self.router.route_memberships(conn, workspace_id, events)
        self.journey_runner.memberships(conn, workspace_id, events)
        return routed

    def now_us(self) -> int:
        return to_us(self.clock.now())

    def restocked(self, conn: Connection, workspace_id: str, restocks: Sequence[Restock]) -> int:
        """Tell every restock hook, in ``conn``'s transaction (the inventory write's), which
        levels went from 0 to above 0; returns what they did (events written)."""
        done = 0
        if restocks:
            for hook in self.restock_hooks:
                done += hook(conn, workspace_id, restocks)
        return done

    def mint_member_token(self, conn: Connection, workspace_id: str) -> str:
        """A member token no other card or token of the workspace has."""
        while True:
            token = new_member_token()
            if not self.loyalty.token_taken(conn, workspace_id, token):
                return token

    def _bootstrap(self) -> None:
        s = self.settings
        if s.bootstrap_write_key is not None:
            self.admin.ensure_source_with_key(
                DEFAULT_WORKSPACE,
                "bootstrap",
                s.bootstrap_write_key.get_secret_value(),
                self.now_us(),
            )
        if s.bootstrap_token is not None:
            self.admin.ensure_token(
                DEFAULT_WORKSPACE, "bootstrap", s.bootstrap_token.get_secret_value(), self.now_us()
            )

    def identity_config(self, workspace_id: str, collection: str = "users") -> IdentityConfig:
        """The identity rules of a workspace: defaults from settings, overridden per workspace.

        Accounts (``group``) use Segment's account defaults: ``group_id`` first, one per account.
        """
        if collection == "accounts":
            return IdentityConfig.accounts_default()

        def load() -> IdentityConfig:
            base = self.base_identity_config()
            overrides = self.admin.identity_config(workspace_id)
            return IdentityConfig.from_dict(overrides, base=base) if overrides else base

        return self._identity_configs.get(workspace_id, load)

    def base_identity_config(self) -> IdentityConfig:
        """Identity rules from settings alone (Segment's defaults plus configured trait keys)."""
        return IdentityConfig(
            trait_keys=dict(self.settings.identity_trait_keys),
            default_phone_region=self.settings.default_phone_region,
        )

    def invalidate_identity_config(self, workspace_id: str) -> None:
        self._identity_configs.forget(workspace_id)

    def _run_timers(self) -> int:
        moved = self.journey_runner.run_due()
        for hook in self.timer_hooks:
            moved += hook()
        return moved

    @property
    def worker(self) -> Worker:
        """The worker loop around this runtime's processor (created on first use, not started)."""
        with self._lock:
            if self._worker is None:
                s = self.settings
                self._worker = Worker(
                    self.processor,
                    inbox=self.inbox,
                    quarantine=self.quarantine,
                    clock=self.clock,
                    poll_interval=s.worker_poll_interval,
                    dedup_window_days=s.dedup_window_days,
                    quarantine_retention_days=s.quarantine_resolved_retention_days,
                    scheduled=lambda: self.compute.refresh_due(s.compute_refresh_seconds),
                    timers=self._run_timers,
                )
            return self._worker

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher of the outbox (created on first use, not started)."""
        with self._lock:
            if self._dispatcher is None:
                s = self.settings
                self._dispatcher = Dispatcher(
                    self.outbox,
                    self.destinations,
                    self.clock,
                    self.metrics,
                    # consent as recorded on the profiles, the workspace's default otherwise
                    consent=ProfileConsent(self.profiles, self.admin.workspace_settings),
                    promises=StockPromise(self.db, self.stock_requests),
                    catalog=partial(ProductLookup, self.db),
                    poll_interval=s.dispatcher_poll_interval,
                    lease_seconds=s.dispatcher_lease_seconds,
                    threads=s.dispatcher_threads,
                )
                self._dispatcher.sends_of = self.journey_runner.sends_to
            return self._dispatcher

    def close(self) -> None:
        """Stop background threads and close database connections."""
        if self._dispatcher is not None:
            self._dispatcher.stop()
        if self._worker is not None:
            self._worker.stop()
        self.collector.close()
        self.profile_reads.close()
        self.db.dispose()


def build_runtime(settings: Settings | None = None, clock: Clock | None = None) -> Runtime:
    """Build a runtime from settings (environment and config file when not given)."""
    return Runtime(settings or Settings(), clock)
