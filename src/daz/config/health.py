"""The ``health`` section: the monitor, its HTTP server and the thresholds of its checks."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from daz.config._base import Fraction, NonNegativeSeconds, PositiveSeconds, _Model


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
