"""The whole configuration: pydantic v2 models, a JSON file (sections
``rooms``, ``retry.retry_policies``, ``database``, ... as documented), ``DAZ_*`` overrides.

Every model forbids unknown fields so a typo is an error, not a silently ignored setting. Problems
are reported as one line per field: ``retry.worker_count: must be at least 1 (got -3)``.
Secrets are ``SecretStr`` and may also come from a file (``password_file``) or an environment
variable; they are masked wherever the configuration is shown.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from daz.backoff import JitterStrategy
from daz.errors import ConfigError

ENV_PREFIX = "DAZ_"
DATABASE_URL_ENV = "DAZ_DATABASE_URL"
DEFAULT_SQLITE_URL = "sqlite:///daz.db"
DEFAULT_CYTUBE_BASE_URL = "https://cytu.be"
MASK = "**********"

PositiveSeconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def merge_over_defaults(value: Any, defaults: Mapping[str, Mapping[str, Any]]) -> Any:
    """A user's map of named sections laid over the built-in ones, field by field. Anything that is
    not a map of maps is returned unchanged, so validation reports it with the user's own shape."""
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        return value
    merged: dict[str, Any] = {name: dict(section) for name, section in defaults.items()}
    for name, section in value.items():
        merged[name] = {**merged.get(name, {}), **section}
    return merged



class _Model(BaseModel):
    # Docstrings under fields become their descriptions (scripts/gen_config_docs.py prints them).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )


class BackoffConfig(_Model):
    """Reconnect backoff: 2 s doubling, ±25 % jitter, 5-minute cap."""

    strategy: JitterStrategy = JitterStrategy.PROPORTIONAL
    """`proportional`: a uniform draw in [(1-jitter)·b, (1+jitter)·b], capped; `full` and
    `decorrelated`: AWS jitter; `none`: exactly b. See "Reliability: backoff" below."""
    base_seconds: PositiveSeconds = 2.0
    """b for the first reconnect attempt."""
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    """b grows by this factor per failed attempt: b = base_seconds · multiplier^(k-1)."""
    jitter: Annotated[float, Field(ge=0, lt=1)] = 0.25
    """Spread of `proportional`: ±this share of b (0.25 = ±25 %)."""
    max_seconds: PositiveSeconds = 300.0
    """Cap: no reconnect wait exceeds this (5 minutes by default); jitter is kept below the cap."""


class ProbeConfig(_Model):
    """Cheap reachability probe while backing off, so recovery is not a long backoff away."""

    enabled: bool = True
    """While backing off after a discovery/connect failure or a dead connection, probe the server cheaply
    and reconnect as soon as it answers instead of sleeping out the backoff."""
    interval_seconds: PositiveSeconds = 1.0
    """Wait before the first probe; it doubles per probe up to max_interval_seconds, each wait drawn from
    [½, 1] of that."""
    max_interval_seconds: PositiveSeconds = 3.0
    """Longest wait between two probes."""
    timeout_seconds: PositiveSeconds = 2.0
    """Timeout of one probe (a socketconfig lookup, or a TCP connect when `server_url` is set); also of the
    socketconfig lookup when connecting."""


class ServerLimitsConfig(_Model):
    """One CyTube server's per-address limits, mirrored by daz so it never trips them (docs/rooms.md)."""

    connection_burst: Annotated[int, Field(ge=1)] = 5
    """Size of the server's per-IP connection token bucket (CyTube: 5); this many connects may start at
    once."""
    connection_refill_seconds: PositiveSeconds = 10.0
    """One connection token comes back per this many seconds (CyTube: 10)."""
    token_margin_seconds: NonNegativeSeconds = 0.25
    """A refilled token is used this much later than the server's bucket would allow, so network
    latency never makes an attempt arrive before the server's token does."""
    max_sockets: Annotated[int, Field(ge=1)] = 10
    """Concurrent sockets the server allows from one address (CyTube's `ip-connection-limit`: 10); rooms
    beyond it are PARKED."""
    guest_login_window_seconds: NonNegativeSeconds = 60.0
    """One successful guest login per address per this many seconds (CyTube: 60); guest rooms wait it
    out from daz's own last guest login instead of being refused."""
    socket_cap_recheck_seconds: PositiveSeconds = 60.0
    """After a `Too many connections` kick (someone else uses slots from this address), the cap daz
    learned is kept this long before one more room may try."""


