"""DBOS's configuration, built from Settings (the benchmarks reuse it for DBOS alone)."""

from __future__ import annotations

from dbos import DBOSConfig

from ..config import Settings
from ..database.handle import POOL_PRE_PING


def dbos_config(settings: Settings) -> DBOSConfig:
    config: DBOSConfig = {
        "name": "widget-store",
        "system_database_url": settings.system_database_url,
        "application_version": settings.app_version,
        "executor_id": settings.executor_id,
        "log_level": settings.log_level,
        "max_executor_threads": settings.dbos_executor_threads,
    }
    if not settings.uses_sqlite:
        # DBOS pings its pool's connections unless told not to (db.POOL_PRE_PING says why).
        config["db_engine_kwargs"] = {"pool_pre_ping": POOL_PRE_PING}
        # DBOS's own pool, out of the connection budget (Settings.connections_per_process).
        config["sys_db_pool_size"] = settings.sys_db_pool_size
    else:
        config["notification_listener_polling_interval_sec"] = settings.sqlite_poll_interval_s
    if settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/")
        config["enable_otlp"] = True
        config["otlp_traces_endpoints"] = [f"{endpoint}/v1/traces"]
        config["otlp_logs_endpoints"] = [f"{endpoint}/v1/logs"]
    return config
