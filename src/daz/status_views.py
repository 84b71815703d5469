"""The read side the app hands to health, the status page and ``!status``.

``BotViews`` turns the running parts (store, retry queue, rooms, breakers, cluster, plugin board)
into the views ``daz.health.sources`` defines, plus the two operator actions the status page
offers (breaker actions, dead-letter replay). It is built after those parts and before the health
monitor and the plugin host, which read through it; ``app.py`` only wires it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from daz.clock import Clock
from daz.cluster.coordinator import ClusterCoordinator
from daz.cytube.rooms import RoomManager
from daz.cytube.supervisor import RoomStatus
from daz.health.sources import DeadLetterView, QueueView, StatusSources
from daz.plugins.states import PluginStatuses
from daz.resilience.registry import BreakerRegistry
from daz.retry.queue import RetryQueue
from daz.retry.spool import Spool
from daz.store.base import RetryStore

DEAD_LETTER_WINDOW = timedelta(hours=1)  # the window of QueueView.dead_letters_last_hour


class BotViews:
    def __init__(
        self,
        *,
        store: RetryStore,
        queue: RetryQueue,
        rooms: RoomManager,
        breakers: BreakerRegistry,
        spool: Spool,
        cluster: ClusterCoordinator | None,
        cluster_mode: str,
        plugins: PluginStatuses,
        clock: Clock,
    ) -> None:
        self.store = store
        self.queue = queue
        self.room_manager = rooms
        self.breakers = breakers
        self.spool = spool
        self.cluster = cluster
        self.cluster_mode = cluster_mode
        self.plugins = plugins
        self.clock = clock

    def rooms(self) -> list[RoomStatus]:
        return [self.room_manager.room(name) for name in self.room_manager.rooms()]

    async def queue_view(self) -> QueueView:
        rows = await self.store.stats()
        depth: dict[str, int] = {}
        oldest: float | None = None
        for row in rows:
            depth[row.status] = depth.get(row.status, 0) + row.count
            age = row.oldest_pending_age_seconds
            if row.status == "pending" and age is not None:
                oldest = max(oldest or 0.0, float(age))
        # Counted by the store in SQL: no rows fetched, no cap on the count.
        dead = await self.store.dead_letters_since(self.clock.now() - DEAD_LETTER_WINDOW)
        return QueueView(depth=depth, oldest_pending_age_seconds=oldest, dead_letters_last_hour=dead,
                         reclaims=self.queue.stats.get("reclaimed", 0))

    async def dead_letters(self, limit: int) -> Sequence[DeadLetterView]:
        items = await self.store.list(status="dead_letter", limit=limit)
        return [DeadLetterView(i.id, i.operation_type, i.correlation_id, i.attempt, i.last_error,
                               i.updated_at.astimezone(UTC).isoformat()) for i in items]

    def breaker_action(self, name: str, action: str) -> None:
        self.breakers.act(name, action)

    def room_action(self, room: str, action: str) -> None:
        """``daz rooms restart|stop NAME`` (admin API); an unknown room raises ``KeyError``."""
        if action == "stop":
            self.room_manager.stop(room, "admin API")
        else:
            self.room_manager.restart(room, "admin API")

    async def replay(self, item_id: int) -> bool:
        moved = await self.store.requeue(ids=[item_id])
        self.queue.wake()
        return moved > 0

    def cluster_status(self) -> dict[str, Any]:
        if self.cluster is None:
            return {"mode": self.cluster_mode}
        snap = self.cluster.snapshot
        return {"mode": "on", "instance_id": snap.instance_id, "instances": snap.instances,
                "leases": snap.leases, "held": sorted(self.cluster.held),
                "waiting": dict(sorted(self.cluster.waiting.items()))}

    def status_sources(self) -> StatusSources:
        return StatusSources(
            rooms=self.rooms, queue=self.queue_view, dead_letters=self.dead_letters,
            breakers=self.breakers.snapshot, breaker_action=self.breaker_action, replay=self.replay,
            room_action=self.room_action,
            spool=self.spool.count,
            instances=self.cluster.instance_rows if self.cluster is not None else None,
            channels=self.room_manager.channel_summary,
            extra={"plugins": self.plugins.status_list, "cluster": self.cluster_status},
        )