_SERVER_DEFAULTS = "default"


class CytubeConfig(_Model):
    base_url: str = DEFAULT_CYTUBE_BASE_URL
    """CyTube site; each room's server is looked up at `<base_url>/socketconfig/<channel>.json` unless the
    room sets `server_url`."""
    join_timeout_seconds: PositiveSeconds = 10.0
    """Wait for the server to confirm `joinChannel`; longer and the attempt fails (`session_timeout`) and
    backs off."""
    login_timeout_seconds: PositiveSeconds = 10.0
    """Wait for the reply to `login`; longer and the attempt fails (`session_timeout`) and backs off."""
    connect_timeout_seconds: PositiveSeconds = 15.0
    """Time allowed to open the Socket.IO connection (TCP, TLS, Engine.IO handshake) before the attempt
    counts as `connect_failed`."""
    media_update_timeout_seconds: PositiveSeconds = 300.0
    """While a non-live item plays unpaused, media updates overdue this long mark the room media-stale
    (`room.media_stale`); the connection is torn down (`media_timeout`) only if a server ping is overdue
    too. Also the room health check's limit."""
    liveness_margin_seconds: NonNegativeSeconds = 5.0
    """Slack on the server's pingInterval + pingTimeout: no frame at all for that long means the connection
    is dead (`no_frames`) and the room reconnects."""
    stable_after_seconds: NonNegativeSeconds = 60.0
    """A READY session lasting this long resets the attempt counter (the next outage backs off from attempt
    1); one ending sooner counts as a flap."""
    flap_window_seconds: PositiveSeconds = 600.0
    """Window in which flaps (READY sessions shorter than stable_after_seconds) are counted."""
    flap_threshold: Annotated[int, Field(ge=1)] = 5
    """This many flaps within flap_window_seconds mark the room degraded (`room.degraded` event, health
    check `flaps`)."""
    give_up_after_attempts: Annotated[int, Field(ge=1)] | None = None
    """Stop reconnecting after this many failed attempts in a row (room CLOSED, `room.gave_up` event);
    unset: never give up."""
    rate_limit_min_wait_seconds: NonNegativeSeconds = 10.0
    """A connection refused with `Rate limit exceeded` waits at least this long, whatever the backoff
    draws."""
    backoff: BackoffConfig = BackoffConfig()
    probe: ProbeConfig = ProbeConfig()
    outbound_buffer_size: Annotated[int, Field(ge=1)] = 1000
    """Lines a room's outbox holds while waiting to be sent; beyond it `send` refuses new lines with
    `OutboxFull`."""
    delivery_timeout_seconds: PositiveSeconds = 10.0
    """How long a sent line waits for the server's echo; on timeout the connection is recycled and the join
    backlog decides whether it arrived (after 3 timeouts the line is dropped from the outbox and left to
    the retry queue)."""
    action_timeout_seconds: PositiveSeconds = 10.0
    """How long a sent channel action (queue, delete, kick, poll...) waits for the server's confirming
    event; then the replica is checked (did it happen anyway?) before it is sent again or failed."""
    action_silent_retries: Annotated[int, Field(ge=0, le=10)] = 1
    """Times an action the server did not answer (and the replica shows not done) is sent again before it
    fails with "no reply (dropped by the server)"."""
    message_max_chars: Annotated[int, Field(ge=1, le=320)] = 320
    """Longer outgoing lines are split into parts of at most this many characters (CyTube cuts chat at
    320)."""
    servers: dict[str, ServerLimitsConfig] = Field(
        default_factory=lambda: {_SERVER_DEFAULTS: ServerLimitsConfig()}
    )
    """Per-server limits by `host:port` of the Socket.IO URL (e.g. `"cytu.be:443"`); `default` applies
    to every server not listed. Entries are merged over `default` field by field."""
    login_failure_retry_seconds: Annotated[float, Field(gt=0)] | None = 600.0
    """A wrong password or a refused name STOPS the room (the password file is re-read first); it is
    tried again after this long, or at once on `daz rooms restart`. Unset: only on restart."""
    ban_retry_seconds: Annotated[float, Field(gt=0)] | None = None
    """A ban kick STOPS the room; unset (default): it stays stopped until `daz rooms restart`,
    otherwise it tries again after this long."""
    kick_rejoin_delay_seconds: NonNegativeSeconds = 30.0
    """A moderator's plain /kick (or an admin-action kick) rejoins after this polite delay."""
    half_open_detection: bool = True
    """Treat a connection as suspect when a server PING is overdue by half_open_grace_seconds past
    pingInterval, and recover at once (a new session before the old one is dropped) instead of
    waiting for pingTimeout."""
    half_open_grace_seconds: NonNegativeSeconds = 10.0
    """How late a server PING may be before the connection is suspect."""
    half_open_guest: Literal["fresh_name", "same_name"] = "fresh_name"
    """A guest's recovery from a suspect connection: `fresh_name` opens a new session under a new
    guest name at once (the old name stays taken until the server drops the dead socket);
    `same_name` closes the old socket and waits until the server has dropped it, then logs in
    under the same name. Both wait for the guest-login window."""

    @field_validator("servers", mode="before")
    @classmethod
    def _merge_servers(cls, value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
            return value
        default = dict(value.get(_SERVER_DEFAULTS, {}))
        return {
            _SERVER_DEFAULTS: default,
            **{k: {**default, **v} for k, v in value.items() if k != _SERVER_DEFAULTS},
        }

    def server_limits(self, key: str) -> ServerLimitsConfig:
        """The limits of the server ``host:port`` (its own entry, else `default`)."""
        return self.servers.get(key) or self.servers.get(_SERVER_DEFAULTS) or ServerLimitsConfig()


class RoomConfig(_Model):
    """One channel to sit in. No ``username`` means a guest name is generated."""

    channel: Annotated[str, Field(pattern=r"^[\w-]{1,30}$")]
    """Channel name as in `https://cytu.be/r/<channel>`; daz runs one room supervisor per entry."""
    username: Annotated[str, Field(pattern=r"^[\w-]{1,20}$")] | None = None
    """Account to log in as; unset: a guest name `daz-<6 hex>` drawn at start-up."""
    password: SecretStr | None = None
    """Account password (masked in output and logs). Give at most one of password, password_file,
    password_env."""
    password_file: Path | None = None
    """File whose content (trimmed) is the account password, re-read at every login; keeps the secret out
    of the config file."""
    password_env: str | None = None
    """Name of an environment variable holding the account password; `daz run` refuses to start if it is
    unset."""
    channel_password: SecretStr | None = None
    """Password of a password-protected channel, sent when the server asks for it; missing or wrong, the
    join fails and is retried with backoff."""
    server_url: str | None = None
    """Socket.IO server to connect to directly (e.g. `http://127.0.0.1:8880` for a private or fake server),
    skipping `/socketconfig` discovery; probes then are a plain TCP connect."""
    enabled: bool = True
    """`false`: keep the entry but do not join the room."""

    @model_validator(mode="after")
    def _one_password_source(self) -> RoomConfig:
        sources = [s for s in (self.password, self.password_file, self.password_env) if s is not None]
        if len(sources) > 1:
            raise ValueError("give only one of password, password_file, password_env")
        return self

    def resolved_password(self) -> SecretStr | None:
        """The bot password from whichever source was configured."""
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            try:
                return SecretStr(self.password_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(
                    f"rooms.{self.channel}.password_file: cannot read {self.password_file} "
                    f"({exc.strerror}); check the path and permissions"
                ) from exc
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"rooms.{self.channel}.password_env: environment variable {self.password_env} "
                    "is not set; export it or use password_file"
                )
            return SecretStr(value)
        return None


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


class RetryPolicyConfig(_Model):
    """One operation type's policy: attempts and exponential delays, plus timeout, jitter and breaker."""

    max_retries: Annotated[int, Field(ge=0)] = 3
    """Retries after the first failure before the operation is dead-lettered."""
    initial_delay_seconds: NonNegativeSeconds = 2.0
    """Wait before the first retry."""
    max_delay_seconds: PositiveSeconds = 60.0
    """Upper bound of the wait between retries."""
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Retry n waits initial_delay_seconds · backoff_multiplier^(n-1), capped."""
    timeout_seconds: PositiveSeconds = 30.0
    """Time one attempt may take before it counts as failed."""
    jitter: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Random spread ±jitter·delay so retries of many items do not line up."""
    breaker: str | None = None
    """Circuit breaker (a key of `breakers`) the attempts go through; none when unset."""


def _default_policies() -> dict[str, RetryPolicyConfig]:
    return {
        "cytube_command": RetryPolicyConfig(
            max_retries=5, initial_delay_seconds=5, max_delay_seconds=300, backoff_multiplier=2.0
        ),
        "sql_operation": RetryPolicyConfig(
            max_retries=3, initial_delay_seconds=2, max_delay_seconds=60, backoff_multiplier=1.5,
            breaker="database",
        ),
    }


class RetryConfig(_Model):
    enabled: bool = True
    """Run the persistent retry queue's workers."""
    poll_interval_seconds: PositiveSeconds = 10.0
    """How often idle workers look for due items (NOTIFY wake-ups make it faster on PostgreSQL)."""
    worker_count: Annotated[int, Field(ge=1, le=64)] = 3
    """Concurrent retry workers in this process."""
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    """Due items one worker claims (leases) per store round-trip; a full batch wakes another idle worker."""
    lease_seconds: PositiveSeconds = 30.0
    """A claimed item is leased to its worker this long; if the worker dies, another may claim it once the
    lease has expired."""
    heartbeat_interval_seconds: PositiveSeconds = 10.0
    """While an attempt runs its lease is extended this often; must be shorter than lease_seconds."""
    retention_days: PositiveSeconds = 7.0
    """Completed items are kept this many days (fractions allowed) for `daz retry`, then deleted by the
    hourly cleanup; dead letters are kept until replayed or purged."""
    breaker_release_per_second: PositiveSeconds = 50.0
    """When a breaker closes, the items it deferred become due at most this many per second, so a
    recovering dependency is not hit by a stampede."""
    stats_interval_seconds: PositiveSeconds = 15.0
    """How often the queue refreshes daz_retry_queue_depth and the oldest-pending-age gauge."""
    cleanup_interval_seconds: PositiveSeconds = 3600.0
    """How often completed items older than retention_days are deleted."""
    no_handler_delay_seconds: PositiveSeconds = 10.0
    """An item nobody handles yet (no handler, no bus responder) is looked at again after this."""
    default_policy: RetryPolicyConfig = RetryPolicyConfig()
    retry_policies: dict[str, RetryPolicyConfig] = Field(default_factory=_default_policies)
    """Policy per operation type (`cytube_command`, `sql_operation`, a plugin's own); other types use
    default_policy. Entries are merged over the built-in ones field by field: giving only
    `{"sql_operation": {"max_delay_seconds": 90}}` keeps the other policies and sql_operation's other
    settings (multiplier 1.5, breaker `database`)."""

    @field_validator("retry_policies", mode="before")
    @classmethod
    def _merge_policies(cls, value: Any) -> Any:
        return merge_over_defaults(value, {k: v.model_dump() for k, v in _default_policies().items()})

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> RetryConfig:
        if self.heartbeat_interval_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_interval_seconds ({self.heartbeat_interval_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds})"
            )
        return self

    def policy_for(self, operation_type: str) -> RetryPolicyConfig:
        return self.retry_policies.get(operation_type, self.default_policy)


