"""The ``cytube`` section (connection, backoff, probe, per-server limits) and the ``rooms`` entries."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from daz.backoff import JitterStrategy
from daz.config._base import NonNegativeSeconds, PositiveSeconds, _Model
from daz.errors import ConfigError

DEFAULT_CYTUBE_BASE_URL = "https://cytu.be"


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
    """Password of a password-protected channel, sent when the server asks for it. Without one, an account
    logs in at the prompt (CyTube lets a channel moderator in without the password); wrong, or missing for
    a lower rank, the room stops (outcome `channel_password`), retried after `login_failure_retry_seconds`."""
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
