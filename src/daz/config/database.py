"""The ``database`` section: the store's URL, timeouts and the PostgreSQL connection pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from daz.config._base import Fraction, NonNegativeSeconds, PositiveSeconds, _Model
from daz.config.masking import mask_dsn

DEFAULT_SQLITE_URL = "sqlite:///daz.db"


class PoolConfig(_Model):
    """The PostgreSQL connection pool: one per process, shared by the retry store and the SQL service
    (docs/sql.md)."""

    min_size: Annotated[int, Field(ge=0)] = 2
    """Connections opened at start (warm-up) and kept at least."""
    max_size: Annotated[int, Field(ge=1)] = 10
    """Most connections the pool grows to under load; the retry workers and the SQL service share
    them, so keep it above retry.worker_count."""
    acquire_timeout_seconds: PositiveSeconds = 5.0
    """How long a caller waits for a free connection before a retryable SqlError."""
    max_lifetime_seconds: PositiveSeconds = 1800.0
    """A connection is replaced after this age (minus up to lifetime_jitter of it)."""
    lifetime_jitter: Fraction = 0.1
    """Fraction of max_lifetime_seconds taken off at random so connections do not expire together."""
    validate_on_checkout: bool = True
    """Ping a connection idle longer than validation_idle_seconds before handing it out."""
    validation_idle_seconds: NonNegativeSeconds = 1.0
    """Idle time after which checkout validation pings (0 = ping on every checkout)."""
    keepalive_interval_seconds: PositiveSeconds = 30.0
    """Idle connections are pinged this often; failures are evicted."""
    health_score_threshold: Fraction = 0.3
    """Connections scoring below this (latency x errors x age, 0..1) are evicted and replaced."""
    resize_interval_seconds: PositiveSeconds = 5.0
    """How often the pool re-plans its size from wait time and utilisation."""

    @model_validator(mode="after")
    def _sizes(self) -> PoolConfig:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})")
        return self


class DatabaseConfig(_Model):
    """``url`` is ``sqlite:///path`` (default, embedded) or ``postgresql://…``."""

    url: SecretStr = SecretStr(DEFAULT_SQLITE_URL)
    """Store: `sqlite:///path` (embedded default) or `postgresql://user:pw@host/db`; also DAZ_DATABASE_URL."""
    require_database: bool = False
    """Fail start-up when the database is unreachable; otherwise start degraded and keep trying."""
    statement_timeout_seconds: PositiveSeconds = 30.0
    """PostgreSQL statement_timeout for the pool's connections (store and SQL service; 57014,
    retryable); the client gives up after twice this, so a silent network cannot hang a call."""
    connect_timeout_seconds: PositiveSeconds = 5.0
    """Timeout for opening one PostgreSQL connection."""
    sqlite_busy_timeout_seconds: NonNegativeSeconds = 5.0
    """How long SQLite waits on a locked database before SQLITE_BUSY (retryable)."""
    idempotency_key_retention_days: Annotated[float, Field(gt=0)] = 7.0
    """How long the keys of applied idempotent execs (`daz_idempotency_keys`) are kept; a duplicate of
    an exec older than this would apply again. Keep it above the longest time a retry or a re-sent
    write can arrive late (the retry queue's `retention_days` is a good floor)."""
    idempotency_prune_interval_seconds: PositiveSeconds = 3600.0
    """How often the SQL service deletes idempotency keys older than idempotency_key_retention_days."""
    pool: PoolConfig = PoolConfig()

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith(("sqlite:///", "sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql:// (e.g. sqlite:///daz.db)")
        return value

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        """``"postgres"`` for either URL scheme (``postgresql://``, ``postgres://``), as everywhere in daz."""
        return "sqlite" if self.url.get_secret_value().startswith("sqlite") else "postgres"

    def sqlite_path(self) -> Path:
        raw = self.url.get_secret_value()
        return Path(raw.removeprefix("sqlite:///").removeprefix("sqlite://") or "daz.db")

    def display_url(self) -> str:
        return mask_dsn(self.url.get_secret_value())