class BreakerConfig(_Model):
    """A circuit breaker: sliding window by count or time, failure-rate and slow-call thresholds."""

    window_type: Literal["count", "time"] = "count"
    """`count`: rates over the last `window_size` calls; `time`: over the last `window_seconds`."""
    window_size: Annotated[int, Field(ge=1)] = 20
    """Calls in a count window (must be at least `minimum_calls`)."""
    window_seconds: PositiveSeconds = 60.0
    """Length of a time window (kept in ten buckets)."""
    minimum_calls: Annotated[int, Field(ge=1)] = 10
    """No opening on rates until the window holds this many calls."""
    failure_rate_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Open when this share of the window's calls failed (retryable errors only)."""
    slow_call_rate_threshold: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Open when this share of the window's calls were slow (1.0: only when all were)."""
    slow_call_duration_seconds: PositiveSeconds = 5.0
    """A call taking at least this long is slow, whether it succeeded or not."""
    break_seconds: PositiveSeconds = 5.0
    """How long the first opening lasts before half-open probes."""
    break_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Each consecutive re-opening (a failed probe) multiplies the break by this."""
    max_break_seconds: PositiveSeconds = 300.0
    """Cap on the break; also the `retry_after` a forced-open breaker reports."""
    break_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Break drawn uniformly from ±this share of its nominal value (never beyond the cap)."""
    half_open_permits: Annotated[int, Field(ge=1)] = 3
    """Probe calls admitted while half-open; all must succeed to close, any failure re-opens."""

    @model_validator(mode="after")
    def _can_open(self) -> BreakerConfig:
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) must not exceed window_size ({self.window_size}): "
                "the breaker could never open"
            )
        if self.break_seconds > self.max_break_seconds:
            raise ValueError(
                f"break_seconds ({self.break_seconds}) must not exceed max_break_seconds "
                f"({self.max_break_seconds})"
            )
        return self


