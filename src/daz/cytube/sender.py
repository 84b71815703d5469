"""``LineSender``: delivers a room's outbox over one READY session, one line at a time, in order.

A line counts as delivered only when its echo is seen. A line emitted whose echo never came is *in
doubt*; after the next join the backlog replay decides (found: acknowledged as ``deduplicated``,
absent: resent). The name the line was sent under is remembered, because a guest that recovered
from a dead connection under a fresh name must still recognise its old name in the replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from daz.aio import wait_for
from daz.clock import Clock
from daz.config import CytubeConfig
from daz.cytube.action_flight import ActionSender
from daz.cytube.outbox import OutboundLine, Outbox
from daz.cytube.session import CooledDown, Echo, Session
from daz.events.bus import EventBus
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.cytube")

MAX_ECHO_TIMEOUTS = 3
# Without a confirmed echo to compare server times with, an in-doubt line is matched against
# replayed lines up to this long before our send (server and bot clocks may disagree a little).
CLOCK_SKEW_ALLOWANCE_MS = 5_000


class LineSender:
    def __init__(
        self, *, room: str, outbox: Outbox, config: CytubeConfig, bus: EventBus, metrics: DazMetrics,
        clock: Clock, now_ms: Callable[[], int], actions: ActionSender,
    ) -> None:
        self.room = room
        self.outbox = outbox
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self._now_ms = now_ms
        self.actions = actions
        self.sent_as: str | None = None  # the session name an in-doubt line was emitted under

    async def run(self, session: Session) -> str:
        """Send until the connection must be recycled; returns why (``echo_timeout``)."""
        outbox = self.outbox
        while True:
            await outbox.wait_nonempty()
            line = outbox.head()
            if line is None:
                continue
            if line.kind == "action":
                # A channel action, in order with the lines around it: settled (confirmed, refused
                # or failed) before the next item goes out. A lost connection cancels this mid-flight
                # and leaves it at the head, in doubt, for the next connection to reconcile.
                teardown = await self.actions.deliver(session, line)
                if teardown is not None:
                    return teardown
                continue
            if outbox.in_doubt_since_ms is not None and await self._settled_by_backlog(session, line):
                continue
            fut = session.expect(line)
            outbox.mark_sent(self._now_ms())
            self.sent_as = session.name
            try:
                await session.emit_line(line)
                outcome = await wait_for(
                    self.clock,
                    self.config.delivery_timeout_seconds,
                    _shielded(fut),
                    label=f"room.{self.room}.echo",
                )
            except TimeoutError:
                self.metrics.messages_sent.labels(room=self.room, outcome="timeout").inc()
                if outbox.note_echo_timeout() >= MAX_ECHO_TIMEOUTS:
                    outbox.drop_head()  # not acked: the journal's copy stays for the retry queue
                    self.bus.publish(
                        "room.line.failed",
                        {"room": self.room, "key": line.key, "reason": "no echo"},
                        correlation_id=line.correlation_id,
                        source="cytube",
                    )
                    continue
                return "echo_timeout"  # in doubt: the re-join's backlog replay decides
            finally:
                session.disarm()
            if isinstance(outcome, CooledDown):
                outbox.mark_not_sent()
                self.metrics.messages_sent.labels(room=self.room, outcome="cooldown").inc()
                await self.clock.sleep(max(outcome.milliseconds, 1) / 1000)
                continue
            assert isinstance(outcome, Echo)  # noqa: S101 - the two outcomes are exhaustive
            await self._delivered(line, outcome.time_ms, "delivered")

    async def _settled_by_backlog(self, session: Session, line: OutboundLine) -> bool:
        sent_ms = self.outbox.in_doubt_since_ms or 0
        # Our own in-doubt line went out after our last confirmed echo, so the search starts there.
        # An inherited line is not ordered against our echoes: the old holder sent lines in the
        # order it pulled them, we restore them in store (id) order, and lines of two senders can
        # differ in the two orders; besides, its copy can only be in the join backlog, older than
        # anything echoed in this session. So it is bounded by its creation time only.
        after = (
            self.outbox.last_echo_ms
            if self.outbox.last_echo_ms is not None and not self.outbox.head_inherited
            else sent_ms - CLOCK_SKEW_ALLOWANCE_MS
        )
        found = session.backlog_confirms(line, after_ms=after, name=self.sent_as)
        if found is None:
            log.info("room.line_resent", room=self.room, key=line.key)
            return False
        await self._delivered(line, found.time_ms, "deduplicated")
        return True

    async def _delivered(self, line: OutboundLine, echo_ms: int, outcome: str) -> None:
        await self.outbox.ack_head(echo_ms)
        self.metrics.messages_sent.labels(room=self.room, outcome=outcome).inc()
        self.bus.publish(
            "room.line.delivered",
            {"room": self.room, "key": line.key},
            correlation_id=line.correlation_id,
            source="cytube",
        )


def _shielded(fut: asyncio.Future[Any]) -> Any:
    return lambda: asyncio.shield(fut)
