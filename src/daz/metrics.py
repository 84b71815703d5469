"""Every Prometheus metric daz exposes, on an injectable registry.

Names are ``daz_*``; counters end in ``_total``, durations in ``_seconds``. Labels are bounded:
room names come from configuration, operation types and breaker names from code or configuration,
never from user input. Create one ``DazMetrics`` per process (or per test, with a fresh registry).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# Numeric codes for state gauges; documented in docs/observability.md.
BREAKER_STATE_CODES = {"closed": 0, "open": 1, "half_open": 2, "forced_open": 3, "disabled": 4}
HEALTH_STATUS_CODES = {"pass": 0, "warn": 1, "fail": 2}
ROOM_STATE_CODES = {
    "disconnected": 0,
    "discovering": 1,
    "connecting": 2,
    "joining": 3,
    "ready": 4,
    "backing_off": 5,
    "kicked": 6,
    "closed": 7,
    "parked": 8,
    "waiting": 9,
    "stopped": 10,
}

PLUGIN_STATE_CODES = {"starting": 0, "running": 1, "backing_off": 2, "stopped": 3}

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)


class DazMetrics:
    """All metrics, registered on ``registry`` (a fresh ``CollectorRegistry`` unless one is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:  # noqa: PLR0915 - one statement per metric
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._channel_metrics(r)

        # retry queue
        self.retry_scheduled = Counter(
            "daz_retry_scheduled_total", "Operations scheduled for retry", ["operation_type"], registry=r
        )
        self.retry_success = Counter(
            "daz_retry_success_total", "Retry attempts that succeeded", ["operation_type"], registry=r
        )
        self.retry_failure = Counter(
            "daz_retry_failure_total", "Retry attempts that failed", ["operation_type"], registry=r
        )
        self.retry_dead_letter = Counter(
            "daz_retry_dead_letter_total", "Operations moved to the dead-letter queue", ["operation_type"],
            registry=r,
        )
        self.retry_reclaimed = Counter(
            "daz_retry_reclaimed_total", "Claims whose lease expired and were taken over", registry=r
        )
        self.retry_stale_fence = Counter(
            "daz_retry_stale_fence_total", "Late results rejected because the fence moved on", registry=r
        )
        self.retry_duration = Histogram(
            "daz_retry_duration_seconds", "Duration of one retry attempt", ["operation_type", "outcome"],
            buckets=_FAST_BUCKETS, registry=r,
        )
        self.retry_queue_depth = Gauge(
            "daz_retry_queue_depth", "Queue items by status", ["status"], registry=r
        )
        self.retry_oldest_pending_age = Gauge(
            "daz_retry_oldest_pending_age_seconds", "Age of the oldest pending item", registry=r
        )
        self.retry_budget_exhausted = Counter(
            "daz_retry_budget_exhausted_total", "Retries deferred because the retry budget was empty",
            ["dependency"], registry=r,
        )
        self.retry_deferred_by_breaker = Counter(
            "daz_retry_deferred_by_breaker_total", "Items rescheduled without an attempt: breaker open",
            ["breaker"], registry=r,
        )

        # circuit breakers
        self.breaker_state = Gauge(
            "daz_breaker_state", "Breaker state (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled)",
            ["name"], registry=r,
        )
        self.breaker_calls = Counter(
            "daz_breaker_calls_total", "Calls through a breaker by outcome", ["name", "outcome"], registry=r
        )
        self.breaker_rejections = Counter(
            "daz_breaker_rejections_total", "Calls refused while the breaker was open", ["name"], registry=r
        )
        self.breaker_transitions = Counter(
            "daz_breaker_transitions_total", "Breaker state changes", ["name", "to"], registry=r
        )

        # rooms
        self.room_state = Gauge(
            "daz_room_state", "Room state code (see docs/observability.md)", ["room"], registry=r
        )
        self.room_reconnects = Counter(
            "daz_room_reconnects_total", "Reconnections by reason", ["room", "reason"], registry=r
        )
        self.room_ready_seconds = Histogram(
            "daz_room_ready_seconds", "Time from losing a room to READY again", ["room"],
            buckets=_SLOW_BUCKETS, registry=r,
        )
        self.room_flaps = Counter(
            "daz_room_flaps_total", "READY sessions lost before they were stable", ["room"], registry=r
        )
        self.room_last_frame_age = Gauge(
            "daz_room_last_frame_age_seconds", "Seconds since the last frame from the server", ["room"],
            registry=r,
        )
        self.messages_received = Counter(
            "daz_messages_received_total", "Server events received", ["room", "event"], registry=r
        )
        self.messages_sent = Counter(
            "daz_messages_sent_total", "Lines sent by outcome", ["room", "outcome"], registry=r
        )
        # per CyTube server (label: host:port from configuration or discovery, bounded by the rooms)
        self.server_sockets = Gauge(
            "daz_server_sockets", "Sockets daz holds on the server (dead ones it may still count included)",
            ["server"], registry=r,
        )
        self.server_socket_cap = Gauge(
            "daz_server_socket_cap", "Sockets the server allows from this address (as daz believes)",
            ["server"], registry=r,
        )
        self.server_parked_rooms = Gauge(
            "daz_server_parked_rooms", "Rooms PARKED waiting for a socket slot", ["server"], registry=r
        )
        self.room_refusals = Counter(
            "daz_room_refusals_total", "Server refusals and kicks by outcome (docs/rooms.md)",
            ["room", "outcome"], registry=r,
        )
        self.room_lease_owned = Gauge(
            "daz_room_lease_owned", "1 while this instance holds the room's lease", ["room"], registry=r
        )
        self.room_failovers = Counter(
            "daz_room_failovers_total", "Rooms taken over from another instance", registry=r
        )

        # health
        self.health_check_status = Gauge(
            "daz_health_check_status", "Check status (0 pass, 1 warn, 2 fail)", ["component"], registry=r
        )
        self.event_loop_lag = Gauge(
            "daz_event_loop_lag_seconds", "Scheduled-vs-actual wake-up delay of the event loop", registry=r
        )
        self.recovery_actions = Counter(
            "daz_recovery_actions_total", "Recovery actions taken by the health monitor", ["action"],
            registry=r,
        )

        # SQL service and pool
        self.sql_operations = Counter(
            "daz_sql_operations_total", "SQL operations by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.sql_duration = Histogram(
            "daz_sql_duration_seconds", "SQL operation duration", ["kind"], buckets=_FAST_BUCKETS, registry=r
        )
        self.pool_size = Gauge("daz_pool_size", "Open connections in the pool", registry=r)
        self.pool_in_use = Gauge("daz_pool_in_use", "Connections checked out", registry=r)
        self.pool_waiting = Gauge("daz_pool_waiting", "Callers waiting for a connection", registry=r)
        self.pool_wait = Histogram(
            "daz_pool_wait_seconds", "Time waited for a connection", buckets=_FAST_BUCKETS, registry=r
        )
        self.pool_evictions = Counter(
            "daz_pool_evictions_total", "Connections evicted by reason", ["reason"], registry=r
        )
        self.pool_health_score_min = Gauge(
            "daz_pool_health_score_min", "Lowest connection health score (0..1)", registry=r
        )
        self.pool_health_score_avg = Gauge(
            "daz_pool_health_score_avg", "Mean connection health score (0..1)", registry=r
        )

        # spool
        self.spool_items = Gauge("daz_spool_items", "Items waiting in the local spool", registry=r)
        self.spool_full = Counter("daz_spool_full_total", "Spool writes refused: spool full", registry=r)
        self.spool_drained = Counter(
            "daz_spool_drained_total", "Items moved from the spool into the store", registry=r
        )

        # event bus
        self.bus_dropped = Counter(
            "daz_bus_dropped_total", "Events dropped because a subscriber queue was full", ["subscriber"],
            registry=r,
        )
        self.bus_handler_failures = Counter(
            "daz_bus_handler_failures_total", "Handler exceptions isolated by the bus", ["subscriber"],
            registry=r,
        )

        # plugins
        self.plugin_state = Gauge(
            "daz_plugin_state", "Plugin state (0 starting, 1 running, 2 backing off, 3 stopped)", ["plugin"],
            registry=r,
        )
        self.plugin_restarts = Counter(
            "daz_plugin_restarts_total", "Plugin restarts after a crash", ["plugin"], registry=r
        )
        self.chatlog_rows = Counter(
            "daz_chatlog_rows_written_total", "Chat log rows written", ["kind"], registry=r
        )

    def _channel_metrics(self, r: CollectorRegistry) -> None:
        self.protocol_malformed = Counter(
            "daz_protocol_malformed_total", "Server frames that did not parse", ["room"], registry=r
        )
        self.actions = Counter(
            "daz_actions_total", "Channel actions by kind and outcome (queued, confirmed, reconciled, "
            "not_permitted, invalid, refused, no_reply)", ["room", "kind", "outcome"], registry=r
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