class RetryBudgetConfig(_Model):
    """Retries may add at most ``ratio`` of base traffic plus ``min_per_second``, per dependency."""

    enabled: bool = True
    """Off: retries are never deferred for budget reasons."""
    ratio: Annotated[float, Field(ge=0)] = 0.2
    """Retries per window may add this share of the window's first attempts (0.2 = +20 %)."""
    min_per_second: Annotated[float, Field(ge=0)] = 1.0
    """Floor: this many retries per second are allowed even without base traffic."""
    window_seconds: PositiveSeconds = 10.0
    """Sliding window (ten buckets) over which first attempts and retries are counted."""


class SpoolConfig(_Model):
    """Local durable spool for retries while the retry store is unreachable (docs/sql.md)."""

    path: Path = Path("daz-spool.sqlite")
    """SQLite file (WAL, synchronous=FULL) holding spooled retries."""
    max_items: Annotated[int, Field(ge=1)] = 100_000
    """Items the spool holds at most; beyond it scheduling fails with SpoolFull."""
    drain_interval_seconds: PositiveSeconds = 1.0
    """How often the drainer tries to move spooled items into the store."""


class HealthThresholds(_Model):
    db_latency_warn_ms: Annotated[float, Field(gt=0)] = 100.0
    """`database:latency` (SELECT 1) warns at or above this."""
    db_latency_fail_ms: Annotated[float, Field(gt=0)] = 1000.0
    """`database:latency` fails at or above this."""
    memory_warn_mb: Annotated[float, Field(gt=0)] = 512.0
    """`process:memory` (RSS, MiB) warns at or above this."""
    memory_fail_mb: Annotated[float, Field(gt=0)] = 1024.0
    """`process:memory` fails at or above this."""
    cpu_warn_percent: Annotated[float, Field(gt=0)] = 80.0
    """`process:cpu` (percent of one core since the last tick) warns at or above this."""
    cpu_fail_percent: Annotated[float, Field(gt=0)] = 95.0
    """`process:cpu` fails at or above this."""
    loop_lag_warn_ms: Annotated[float, Field(gt=0)] = 100.0
    """`process:loop_lag` (worst recent wake-up delay) warns at or above this."""
    loop_lag_fail_ms: Annotated[float, Field(gt=0)] = 1000.0
    """`process:loop_lag` fails at or above this."""
    open_fds_warn: Annotated[int, Field(gt=0)] = 800
    """`process:open_fds` warns at or above this."""
    open_fds_fail: Annotated[int, Field(gt=0)] = 1000
    """`process:open_fds` fails at or above this."""
    queue_oldest_pending_warn_seconds: Annotated[float, Field(gt=0)] = 600.0
    """`retry_queue:oldest_pending` warns when the oldest pending item waits this long."""
    queue_oldest_pending_fail_seconds: Annotated[float, Field(gt=0)] = 3600.0
    """`retry_queue:oldest_pending` fails at this age."""
    dead_letters_warn_per_hour: Annotated[int, Field(ge=0)] = 1
    """`retry_queue:dead_letters` warns at this many dead letters in the last hour (0: never warns)."""
    dead_letters_fail_per_hour: Annotated[int, Field(ge=1)] = 100
    """`retry_queue:dead_letters` fails at this many dead letters in the last hour."""
    breaker_open_fail_seconds: Annotated[float, Field(gt=0)] = 300.0
    """`breaker:state` warns while OPEN and fails once OPEN this long (forced open only warns)."""
    spool_warn_items: Annotated[int, Field(ge=0)] = 1
    """`spool:items` warns at this many waiting items (0: never warns); a full spool fails."""
    pool_saturation_warn: Fraction = 0.8
    """`database:saturation` (in use / max size) warns at or above this share."""
    pool_saturation_fail: Fraction = 1.0
    """`database:saturation` fails at or above this share while callers wait."""


