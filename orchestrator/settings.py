"""Every tunable, with its default, env variable and one-line help. Read once at start-up."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any


def _opt(default: Any, help: str, env: str | None = None, flag: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "env": env, "flag": flag})


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "address to listen on", "ORCHESTRATOR_HOST")
    port: int = _opt(8000, "port to listen on (0 = any free port)", "ORCHESTRATOR_PORT")
    db: str = _opt(
        "./orchestrator.db",
        "the store: a SQLite database file (one machine), or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        " (API nodes and workers on any number of machines)",
        "ORCHESTRATOR_DB",
    )
    api_key: str = _opt(
        "", "API key(s), comma-separated; empty = a random key kept beside the database", "ORCHESTRATOR_API_KEY"
    )
    models: str = _opt("", "TOML file routing model names to engines", "ORCHESTRATOR_MODELS")
    demo: bool = _opt(True, "create the Invoice demo workflow on first start", "ORCHESTRATOR_DEMO")
    workers: int = _opt(
        os.cpu_count() or 1,
        "runner processes to start beside the API (0 = run in the API process, for tests and debugging)",
        "ORCHESTRATOR_WORKERS",
    )
    api_only: bool = _opt(
        False,
        "serve the API and the feed only; runs are executed by `orchestrator worker` processes",
        "ORCHESTRATOR_API_ONLY",
    )
    max_concurrency: int = _opt(
        32, "model passes in flight across all runs and all workers", "ORCHESTRATOR_MAX_CONCURRENCY"
    )
    per_run_concurrency: int = _opt(
        0, "children in flight per run (0 = no cap beyond max_concurrency)", "ORCHESTRATOR_PER_RUN_CONCURRENCY"
    )
    max_loop_lag_ms: float = _opt(
        3.0,
        "while the event loop lags more than this and several runs are active, runs with children in flight"
        " start no new one (0 = off)",
        "ORCHESTRATOR_MAX_LOOP_LAG_MS",
    )
    pass_timeout_s: float = _opt(300.0, "timeout of one model pass, seconds", "ORCHESTRATOR_PASS_TIMEOUT")
    pass_retries: int = _opt(3, "retries of a pass after a transient error", "ORCHESTRATOR_PASS_RETRIES")
    retry_base_s: float = _opt(0.5, "base delay of the exponential retry backoff, seconds", "ORCHESTRATOR_RETRY_BASE")
    lease_s: float = _opt(
        10.0, "a worker's claim on children lasts this long unless renewed by its heartbeat", "ORCHESTRATOR_LEASE_S"
    )
    heartbeat_s: float = _opt(
        1.0,
        "how often a worker renews its leases; it is presumed dead after 3 missed beats",
        "ORCHESTRATOR_HEARTBEAT_S",
    )
    poll_s: float = _opt(
        0.25, "how often workers and the feed look at the store when no wake-up came", "ORCHESTRATOR_POLL_S"
    )
    commit_interval_ms: float = _opt(
        5.0, "how long finished children may wait to be committed together", "ORCHESTRATOR_COMMIT_INTERVAL_MS"
    )
    commit_batch: int = _opt(500, "most children committed in one transaction", "ORCHESTRATOR_COMMIT_BATCH")
    max_body_bytes: int = _opt(
        64 * 1024 * 1024, "largest request body accepted (uploads included)", "ORCHESTRATOR_MAX_BODY"
    )
    upload_ttl_s: int = _opt(3600, "seconds an upload session stays open", "ORCHESTRATOR_UPLOAD_TTL")
    feed_buffer: int = _opt(1024, "events buffered per feed subscriber before it is lagged", "ORCHESTRATOR_FEED_BUFFER")
    feed_ping_s: float = _opt(15.0, "keep-alive interval of SSE and WebSocket feeds", "ORCHESTRATOR_FEED_PING")
    event_retention_days: float = _opt(
        30.0,
        "keep the feed events of a finished run this long, then only its last one (0 = keep all)",
        "ORCHESTRATOR_EVENT_RETENTION_DAYS",
    )
    cache: bool = _opt(
        True,
        "reuse pass outputs from the pass cache (keyed by the full request and the pass index) and store new"
        " ones; --no-cache turns it off for every run (one run: `cache: false`)",
        "ORCHESTRATOR_CACHE",
    )
    cache_max_mb: int = _opt(
        1024,
        "size bound of the pass cache in the store, MB; least recently used entries are evicted past it",
        "ORCHESTRATOR_CACHE_MAX_MB",
    )
    public_url: str = _opt(
        "", "base URL printed and used in upload links (default http://HOST:PORT)", "ORCHESTRATOR_PUBLIC_URL"
    )
    web_root: str = _opt(
        "", "folder of the browser page to serve (empty = the page installed with the package)", "ORCHESTRATOR_WEB_ROOT"
    )
    log_level: str = _opt("info", "log level: debug, info, warning, error", "ORCHESTRATOR_LOG_LEVEL")
    # -- hardening (README "Security")
    python_modules: str = _opt(
        "",
        "modules (with their submodules) whose functions blocks may run as `python:MODULE:FUNCTION`,"
        " comma-separated; the python routes of --models are allowed too; nothing else is imported",
        "ORCHESTRATOR_PYTHON_MODULES",
    )
    signin_ttl_s: float = _opt(
        900.0, "a sign-in link works once, within this many seconds of being made", "ORCHESTRATOR_SIGNIN_TTL_S"
    )
    session_ttl_h: float = _opt(168.0, "hours a browser session lasts after sign-in", "ORCHESTRATOR_SESSION_TTL_H")
    body_timeout_s: float = _opt(
        60.0, "seconds a request body may take to arrive (then 408)", "ORCHESTRATOR_BODY_TIMEOUT_S"
    )
    document_timeout_s: float = _opt(
        30.0, "seconds decoding one document (PDF, HTML, XML) may take", "ORCHESTRATOR_DOCUMENT_TIMEOUT_S"
    )
    document_max_pages: int = _opt(5000, "most pages of one document", "ORCHESTRATOR_DOCUMENT_MAX_PAGES")
    document_max_chars: int = _opt(
        20_000_000, "most characters of text decoded from one document", "ORCHESTRATOR_DOCUMENT_MAX_CHARS"
    )
    document_processes: int = _opt(
        1, "processes decoding documents at once, per worker", "ORCHESTRATOR_DOCUMENT_PROCESSES"
    )
    document_cache_mb: int = _opt(
        64, "decoded documents kept in memory per worker, in MB", "ORCHESTRATOR_DOCUMENT_CACHE_MB"
    )
    metrics_refresh_s: float = _opt(
        2.0,
        "an open experiment run's metrics are recomputed at most this often (a finished run's: once)",
        "ORCHESTRATOR_METRICS_REFRESH_S",
    )

    @property
    def api_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_key.split(",") if k.strip())

    @property
    def python_module_list(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.python_modules.split(",") if m.strip())

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _coerce(kind: Any, raw: str) -> Any:
    if kind in (bool, "bool"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = f.metadata.get("env")
        help_text = f"{f.metadata['help']} (default: {f.default!r}{', env ' + env if env else ''})"
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)


def from_sources(args: argparse.Namespace | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then environment, then command-line flags."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.metadata.get("env")
        if name and env.get(name) not in (None, ""):
            values[f.name] = _coerce(f.type, env[name])
        if args is not None and getattr(args, f.name, None) is not None:
            raw = getattr(args, f.name)
            values[f.name] = raw if isinstance(raw, bool) else _coerce(f.type, str(raw))
    return Settings(**values)
