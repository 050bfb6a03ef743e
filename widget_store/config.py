"""The store's settings, read once from the environment in an entry point and passed down."""

from __future__ import annotations

import importlib.metadata
import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .database.url import InvalidDatabaseUrl, PostgresUrl

SECRET_FILE_NAME = "webhook_secret"
STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_JS_URL = "https://js.stripe.com/v3/"
SQLITE_PREFIX = "sqlite:///"
DBOS_SQLITE = "dbos.sqlite"


def _same_database(one: str, other: str) -> bool:
    """Two database settings name the same database: the same Postgres servers, database and
    user in whichever URL form, or the same SQLite file."""
    if one.startswith(SQLITE_PREFIX) or other.startswith(SQLITE_PREFIX):
        return _sqlite_file(one) == _sqlite_file(other)
    try:
        return PostgresUrl.parse(one).same_target(PostgresUrl.parse(other))
    except InvalidDatabaseUrl:
        return False


def _sqlite_file(url: str) -> Path | None:
    return Path(url[len(SQLITE_PREFIX) :]).resolve() if url.startswith(SQLITE_PREFIX) else None


def release() -> str:
    """The installed package's version."""
    try:
        return importlib.metadata.version("widget-store")
    except importlib.metadata.PackageNotFoundError:  # run from a bare source tree
        return "0+unknown"


# DBOS's application version: it names the workflows' compatibility, not the package release.
# DBOS recovers and dequeues only the workflows recorded under its own version, so a release
# that keeps every workflow's step sequence (shop/workflows.py) keeps this constant and resumes
# the previous release's checkouts and dispatches at once. A change to a step sequence goes behind
# `DBOS.patch_async` (recorded executions replay on the new code) and keeps it too; only a
# change patching cannot express bumps it, with the old release draining (docs/upgrading.md).
WORKFLOW_VERSION = "widget-store-workflows-1"