class HealthConfig(_Model):
    enabled: bool = True
    """Off: no health HTTP server (the monitor still runs; `!status` reads it)."""
    host: str = "127.0.0.1"
    """Address the health server binds; loopback by default (only admin routes are authenticated)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Port of /livez, /readyz, /health, /metrics and the status page (0: any free port)."""
    interval_seconds: PositiveSeconds = 5.0
    """How often the monitor runs every check."""
    check_timeout_seconds: PositiveSeconds = 2.0
    """A check that takes longer fails (`<check>:check`); also bounds each status-page source."""
    history_size: Annotated[int, Field(ge=1)] = 120
    """Statuses kept per component, and throughput samples kept for the page's chart."""
    recovery_min_interval_seconds: NonNegativeSeconds = 30.0
    """At most one recovery action (e.g. room reconnect) per component within this time."""
    external_check: bool = True
    """Check that the CyTube site's /socketconfig endpoint answers (non-critical)."""
    external_interval_seconds: PositiveSeconds = 60.0
    """The external check runs at most this often (it reports its last result in between)."""
    external_timeout_seconds: PositiveSeconds = 5.0
    """HTTP timeout of the external check."""
    loop_lag_interval_seconds: PositiveSeconds = 0.5
    """Sleep length of the event-loop lag probe (lag = how late each wake-up is)."""
    admin_token: SecretStr | None = None
    """Enables the admin API (header X-Daz-Admin-Token, compared in constant time); unset: no admin routes."""
    thresholds: HealthThresholds = HealthThresholds()


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level printed (library loggers stay at warning)."""
    format: Literal["auto", "console", "json"] = "auto"
    """`console` on a terminal and `json` otherwise when `auto`."""


class ClusterConfig(_Model):
    """Scale-out on PostgreSQL: rooms leased to exactly one instance."""

    enabled: bool = False
    """Lease rooms through PostgreSQL so several instances share them (docs/scale-out.md); ignored with
    SQLite, where this instance joins every room."""
    instance_id: Annotated[str, Field(pattern=r"^[\w.-]{1,64}$")] | None = None
    """This instance's name in the lease tables; unset: generated once as `<host>-<8 hex>` and kept in
    instance_id_file."""
    instance_id_file: Path = Path(".daz-instance-id")
    """Where a generated instance_id is kept so that a restarted instance keeps its name."""
    lease_seconds: PositiveSeconds = 10.0
    """A room lease lasts this long without renewal; a crashed instance's rooms move to others after at
    most this."""
    renew_interval_seconds: PositiveSeconds = 3.0
    """Heartbeat/renew/acquire period and the time limit of one such tick; at most half of lease_seconds. A
    room is left once its last confirmed renewal is older than lease_seconds minus this."""
    instance_timeout_seconds: PositiveSeconds = 15.0
    """An instance without a heartbeat for this long counts as dead and its leases may be taken."""
    rebalance_interval_seconds: PositiveSeconds = 30.0
    """When the spread is unfair, an instance hands back rooms at most once per interval, so rooms move
    gradually."""
    presence_timeout_seconds: PositiveSeconds = 1.0
    """An instance that cannot prove its presence lock (a query on its dedicated PostgreSQL connection)
    for this long leaves its rooms; the others take a crashed instance's rooms this long plus 0.75 s
    after its session ended, whatever lease_seconds is (docs/scale-out.md)."""

    @model_validator(mode="after")
    def _renew_inside_lease(self) -> ClusterConfig:
        if self.renew_interval_seconds * 2 > self.lease_seconds:
            raise ValueError("renew_interval_seconds must be at most half of lease_seconds")
        return self


def _default_plugins() -> dict[str, dict[str, Any]]:
    return {"commands": {}, "chatlog": {}}


class DazConfig(_Model):
    """The root of the configuration file."""

    rooms: list[RoomConfig] = Field(default_factory=list)
    cytube: CytubeConfig = CytubeConfig()
    database: DatabaseConfig = DatabaseConfig()
    retry: RetryConfig = RetryConfig()
    breakers: dict[str, BreakerConfig] = Field(
        default_factory=lambda: {"default": BreakerConfig(), "database": BreakerConfig()}
    )
    """Circuit breakers by name: `default`, `database`, a family (`cytube`, `http`) or an exact name
    (`cytube:lobby`); a breaker uses its exact entry, else its family's, else `default`. Entries are
    merged over the built-in `default` and `database` ones field by field."""

    @field_validator("breakers", mode="before")
    @classmethod
    def _merge_breakers(cls, value: Any) -> Any:
        return merge_over_defaults(value, {"default": {}, "database": {}})
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    spool: SpoolConfig = SpoolConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=_default_plugins,
        description="plugin name -> its own settings (validated by the plugin)",
    )
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _unique_rooms(self) -> DazConfig:
        seen: set[str] = set()
        for room in self.rooms:
            if room.channel in seen:
                raise ValueError(f"room '{room.channel}' is listed twice")
            seen.add(room.channel)
        return self

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redaction processor."""
        values: list[str] = []
        for room in self.rooms:
            values.extend(
                s.get_secret_value() for s in (room.password, room.channel_password) if s is not None
            )
            try:
                resolved = room.resolved_password()
            except ConfigError:
                resolved = None
            if resolved is not None:
                values.append(resolved.get_secret_value())
        password = dsn_password(self.database.url.get_secret_value())
        if password:
            values.append(password)
        if self.health.admin_token is not None:
            values.append(self.health.admin_token.get_secret_value())
        return [v for v in values if v]


