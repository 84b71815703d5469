"""``RoomManager``: every configured room, each under its own supervisor, and the send API.

Rooms are independent: each supervisor runs in its own task and a crash in one is logged and
restarted without touching the others. ``send_chat``/``send_pm`` work in every state: lines go to
the room's ordered outbox (journalled through ``OutboundJournal``) and are delivered in order once
the room is READY; a line counts as delivered only when its echo is seen (``room.line.delivered``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from daz.aio import sleep_or_stop, wait_any
from daz.clock import Clock
from daz.config import DazConfig, RoomConfig
from daz.cytube.action_flight import ActionSettled
from daz.cytube.action_rules import bind_items, check_permission
from daz.cytube.actions import Action, to_record
from daz.cytube.admission import Admission
from daz.cytube.ban_wire import Banlist
from daz.cytube.channel import ChannelState
from daz.cytube.channel.summary import summarize
from daz.cytube.discovery import Endpoint, HttpEndpoint
from daz.cytube.outbox import InMemoryJournal, OutboundJournal, OutboundLine, Outbox
from daz.cytube.protocol import chat_lines, split_line
from daz.cytube.room_actions import ActionTicket
from daz.cytube.scheduler import ServerCapacity
from daz.cytube.states import RoomState
from daz.cytube.supervisor import RoomStatus, RoomSupervisor
from daz.errors import ActionNotPermitted, DazError, SendInvalid
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.transport.base import TransportFactory

log = structlog.get_logger("daz.cytube")

EndpointFactory = Callable[[RoomConfig], Endpoint]
CRASH_RESTART_SECONDS = 5.0


class UnknownRoom(DazError, KeyError):
    """No room of that name is configured. A ``DazError`` (a plugin's typo in a room name is
    answered, not a plugin crash) and a ``KeyError`` (for callers that look rooms up by key)."""


class RoomLeases(Protocol):
    """Scale-out: a room may be joined only while this instance holds its lease
    (implemented by ``daz.cluster.gate.LeaseGate``)."""

    def holds(self, room: str) -> bool: ...
    async def wait_acquired(self, room: str, stopping: asyncio.Event) -> bool: ...
    def lost_signal(self, room: str) -> asyncio.Event: ...
    def joined(self, room: str) -> None: ...
    def left(self, room: str) -> None: ...


class RoomManager:
    name = "rooms"

    def __init__(  # noqa: PLR0917 - the positional order is the documented contract
        self,
        config: DazConfig,
        bus: EventBus,
        metrics: DazMetrics,
        clock: Clock,
        rng: random.Random,
        transport_factory: TransportFactory,
        journal: OutboundJournal | None = None,
        *,
        endpoint_factory: EndpointFactory | None = None,
        leases: RoomLeases | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.journal: OutboundJournal = journal if journal is not None else InMemoryJournal()
        self.leases = leases
        self._seq = itertools.count(1)
        # Keys are idempotency keys in the shared store: two processes (a restart, or other cluster
        # instances) counting from 1 in the same second must not collide, or one line is lost.
        self._origin = secrets.token_hex(4)
        self._tickets: dict[str, ActionTicket] = {}
        make_endpoint = endpoint_factory or self._http_endpoint
        # One admission ledger per CyTube server, shared by every room on it (docs/rooms.md).
        self.admission = Admission(config.cytube, clock, metrics)
        self._supervisors: dict[str, RoomSupervisor] = {}
        for index, room in enumerate(config.rooms):
            if not room.enabled:
                continue
            room_rng = random.Random(rng.getrandbits(64))
            self._supervisors[room.channel] = RoomSupervisor(
                room=room, config=config.cytube, bus=bus, metrics=metrics, clock=clock, rng=room_rng,
                transport_factory=transport_factory, endpoint=make_endpoint(room),
                outbox=Outbox(room.channel, self.journal, config.cytube.outbound_buffer_size),
                probe_rng=random.Random(rng.getrandbits(64)), on_action_settled=self._action_settled,
                admission=self.admission, index=index,
            )

    def _http_endpoint(self, room: RoomConfig) -> Endpoint:
        cfg = self.config.cytube
        return HttpEndpoint(
            channel=room.channel, base_url=cfg.base_url, server_url=room.server_url,
            timeout=cfg.probe.timeout_seconds,
        )

    # queries ---------------------------------------------------------------------------------
    def rooms(self) -> list[str]:
        return list(self._supervisors)

    def room(self, name: str) -> RoomStatus:
        return self._get(name).status()

    def room_state(self, name: str) -> RoomState:
        return self._get(name).state

    def holds(self, name: str) -> bool:
        """Whether this instance may be in ``name`` (always, unless rooms are leased)."""
        return self.leases is None or self.leases.holds(name)

    def has_line(self, room: str, key: str) -> bool:
        return self._get(room).outbox.contains(key)

    def delivered(self, room: str, key: str) -> bool:
        return self._get(room).outbox.delivered(key)

    async def resend(self, line: OutboundLine) -> None:
        """Put a journalled line back into its room's outbox (replay, or a previous process)."""
        await self._get(line.room).outbox.readmit(line)

    def held_rooms(self) -> list[str]:
        """Rooms whose lines this instance sends (every room, unless rooms are leased)."""
        return [name for name in self._supervisors if self.holds(name)]

    async def take_handoff(self, line: OutboundLine) -> bool:
        """A line another instance stored for a room held here: into the outbox, behind what is there."""
        supervisor = self._supervisors.get(line.room)
        if supervisor is None or not self.holds(line.room):
            return False
        return await supervisor.outbox.readmit(line, handoff=True)

    def channel(self, room: str) -> ChannelState | None:
        """The room's channel replica (an immutable snapshot; None until the first join completed).
        While the room is not READY it is the replica as it was when the connection was lost."""
        return self._get(room).channel.snapshot

    def channel_summary(self, room: str) -> dict[str, Any] | None:
        """The room's channel as plain data for the status page (``channel.summary``)."""
        replica = self._get(room).channel
        return summarize(replica.snapshot, self.clock.monotonic(), live=replica.live)

    def supervisor(self, name: str) -> RoomSupervisor:
        return self._get(name)

    def _get(self, name: str) -> RoomSupervisor:
        try:
            return self._supervisors[name]
        except KeyError:
            raise UnknownRoom(f"no room named {name!r} is configured") from None

    def capacities(self) -> list[ServerCapacity]:
        """Per CyTube server: socket cap, sockets in use, parked rooms (for status and placement)."""
        return self.admission.capacities()

    # actions ---------------------------------------------------------------------------------
    def reconnect(self, room: str, reason: str) -> None:
        """Tear down and reconnect ``room`` now (health recovery); also restarts a kicked room."""
        log.info("room.reconnect_requested", room=room, reason=reason)
        self._get(room).request_reconnect(reason)

    def restart(self, room: str, reason: str = "operator") -> None:
        """An operator's restart: a STOPPED, KICKED or PARKED room tries again now."""
        log.warning("room.restart_requested", room=room, reason=reason)
        self._get(room).request_reconnect(f"restart: {reason}")

    def stop(self, room: str, reason: str = "operator") -> None:
        """An operator's stop: leave the room, give its socket slot to a parked room, stay STOPPED."""
        log.warning("room.stop_requested", room=room, reason=reason)
        self._get(room).request_stop(reason)

    async def send_chat(self, room: str, text: str, *, action: bool = False,
                        correlation_id: str | None = None) -> list[str]:
        """Queue ``text`` (split at the chat limit) for ``room``; returns one key per line.

        Always text: a line CyTube would run as a chat command (``/kick``...) is guarded
        (``protocol.chat_lines``). ``action=True`` sends each line as a ``/me`` emote."""
        if not isinstance(action, bool):
            raise SendInvalid(f"send_chat: action must be True or False, not {action!r}")
        return await self._enqueue(room, "chat", text, None, correlation_id, action=action)

    async def send_pm(
        self, room: str, user: str, text: str, *, correlation_id: str | None = None
    ) -> list[str]:
        return await self._enqueue(room, "pm", text, user, correlation_id)

    async def _enqueue(
        self, room: str, kind: str, text: str, to: str | None, correlation_id: str | None,
        *, action: bool = False,
    ) -> list[str]:
        supervisor = self._get(room)
        keys: list[str] = []
        created = self.clock.now().timestamp()
        limit = self.config.cytube.message_max_chars
        # A PM is never run as a command by CyTube; a chat line may be, hence chat_lines' guard.
        parts = split_line(text, limit) if kind == "pm" else chat_lines(text, limit, action=action)
        for part in parts:
            key = f"{room}:{created:.0f}:{self._origin}:{next(self._seq)}"
            line = OutboundLine(
                key=key, room=room, kind="pm" if kind == "pm" else "chat", text=part, to=to,
                correlation_id=correlation_id, created_at=created,
            )
            if self.holds(room):
                await supervisor.outbox.put(line)
            else:
                # Another instance holds the room: the journal is the way to it (its HandoffPuller
                # pulls the line at once). A local outbox here would never send it.
                await supervisor.outbox.hand_off(line)
            self.metrics.messages_sent.labels(room=room, outcome="queued").inc()
            keys.append(key)
        return keys

    async def submit_action(self, room: str, action: Action, *,
                            correlation_id: str | None = None) -> ActionTicket:
        """Validate ``action``, check it against the live replica's permissions, and queue it
        durably in ``room``'s outbox (in order with its lines). See ``daz.cytube.room_actions``."""
        supervisor = self._get(room)
        action.validate()  # ActionInvalid: nothing is queued
        state = supervisor.live_channel()
        if state is not None:
            action = bind_items(action, state)  # which media its uids mean (uids change on a reload)
            denied = check_permission(action, state)
            if denied is not None:
                # Fail fast: the same check runs again before sending (the rank may change meanwhile).
                self.metrics.actions.labels(room=room, kind=action.kind, outcome="not_permitted").inc()
                raise denied
        created = self.clock.now().timestamp()
        key = f"{room}:{created:.0f}:{self._origin}:{next(self._seq)}"
        line = OutboundLine(key=key, room=room, kind="action", text=action.describe(),
                            correlation_id=correlation_id, created_at=created, action=to_record(action))
        ticket = ActionTicket(key, room, action.kind)
        if self.holds(room):
            self._tickets[key] = ticket
            try:
                await supervisor.outbox.put(line)
            except BaseException:
                self._tickets.pop(key, None)
                raise
        else:
            # The holding instance sends and settles it (its room.action.* event says how); this
            # ticket is not kept here, so it never settles: nothing would ever settle it here.
            await supervisor.outbox.hand_off(line)
        self.metrics.actions.labels(room=room, kind=action.kind, outcome="queued").inc()
        return ticket

    async def banlist(self, room: str, *, timeout: float | None = None) -> Banlist:
        """``room``'s ban list, asked for now (see ``RoomSupervisor.banlist``)."""
        supervisor = self._get(room)
        try:
            return await supervisor.banlist(timeout)
        except ActionNotPermitted:
            self.metrics.actions.labels(room=room, kind="banlist", outcome="not_permitted").inc()
            raise

    def _action_settled(self, outcome: ActionSettled) -> None:
        ticket = self._tickets.pop(outcome.key, None)
        if ticket is not None:
            ticket.settle(outcome)

    # service ---------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for name, supervisor in self._supervisors.items():
                group.create_task(self._guarded(supervisor, stopping), name=f"room.{name}")

    async def _guarded(self, supervisor: RoomSupervisor, stopping: asyncio.Event) -> None:
        if self.leases is None:
            await self._supervised(supervisor, stopping)
            return
        leases = self.leases
        while not stopping.is_set():
            if not await leases.wait_acquired(supervisor.name, stopping):
                return
            room_stopping = asyncio.Event()
            supervisor.outbox.open()
            leases.joined(supervisor.name)
            try:
                async with asyncio.TaskGroup() as group:
                    relay = group.create_task(
                        _relay(room_stopping, stopping, leases.lost_signal(supervisor.name)),
                        name=f"room.{supervisor.name}.lease_watch",
                    )
                    await self._supervised(supervisor, room_stopping)
                    relay.cancel()
            finally:
                supervisor.outbox.release()  # its lines stay in the journal for the next holder
                leases.left(supervisor.name)
            log.info("room.left_on_lease_loss", room=supervisor.name)
            supervisor.reset_after_crash()  # CLOSED -> DISCONNECTED: ready for the next lease

    async def _supervised(self, supervisor: RoomSupervisor, stopping: asyncio.Event) -> None:
        """Run one supervisor; a bug in it restarts that room only, never its neighbours."""
        while not stopping.is_set():
            try:
                await supervisor.run(stopping)
            except Exception:  # isolation between rooms is the point
                log.exception("room.supervisor_crashed", room=supervisor.name)
                supervisor.reset_after_crash()
                await sleep_or_stop(self.clock, CRASH_RESTART_SECONDS, stopping,
                                    label=f"room.{supervisor.name}.crash_restart")
            else:
                return



async def _relay(target: asyncio.Event, *sources: asyncio.Event) -> None:
    await wait_any(*sources)
    target.set()