class Settings(BaseSettings):
    """Everything configurable, each with a default that runs the demo on embedded SQLite."""

    model_config = SettingsConfigDict(
        env_prefix="WIDGET_STORE_", env_ignore_empty=True, extra="ignore"
    )

    # Where the embedded SQLite files and the generated webhook secret live.
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("widget-store")))
    # Postgres for both the store's tables and DBOS's system tables; unset means embedded SQLite.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DBOS_DATABASE_URL", "WIDGET_STORE_DATABASE_URL"),
    )
    webhook_secret: str | None = None
    payment_timeout_s: float = Field(default=300.0, gt=0)
    # The contract's "one a second"; tests shorten it to keep the suite quick.
    dispatch_tick_s: float = Field(default=1.0, gt=0)
    demo: bool = True
    operator_token: str | None = None
    # The sandbox payment provider (/sandbox/...), which pays any order for anyone who asks:
    # on in demo mode unless turned off, and never allowed in production.
    sandbox: bool | None = None
    # Stripe as the payment provider (docs/operations.md, "Taking payments with Stripe"). The
    # webhook secret alone opens POST /webhooks/stripe, through which a PaymentIntent made
    # elsewhere pays the checkout its metadata's payment_id names; with the secret key too, the
    # store is in Stripe mode: each checkout makes its own PaymentIntent, and the page takes a
    # card (with the publishable key). The API base points the store, and the page's Stripe.js,
    # at another server than Stripe's, such as localstripe in the tests.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_publishable_key: str | None = None
    stripe_api_base: str | None = None
    # The PaymentIntents' currency (ISO 4217, lower case); the widget's price is in it.
    stripe_currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")

    # Unpaid checkouts one client may hold at once (0: no cap), so nobody can reserve the
    # whole stock; counted from the database's PENDING orders, so a restart does not reset it.
    max_unpaid_per_client: int = Field(default=5, ge=0)
    # New checkouts one client may start a minute, whatever their outcome (0: no cap), so a
    # flood of checkouts (of a sold-out widget, say) is refused before it costs anything; up
    # to a minute's worth at once, then one every 60/n s. Counted within each serving process.
    new_checkouts_per_minute: int = Field(default=20, ge=0)
    # Proxies whose X-Forwarded-For names the client (uvicorn's --forwarded-allow-ips): a
    # comma-separated list of addresses or networks, "*" for any; from anyone else it is ignored.
    forwarded_allow_ips: str = "127.0.0.1"
    # Request limits, checked before anything is buffered: 431 past the header limits, 413
    # past the body limit.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=10)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Slow clients (server/http_limits.py): a request head must arrive whole within
    # head_timeout_s of its first byte (or of the connection's opening), and a body within
    # body_timeout_s of its head, else 408 and the connection closes; one client address may
    # hold at most max_connections_per_client open connections in a serving process (0: no
    # cap), the proxies of forwarded_allow_ips and the store's own address not counted.
    head_timeout_s: float = Field(default=20.0, gt=0, le=300)
    body_timeout_s: float = Field(default=20.0, gt=0, le=300)
    max_connections_per_client: int = Field(default=50, ge=0)

    # DBOS's application version: the workflows' compatibility (WORKFLOW_VERSION above),
    # not the package release, so a new release that keeps the workflows' step sequences
    # resumes the work the previous one left (DBOS's default, a hash of the code, changes with
    # any edit). docs/upgrading.md says when it changes.
    app_version: str = WORKFLOW_VERSION
    # How often each serving process reconciles orders against their workflows: an order whose
    # workflow an operator cancelled, or that ended in ERROR, is released (or dispatched) within
    # about this long (reconciler.py).
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    # Drain mode, for the old release during an upgrade that changed the workflows (drain.py):
    # no new checkouts; stops on its own once its workflows are done.
    drain: bool = False
    # One id per live process: DBOS recovers at launch only the workflows of its own executor id.
    executor_id: str = "local"
    # DBOS's executor threads, which run every system-database call and the workflows' steps.
    # Unset: 4 on Postgres, where DBOS's unbounded default has dozens of threads contend for the
    # GIL under load and each checkpoint cost nearly twice the CPU (bench/load.py); bounded,
    # calls queue for a thread instead. Unbounded on SQLite, where a call can wait seconds for
    # the file's write lock, and would hold up every call queued behind it.
    executor_threads: int | None = Field(default=None, ge=2)
    # Serving processes under one supervisor, each with executor id `<executor_id>-<n>` (the
    # plain id when there is one). Unset: the core count on Postgres; SQLite is one process.
    workers: int | None = Field(default=None, ge=1, le=64)
    # Postgres connections of one serving process (docs/architecture.md's budget): DBOS's pool,
    # the routes' pool (plus DBOS's listener, the liveness lock and one a step thread).
    sys_db_pool_size: int = Field(default=6, ge=2)
    app_db_pool_size: int = Field(default=3, ge=1)
    # A dead executor's workflows are taken over by a survivor after this long (longer than a
    # supervisor's restart, which keeps the id); how often each process looks.
    takeover_grace_s: float = Field(default=5.0, gt=0)
    # Set by the supervisor: the executor ids of the other serving processes under it, whose
    # death a sibling can see for certain (their pid gone) and take over at once.
    worker_siblings: str = ""
    liveness_interval_s: float = Field(default=0.5, gt=0)
    # DBOS polls SQLite for notifications; its 1 s default is added to every get_event and recv.
    sqlite_poll_interval_s: float = Field(default=0.01, gt=0)
    # A serving process that dies sooner than this after its start counts towards a crash
    # loop, which the supervisor backs off from; one that lived longer restarts at once.
    crash_loop_window_s: float = Field(default=2.0, gt=0)
    # A standby per serving process, its imports done, that takes over when it dies
    # (server/standby.py): a quicker recovery for about 95 MiB of memory each.
    standby: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # DBOS's OpenTelemetry export of traces and logs; off unless an OTLP endpoint is given.
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "WIDGET_STORE_OTLP_ENDPOINT"),
    )

    # Test-only fault injection: the first incarnation of the server dies right after this step.
    fault_after_step: str | None = None
    # Set by the supervisor for each incarnation of the serving process.
    restart_count: int = Field(default=0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        """Any URL libpq accepts (database_url.py), kept in the one form every driver here and
        DBOS's CLI read; or the embedded SQLite's DBOS file, the way DBOS's CLI names it."""
        if url is None:
            return None
        if url.startswith(SQLITE_PREFIX) and Path(url[len(SQLITE_PREFIX) :]).name == DBOS_SQLITE:
            return url
        if url.startswith("sqlite"):
            raise ValueError(
                f"the only SQLite URL it takes is the embedded SQLite's DBOS file "
                f"({SQLITE_PREFIX}<folder>/{DBOS_SQLITE}); leave it unset for embedded SQLite "
                "in the default folder"
            )
        try:
            return PostgresUrl.parse(url).render()
        except InvalidDatabaseUrl as exc:
            raise ValueError(
                f"not a Postgres URL libpq accepts: {exc} (e.g. postgresql://user@host:5432/"
                "widget_store, or several hosts: postgresql://user@h1:5432,h2:5432/"
                "widget_store?target_session_attrs=read-write)"
            ) from None

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        """One variable for the store and DBOS's CLI (docs/upgrading.md): DBOS_DATABASE_URL
        names Postgres, or the SQLite DBOS file whose folder holds the store's files too; a
        DBOS_SYSTEM_DATABASE_URL that names another database is refused, so `dbos migrate`
        cannot put DBOS's tables in one place and the store's in another."""
        if self.database_url is not None and self.database_url.startswith(SQLITE_PREFIX):
            folder = Path(self.database_url[len(SQLITE_PREFIX) :]).resolve().parent
            if "data_dir" in self.model_fields_set and self.data_dir.resolve() != folder:
                raise ValueError(
                    f"DBOS_DATABASE_URL names the folder {folder} and WIDGET_STORE_DATA_DIR "
                    f"{self.data_dir}: set one of them"
                )
            self.data_dir = folder
            self.database_url = None
        system = os.environ.get("DBOS_SYSTEM_DATABASE_URL")
        if system and not _same_database(system, self.system_database_url):
            raise ValueError(
                "DBOS_SYSTEM_DATABASE_URL names another database than the store's "
                f"({self.describe_database()}): unset it and set DBOS_DATABASE_URL only, "
                "which the store and DBOS's CLI both read"
            )
        return self

    @field_validator("stripe_api_base")
    @classmethod
    def _stripe_api_base(cls, url: str | None) -> str | None:
        """An http(s) origin, with nothing after it: the store appends Stripe's paths."""
        if url is None:
            return None
        url = url.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(
                "must be an http or https origin with no path, e.g. http://127.0.0.1:8420"
            )
        return url

    @model_validator(mode="after")
    def _stripe_keys(self) -> Settings:
        """The secret key makes PaymentIntents; only the webhook secret lets them pay."""
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            raise ValueError(
                "WIDGET_STORE_STRIPE_SECRET_KEY needs WIDGET_STORE_STRIPE_WEBHOOK_SECRET: "
                "without it no Stripe payment could ever reach a checkout"
            )
        return self

    @model_validator(mode="after")
    def _production_mode(self) -> Settings:
        if self.demo:
            return self
        if not self.operator_token:
            raise ValueError(
                "WIDGET_STORE_OPERATOR_TOKEN must be set when WIDGET_STORE_DEMO is off"
            )
        if self.sandbox:
            raise ValueError(
                "WIDGET_STORE_SANDBOX cannot be on when WIDGET_STORE_DEMO is off: the sandbox "
                "provider pays any order for anyone"
            )
        return self

    @property
    def sandbox_enabled(self) -> bool:
        """The sandbox provider's routes exist: demo mode, unless turned off."""
        return self.demo and self.sandbox is not False

    @property
    def stripe_mode(self) -> bool:
        """Checkouts make Stripe PaymentIntents: the secret key and the webhook secret set."""
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)

    @property
    def stripe_js_url(self) -> str:
        """Where the page loads Stripe.js from: Stripe's own, or the API base's copy (as
        localstripe serves it)."""
        if self.stripe_api_base is None:
            return STRIPE_JS_URL
        return f"{self.stripe_api_base}/js.stripe.com/v3/"

    @property
    def stripe_origins(self) -> tuple[str, str]:
        """The origins the page talks to in Stripe mode: Stripe.js's, and the API's."""
        js = urlsplit(self.stripe_js_url)
        api = urlsplit(self.stripe_api_base or STRIPE_API_BASE)
        return f"{js.scheme}://{js.netloc}", f"{api.scheme}://{api.netloc}"

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url is None

    def describe_database(self) -> str:
        """The database in use, for people: the SQLite folder, or the Postgres URL without its
        password."""
        if self.postgres is None:
            return f"SQLite in {self.data_dir}"
        return f"Postgres at {self.postgres.display()}"

    @property
    def postgres(self) -> PostgresUrl | None:
        """The Postgres target in each driver's form (None on SQLite)."""
        return None if self.database_url is None else PostgresUrl.parse(self.database_url)

    @property
    def dbos_executor_threads(self) -> int | None:
        """The bound on DBOS's executor threads; None leaves DBOS's own (unbounded)."""
        if self.executor_threads is not None:
            return self.executor_threads
        return None if self.uses_sqlite else 4

    @property
    def worker_count(self) -> int:
        """Serving processes: as set, else one a core on Postgres; always one on SQLite."""
        if self.workers is not None:
            return self.workers
        return 1 if self.uses_sqlite else max(1, os.cpu_count() or 1)

    @property
    def connections_per_process(self) -> int:
        """Postgres connections one serving process opens at most."""
        threads = self.dbos_executor_threads or 0
        # DBOS's pool + its LISTEN connection + the step engine + the routes' pool + liveness.
        return self.sys_db_pool_size + 1 + threads + self.app_db_pool_size + 1

    @property
    def app_database_url(self) -> str:
        """Sync URL of the store's own tables (Alembic, DBOS's datasource migrations)."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'store.sqlite'}"

    @property
    def async_app_database_url(self) -> str:
        """Async URL of the store's own tables, used by the DBOS datasource."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'store.sqlite'}"

    @property
    def system_database_url(self) -> str:
        """DBOS's system tables: the same Postgres database, or a SQLite file of their own."""
        if self.database_url is not None:
            return self.database_url
        return f"{SQLITE_PREFIX}{self.data_dir.resolve() / DBOS_SQLITE}"

    def resolved_webhook_secret(self) -> str:
        """The configured secret, else the one kept in the data folder, made at first start."""
        if self.webhook_secret:
            return self.webhook_secret
        path = self.data_dir / SECRET_FILE_NAME
        # Only the store's user may look in: it holds the secret (and on SQLite, the orders).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once agree on one secret.
            with path.open("x", encoding="ascii") as file:
                path.chmod(0o600)
                file.write(secrets.token_hex(32))
        except FileExistsError:
            pass
        return path.read_text(encoding="ascii").strip()