# loading ---------------------------------------------------------------------------------------

def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> DazConfig:
    """Read ``path`` (JSON; optional), apply ``DAZ_*`` overrides, validate. Raises ``ConfigError``."""
    environ = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_json(path)
    apply_env_overrides(raw, environ)
    return validate_config(raw, source=str(path) if path is not None else "environment")


def validate_config(raw: Mapping[str, Any], source: str = "config") -> DazConfig:
    try:
        return DazConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [format_problem(err) for err in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s) in the configuration", problems) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: file not found; pass an existing JSON file (see docs/configuration.md)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8 JSON") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:  # found by the chaos fuzzer: "[" * 100000 overflows json's decoder
        raise ConfigError(f"{path}: JSON nested too deeply to read") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object {{...}}, got {type(data).__name__}")
    return data


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """``DAZ_RETRY__WORKER_COUNT=5`` sets ``retry.worker_count``; ``DAZ_DATABASE_URL`` the store URL.

    Values are strings that pydantic converts to the field's type (``"5"`` → 5, ``"true"`` → True),
    so a numeric password stays a string; values that look like JSON objects, lists or ``null``
    are parsed as JSON. Numeric segments index existing list entries (``DAZ_ROOMS__0__PASSWORD``);
    an index past the end is an error, not a silently ignored setting.
    """
    if DATABASE_URL_ENV in environ:
        raw.setdefault("database", {})
        if isinstance(raw["database"], dict):
            raw["database"]["url"] = environ[DATABASE_URL_ENV]
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key == DATABASE_URL_ENV or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        _set_path(raw, path, _parse_env_value(value), key)


