"""``ChannelReplica``: one room's replica across connections, swapped in only when complete.

Fed synchronously by the session with every parsed frame, in arrival order, before the frame's
own ``cytube.*`` bus event is published (so a plugin reacting to ``cytube.queue`` already finds
the item in ``ctx.channel(room)``). A new connection starts a fresh build; the previous replica
stays what plugins see until the build is complete (``sync.complete``), then it is replaced in
one assignment and ``room.resynced`` reports the diff. While live, each frame's changes are
published as ``channel.*`` events. The event loop is single-threaded, so a reader never sees a
half-applied replica.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from daz.cytube.channel import sync
from daz.cytube.channel.reducer import apply
from daz.cytube.channel.state import ChannelState

log = structlog.get_logger("daz.cytube")

Publish = Callable[[str, dict[str, Any]], object]


class ChannelReplica:
    def __init__(self, room: str, publish: Publish) -> None:
        self.room = room
        self._publish = publish
        self._snapshot: ChannelState | None = None  # the last complete replica
        self._building: ChannelState | None = None
        self._progress = sync.JoinProgress()
        self._live = False
        self.resyncs = 0

    # reading ------------------------------------------------------------------------------------
    @property
    def snapshot(self) -> ChannelState | None:
        """The last complete replica (None before the first join completed). During a disconnect
        or a rejoin it is the replica as it was before the connection was lost."""
        return self._snapshot

    @property
    def live(self) -> bool:
        """The snapshot follows the server now (complete and connected)."""
        return self._live

    @property
    def playing(self) -> bool:
        """What the media watchdog trusts: is a non-live item playing on THIS connection?"""
        state = self._building if self._building is not None else (self._snapshot if self._live else None)
        return state is not None and state.playing

    # feeding ------------------------------------------------------------------------------------
    def connection_started(self) -> None:
        self._building = ChannelState()
        self._progress = sync.JoinProgress()
        self._live = False

    def connection_ended(self) -> None:
        self._building = None
        self._live = False

    def observe(self, event: object, at: float) -> None:
        try:
            self._observe(event, at)
        except Exception:
            # A reducer bug must not take the connection down with it (the session would
            # reconnect into the same bug); the replica keeps its last good state and says so.
            log.exception("channel.apply_failed", room=self.room, wire_event=type(event).__name__)

    def _observe(self, event: object, at: float) -> None:
        if self._building is not None:
            self._building = apply(self._building, event, at)
            self._progress = sync.step(self._progress, event)
            if sync.complete(self._progress, self._building):
                self._swap(self._building)
            return
        if not self._live or self._snapshot is None:
            return
        old = self._snapshot
        new = apply(old, event, at)
        if new is old:
            return
        self._snapshot = new
        for name, data in sync.live_events(old, new, event):
            self._publish(name, {"room": self.room, **data})

    def _swap(self, built: ChannelState) -> None:
        previous = self._snapshot
        self._snapshot, self._building, self._live = built, None, True
        if previous is None:
            log.info("channel.synced", room=self.room, users=len(built.users), items=len(built.items))
            self._publish("channel.synced", {"room": self.room, "state": built})
            return
        self.resyncs += 1
        change = sync.diff(previous, built)
        summary = change.as_dict()
        log.info("room.resynced", room=self.room, **_bounded(summary))
        self._publish("room.resynced",
                      {"room": self.room, "diff": change, "summary": summary, "state": built})


LOGGED_PER_LIST = 10


def _bounded(summary: dict[str, Any]) -> dict[str, Any]:
    """The resync summary for one log line: a list longer than LOGGED_PER_LIST shows its first
    entries and its count (a lost 4,000-item playlist must not become a 4,000-entry log line; the
    bus event carries the whole diff)."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if not value:
            continue
        if isinstance(value, list) and len(value) > LOGGED_PER_LIST:
            out[key] = value[:LOGGED_PER_LIST]
            out[f"{key}_count"] = len(value)
        else:
            out[key] = value
    return out
