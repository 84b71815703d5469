"""Delivering the channel action at the head of a room's outbox: decide, send, confirm, settle.

The room's sender hands an ``action`` line here (in order with the chat lines around it, one thing
in flight at a time). The steps, each a pure decision from ``action_rules``/``action_replies``
followed by its I/O:

1. wait until the channel replica is live (complete for this connection);
2. ``decide_send``: an action in doubt (sent before, or inherited from a previous process, with no
   confirmation) whose effect the resynced replica already shows is confirmed without sending; a
   missing permission or a failed precondition fails it at once (never sent, never retried);
3. send it and watch the inbound frames for its confirmation or refusal (``match_reply``);
4. a refusal the table calls retryable ("You are adding videos too quickly") is sent again at the
   server's pace, a chat-command action cooled down by the chat limiter after the cooldown; any
   other refusal fails it with the server's message;
5. silence (most refusals are silent): after ``action_timeout_seconds`` the replica is checked;
   if the effect is there it is confirmed, else it is sent again up to ``action_silent_retries``
   times, then failed with "no reply (dropped by the server)".

``unban_name`` is the one action of several frames: after step 2 the server's ``banlist`` is asked
for on this connection, the first ban on the name is lifted by id (``unban`` → ``banlistRemove``),
and the list is asked for again until no ban on the name is left (``daz.cytube.bans``). A banlist
that does not come counts as silence (step 5).

A settled action is acknowledged to the journal (it will not be retried by the queue), published
as ``room.action.confirmed`` or ``room.action.failed`` and handed to ``on_settled``. A connection
lost mid-flight leaves the action at the head, in doubt: step 2 reconciles it on the next
connection against the replica rebuilt from the server's join sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daz.aio import wait_for
from daz.clock import Clock
from daz.cytube.action_replies import Confirmed, Refused, match_reply
from daz.cytube.action_rules import Plan, SendDecision, decide_send, effect_holds
from daz.cytube.actions import Action, Unban, UnbanName, Vote, VoteSkip, action_from_record
from daz.cytube.bans import fetch_banlist, resolve_unban
from daz.cytube.channel import ChannelState
from daz.cytube.outbox import OutboundLine, Outbox
from daz.cytube.session import Session
from daz.errors import (
    ActionError,
    ActionInvalid,
    ActionNotPermitted,
    ActionRefused,
    ActionUnanswered,
    BanlistUnanswered,
)
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.cytube")

REPLICA_POLL_SECONDS = 0.05
MAX_REFUSAL_RETRIES = 50  # paced retries of a retryable refusal before the action fails
NO_REPLY = "no reply (dropped by the server)"
REPLICA_INCOMPLETE = "replica_incomplete"
# Replies the server does not send to everyone: voteskip counts go to rank >= viewvoteskip only, a
# repeated vote or voteskip is silent, and /afk toggles are confirmed by the replica. For these,
# silence after a permitted send means "done", not "dropped".
_SILENCE_IS_DONE = (VoteSkip, Vote)

_OUTCOMES: dict[type[ActionError], str] = {
    ActionNotPermitted: "not_permitted", ActionInvalid: "invalid", ActionRefused: "refused",
    ActionUnanswered: "no_reply",
}

Publish = Callable[[str, dict[str, Any], str | None], object]


@dataclass(frozen=True, slots=True)
class ActionSettled:
    """The outcome of one action: ``error`` is None when it was confirmed."""

    key: str
    room: str
    kind: str
    detail: str
    uid: int | None = None
    error: ActionError | None = None


Settled = Callable[[ActionSettled], None]


@dataclass(frozen=True, slots=True)
class ActionTimings:
    timeout_seconds: float
    silent_retries: int


class ActionSender:
    """One room's action delivery (owned by its ``RoomSupervisor``)."""

    def __init__(self, room: str, outbox: Outbox, clock: Clock, timings: ActionTimings, *,
                 replica: Callable[[], ChannelState | None], publish: Publish,
                 on_settled: Settled | None = None, metrics: DazMetrics | None = None) -> None:
        self.room = room
        self.outbox = outbox
        self.clock = clock
        self.timings = timings
        self.replica = replica
        self.publish = publish
        self.on_settled = on_settled
        self.metrics = metrics
        self.sent = 0

    async def deliver(self, session: Session, line: OutboundLine) -> str | None:
        """Settle the head ``line`` (an action): returns None once it is confirmed or failed, or a
        reason to recycle the connection (the replica never completed on this one)."""
        try:
            action = action_from_record(dict(line.action or {}))
        except ActionInvalid as exc:
            await self._settle(line, "invalid", error=exc)
            return None
        refusals = 0
        lifted: frozenset[int] = frozenset()  # unban_name: ban ids this delivery saw lifted
        while True:
            state = await self._live_replica()
            if state is None:
                log.warning("room.action.replica_incomplete", room=self.room, key=line.key, kind=action.kind)
                return REPLICA_INCOMPLETE
            in_doubt = self.outbox.in_doubt_since_ms is not None
            decision = decide_send(action, state, in_doubt=in_doubt)
            if decision.plan is Plan.DONE:
                log.info("room.action.reconciled", room=self.room, key=line.key, kind=action.kind,
                         reason=decision.reason)
                await self._settle(line, action.kind, detail=decision.reason, outcome="reconciled")
                return None
            if decision.plan is Plan.FAIL:
                await self._settle(line, action.kind, error=decision.error)
                return None
            action = decision.action or action  # its uids re-pointed if the server renumbered them
            wire_action: Action = action
            if isinstance(action, UnbanName):
                step = await self._unban_step(session, action, lifted=lifted, in_doubt=in_doubt)
                if not isinstance(step, Unban):
                    if await self._unban_settled(line, action, step, lifted=bool(lifted)):
                        return None
                    continue
                wire_action = step
            me, rank = state.self_name or "", state.self_rank
            reply = await self._send_and_wait(session, line, wire_action, me, rank)
            if isinstance(reply, Confirmed) and isinstance(wire_action, Unban) and wire_action is not action:
                lifted |= {wire_action.ban_id}  # unban_name: look again (an /ipban leaves more rows)
                continue
            if isinstance(reply, Confirmed):
                await self._settle(line, action.kind, detail=reply.detail, uid=reply.uid)
                return None
            if isinstance(reply, _Cooled):
                self.outbox.mark_not_sent()  # the chat limiter dropped it: certainly not delivered
                await self.clock.sleep(max(reply.milliseconds, 1) / 1000)
                continue
            if isinstance(reply, Refused):
                if reply.category == "duplicate" and in_doubt:
                    # Our earlier send landed before the connection dropped: that IS the effect.
                    await self._settle(line, action.kind, detail="already on the playlist (earlier send)")
                    return None
                refusals += 1
                if reply.retryable and refusals <= MAX_REFUSAL_RETRIES:
                    self.outbox.mark_not_sent()  # refused: it did not take effect
                    log.info("room.action.paced", room=self.room, key=line.key, kind=action.kind,
                             reason=reply.message, retry_in=reply.retry_after)
                    await self.clock.sleep(reply.retry_after)
                    continue
                error = ActionRefused(f"{action.describe()}: refused by the server: {reply.message}",
                                      server_message=reply.message, category=reply.category,
                                      retryable=False, kind=action.kind, operation_type="cytube_action")
                await self._settle(line, action.kind, error=error)
                return None
            if await self._after_silence(line, action):
                return None

    async def _unban_step(self, session: Session, action: UnbanName, *, lifted: frozenset[int],
                          in_doubt: bool) -> Unban | SendDecision | None:
        """The next ban id to lift for ``action``, from a banlist asked for on THIS connection (an id
        is never carried across a reconnect or restart: see ``UnbanName``); None when the server did
        not answer. A malformed answer fails the action."""
        try:
            banlist = await fetch_banlist(session, room=self.room, timeout=self.timings.timeout_seconds)
        except BanlistUnanswered:
            log.info("room.action.banlist_unanswered", room=self.room, kind=action.kind)
            return None
        except ActionError as exc:  # a malformed answer: asking again would read the same list
            return SendDecision(Plan.FAIL, str(exc), exc)
        return resolve_unban(action, banlist, lifted=lifted, in_doubt=in_doubt)

    async def _unban_settled(self, line: OutboundLine, action: UnbanName, step: SendDecision | None, *,
                             lifted: bool) -> bool:
        """Settle ``action`` on ``step`` (no ban on the name left, or a failure); None: the banlist
        did not come, which counts as silence. True when the action is settled."""
        if step is None:
            return await self._after_silence(line, action)
        await self._settle(line, action.kind, detail=step.reason, error=step.error,
                           outcome="confirmed" if lifted else "reconciled")
        return True

    async def _after_silence(self, line: OutboundLine, action: Action) -> bool:
        """No reply within the timeout: the replica decides; True when the action is settled."""
        state = self.replica()
        if state is not None and effect_holds(action, state):
            await self._settle(line, action.kind, detail="no reply, but the replica shows it done")
            return True
        if isinstance(action, _SILENCE_IS_DONE):
            await self._settle(line, action.kind, detail="sent (the server answers only some of these)")
            return True
        silences = self.outbox.note_echo_timeout()
        if silences > self.timings.silent_retries:
            error = ActionUnanswered(f"{action.describe()}: {NO_REPLY} after {silences} attempt(s) of "
                                     f"{self.timings.timeout_seconds:g}s; the replica shows no effect",
                                     retryable=False, kind=action.kind, operation_type="cytube_action")
            await self._settle(line, action.kind, error=error)
            return True
        log.info("room.action.resent_after_silence", room=self.room, key=line.key, kind=action.kind,
                 attempt=silences + 1)
        return False

    async def _live_replica(self) -> ChannelState | None:
        # The sender runs only while READY; the replica completes with the join sequence, so this
        # wait is short. Bounded: a replica that never completes must not hold the room's outbox
        # (and every chat line behind the action) forever.
        waited = 0.0
        while True:
            state = self.replica()
            if state is not None:
                return state
            if waited >= self.timings.timeout_seconds:
                return None
            await self.clock.sleep(REPLICA_POLL_SECONDS)
            waited += REPLICA_POLL_SECONDS

    async def _send_and_wait(self, session: Session, line: OutboundLine, action: Action, me: str,
                             rank: float) -> Confirmed | Refused | _Cooled | None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[Confirmed | Refused | _Cooled] = loop.create_future()
        event, payload = action.wire()
        chat_command = event == "chatMsg"

        def watch(name: str, data: Any) -> None:
            if got.done():
                return
            if chat_command and name == "cooldown" and isinstance(data, int | float):
                got.set_result(_Cooled(int(data)))
                return
            reply = match_reply(action, name, data, me, bot_rank=rank)
            if reply is not None:
                got.set_result(reply)

        session.watch_frames(watch)
        try:
            # Marked before the emit: if the process dies in between, the action is in doubt, never lost.
            self.outbox.mark_sent(int(self.clock.now().timestamp() * 1000))
            await session.emit_action(event, payload)
            self.sent += 1
            try:
                return await wait_for(self.clock, self.timings.timeout_seconds, lambda: asyncio.shield(got),
                                      label=f"room.{self.room}.action")
            except TimeoutError:
                return None
        finally:
            session.watch_frames(None)
            if not got.done():
                got.cancel()

    async def _settle(self, line: OutboundLine, kind: str, *, detail: str = "", uid: int | None = None,
                      error: ActionError | None = None, outcome: str = "confirmed") -> None:
        await self.outbox.ack_head(None)
        if self.metrics is not None:
            label = outcome if error is None else _OUTCOMES.get(type(error), "refused")
            self.metrics.actions.labels(room=self.room, kind=kind, outcome=label).inc()
        text = detail if error is None else str(error)
        settled = ActionSettled(line.key, self.room, kind, text, uid, error)
        if error is None:
            log.info("room.action.confirmed", room=self.room, key=line.key, kind=kind, detail=detail, uid=uid)
            self.publish("room.action.confirmed",
                         {"room": self.room, "key": line.key, "kind": kind, "detail": detail, "uid": uid},
                         line.correlation_id)
        else:
            log.warning("room.action.failed", room=self.room, key=line.key, kind=kind, error=str(error))
            data: dict[str, Any] = {"room": self.room, "key": line.key, "kind": kind, "reason": str(error),
                                    "error": type(error).__name__}
            for attr in ("key", "needed", "category", "server_message"):
                if hasattr(error, attr):
                    data["permission" if attr == "key" else attr] = getattr(error, attr)
            self.publish("room.action.failed", data, line.correlation_id)
        if self.on_settled is not None:
            self.on_settled(settled)


@dataclass(frozen=True, slots=True)
class _Cooled:
    milliseconds: int