def _parse_env_value(value: str) -> Any:
    text = value.strip()
    if not (text.startswith(("{", "[")) or text == "null"):
        return value
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return value


def _set_path(node: Any, path: list[str], value: Any, env_key: str = "") -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(path[:i]) or "(top level)"
                raise ConfigError(
                    f"{env_key}: {where} has {len(node)} entries, so '{part}' is not an index into it; "
                    "list entries must exist in the file before the environment can override them"
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            return


_SECRET_FIELDS = {"password", "channel_password", "admin_token", "url", "pw"}
_SECRET_WORDS = ("password", "secret", "token", "dsn", "passwd")

# pydantic error type -> what the field needs, in the user's words (ctx values fill the braces).
_EXPECTED: dict[str, str] = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "float_parsing": "must be a number, e.g. 30 or 2.5",
    "float_type": "must be a number, e.g. 30 or 2.5",
    "int_parsing": "must be a whole number, e.g. 3",
    "int_type": "must be a whole number, e.g. 3",
    "int_from_float": "must be a whole number, e.g. 3",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string in quotes",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "dict_type": "must be a JSON object {{...}}",
    "model_type": "must be a JSON object {{...}}",
    "model_attributes_type": "must be a JSON object {{...}}",
    "list_type": "must be a JSON list [...]",
    "path_type": "must be a file path string",
}


def _is_secret_field(field: str) -> bool:
    name = field.lower()
    return name in _SECRET_FIELDS or any(word in name for word in _SECRET_WORDS)


def format_problem(err: Mapping[str, Any]) -> str:
    """One line: ``field.path: what is needed (got …)`` without echoing secret values.

    Example: ``retry.worker_count: must be at least 1 (got -3)``.
    """
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid"))
    field = str(err.get("loc", ("",))[-1]) if err.get("loc") else ""
    shown = "" if _is_secret_field(field) else _short(err.get("input"))
    if kind == "extra_forbidden":
        return f"{loc}: unknown field; remove it or check its spelling (see docs/configuration.md)"
    if kind == "missing":
        return f"{loc}: required field is missing; add it (see docs/configuration.md)"
    got = f" (got {shown})" if shown else ""
    template = _EXPECTED.get(kind)
    if template is not None:
        try:
            return f"{loc}: {template.format(**dict(err.get('ctx') or {}))}{got}"
        except (KeyError, IndexError, ValueError):
            pass  # an unexpected ctx shape: fall back to pydantic's own words below
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg[0].lower() + msg[1:] if msg else msg}{got}"


def _short(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# display ---------------------------------------------------------------------------------------

_DSN_PASSWORD = re.compile(
    r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<tail>@.*)$", re.IGNORECASE
)


def dsn_password(dsn: str) -> str | None:
    match = _DSN_PASSWORD.match(dsn)
    return match.group("pw") if match else None


def mask_dsn(dsn: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:**********@h/db``."""
    match = _DSN_PASSWORD.match(dsn)
    if not match:
        return dsn
    return f"{match.group('head')}{MASK}{match.group('tail')}"


def masked_dict(config: DazConfig) -> dict[str, Any]:
    """The effective configuration as plain data with every secret masked (for display)."""
    data = config.model_dump(mode="json")
    data["database"]["url"] = config.database.display_url()
    for room in data["rooms"]:
        for key in ("password", "channel_password"):
            if room.get(key) is not None:
                room[key] = MASK
    if data["health"].get("admin_token") is not None:
        data["health"]["admin_token"] = MASK
    return data
