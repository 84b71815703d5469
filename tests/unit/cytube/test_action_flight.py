"""Delivering an action: send, confirm, refuse, pace, silence, in doubt. A real ``Session`` over a
``FakeTransport`` scripted like the CyTube server, a replica built by the reducer, and a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.unit.cytube.test_action_rules import BOT, PLAYLIST, facts, user

from daz.config import CytubeConfig
from daz.cytube import channel_wire as cw
from daz.cytube.action_flight import NO_REPLY, ActionSender, ActionSettled, ActionTimings
from daz.cytube.actions import Action, DeleteMedia, Kick, NewPoll, QueueMedia, VoteSkip, to_record
from daz.cytube.channel import ChannelState, apply
from daz.cytube.outbox import InMemoryJournal, OutboundLine, Outbox
from daz.cytube.session import Credentials, Session
from daz.errors import ActionNotPermitted, ActionRefused, ActionUnanswered
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock
from daz.testing.fake_transport import FakeNetwork, FakeTransport

Script = Callable[[str, Any], None]


@dataclass
class Rig:
    clock: FakeClock
    transport: FakeTransport
    session: Session
    outbox: Outbox
    journal: InMemoryJournal
    sender: ActionSender
    state: list[ChannelState]
    settled: list[ActionSettled] = field(default_factory=list)
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    script: Script | None = None

    def emitted(self) -> list[tuple[str, Any]]:
        return [e for e in self.transport.emitted if e[0] not in ("joinChannel", "login")]

    def reply(self, name: str, data: Any = None) -> None:
        """The server sends ``name``; the replica sees it too, as the session's observer would."""
        self.transport.push(name, data)


def line(action: Action, key: str = "k1") -> OutboundLine:
    return OutboundLine(
        key=key, room="lobby", kind="action", text=action.describe(), action=to_record(action)
    )


@asynccontextmanager
async def rig(state: ChannelState, *, timeout: float = 5.0, retries: int = 1) -> AsyncIterator[Rig]:
    clock = FakeClock()
    network = FakeNetwork()
    transport = network.factory("lobby", clock)
    await transport.connect("fake://lobby", timeout=1)
    session = Session(
        room="lobby",
        channel="lobby",
        credentials=Credentials(BOT),
        transport=transport,
        clock=clock,
        config=CytubeConfig(),
        publish=lambda n, d: None,
        metrics=DazMetrics(),
    )
    journal = InMemoryJournal()
    outbox = Outbox("lobby", journal, 100)
    holder = [state]
    rig_ref: list[Rig] = []
    sender = ActionSender(
        "lobby",
        outbox,
        clock,
        ActionTimings(timeout, retries),
        replica=lambda: holder[0],
        publish=lambda n, d, c: rig_ref[0].published.append((n, d)),
        on_settled=lambda s: rig_ref[0].settled.append(s),  # noqa: PLW0108 - rig_ref is filled below
    )
    r = Rig(clock, transport, session, outbox, journal, sender, holder)
    rig_ref.append(r)
    original = transport._answer

    def answer(event: str, data: Any) -> None:
        if r.script is not None:
            r.script(event, data)
        else:
            original(event, data)

    transport._answer = answer  # type: ignore[method-assign]
    async with asyncio.TaskGroup() as tg:
        pump = tg.create_task(session.pump())
        try:
            yield r
        finally:
            pump.cancel()


async def deliver(
    r: Rig, action: Action, *, key: str = "k1", advance: float = 0.0, steps: int = 50
) -> ActionSettled:
    await r.outbox.put(line(action, key))
    head = r.outbox.head()
    assert head is not None
    task = asyncio.create_task(r.sender.deliver(r.session, head))
    for _ in range(steps):
        await r.clock.advance(advance)
        if task.done():
            break
    await asyncio.wait_for(task, 1)
    return r.settled[-1]


def queued(action: QueueMedia, uid: int) -> dict[str, Any]:
    return {
        "item": {
            "media": {"id": action.playlist_id, "type": action.media_type, "title": "x", "seconds": 0},
            "uid": uid,
            "temp": True,
            "queueby": BOT,
        },
        "after": "prepend",
    }


async def test_a_queue_is_confirmed_by_the_servers_queue_event() -> None:
    action = QueueMedia("rt", "rtmp://x/new", duration=30)
    async with rig(facts(2)) as r:
        r.script = lambda e, d: r.reply("queue", queued(action, 7)) if e == "queue" else None
        done = await deliver(r, action)
    assert (done.error, done.uid, done.detail) == (None, 7, "queued")
    assert r.emitted() == [action.wire()]
    assert r.outbox.depth == 0
    assert await r.journal.load("lobby") == []  # acknowledged: the queue will not retry it
    assert r.published[-1][0] == "room.action.confirmed"


async def test_no_permission_fails_at_once_and_sends_nothing() -> None:
    async with rig(facts(1, playlist=PLAYLIST)) as r:
        deleted = await deliver(r, DeleteMedia(1))
        kicked = await deliver(r, Kick("alice"), key="k2")
    assert r.emitted() == []
    for done, key, needed in ((deleted, "playlistdelete", 2), (kicked, "kick", 1.5)):
        assert isinstance(done.error, ActionNotPermitted)
        assert (done.error.key, done.error.needed) == (key, needed)
    name, data = r.published[-1]
    assert (name, data["permission"], data["needed"]) == ("room.action.failed", "kick", 1.5)


async def test_too_quickly_is_retried_at_the_servers_pace() -> None:
    action = QueueMedia("rt", "rtmp://x/new")
    answers = ["You are adding videos too quickly"] * 2

    async with rig(facts(1.5)) as r:

        def script(event: str, data: Any) -> None:
            if event != "queue":
                return
            if answers:
                r.reply("queueFail", {"msg": answers.pop(), "link": "", "id": action.media_id})
            else:
                r.reply("queue", queued(action, 3))

        r.script = script
        done = await deliver(r, action, advance=0.5)
    assert done.error is None
    assert len(r.emitted()) == 3
    assert r.clock.monotonic() >= 2.0  # two refusals, each waited out (1 s at rank < 2)


async def test_a_permanent_refusal_fails_with_the_servers_message() -> None:
    action = QueueMedia("yt", "dQw4w9WgXcQ")
    msg = "The YouTube API now requires an API key.  Please see the documentation"
    async with rig(facts(2)) as r:
        r.script = lambda e, d: (
            r.reply("queueFail", {"msg": msg, "id": action.media_id}) if e == "queue" else None
        )
        done = await deliver(r, action)
    assert isinstance(done.error, ActionRefused)
    assert done.error.server_message == msg
    assert done.error.category == "unavailable"
    assert len(r.emitted()) == 1


async def test_silence_checks_the_replica_then_fails_after_bounded_resends() -> None:
    async with rig(facts(2, playlist=PLAYLIST), timeout=5, retries=1) as r:
        r.script = lambda e, d: None  # the server drops it without a word
        done = await deliver(r, DeleteMedia(1), advance=1.0)
    assert isinstance(done.error, ActionUnanswered)
    assert NO_REPLY in str(done.error)
    assert len(r.emitted()) == 2  # sent, then once more, then given up
    assert 10 <= r.clock.monotonic() <= 12


async def test_silence_but_the_replica_shows_it_done_is_confirmed() -> None:
    async with rig(facts(2, playlist=PLAYLIST)) as r:

        def script(event: str, data: Any) -> None:
            # The delete happened, but its `delete` frame never reached us (we learnt it otherwise).
            r.state[0] = apply(r.state[0], cw.ItemDeleted(1))

        r.script = script
        done = await deliver(r, DeleteMedia(1), advance=1.0)
    assert done.error is None
    assert "replica shows it done" in done.detail
    assert len(r.emitted()) == 1


async def test_an_action_in_doubt_already_on_the_playlist_is_not_sent_again() -> None:
    action = QueueMedia("rt", "rtmp://x/b")  # PLAYLIST holds it (uid 2)
    async with rig(facts(2, playlist=PLAYLIST)) as r:
        r.outbox.mark_sent(1)  # sent before the connection dropped, never confirmed
        await r.outbox.put(line(action))
        r.outbox.mark_sent(1)
        head = r.outbox.head()
        assert head is not None
        await r.sender.deliver(r.session, head)
    assert r.emitted() == []
    assert r.settled[-1].error is None
    assert "in doubt" in r.settled[-1].detail


async def test_an_action_in_doubt_not_on_the_replica_is_sent_and_a_duplicate_reply_confirms_it() -> None:
    action = QueueMedia("rt", "rtmp://x/late")
    async with rig(facts(2, playlist=PLAYLIST)) as r:
        await r.outbox.put(line(action))
        r.outbox.mark_sent(1)
        r.script = lambda e, d: r.reply(
            "queueFail", {"msg": "This item is already on the playlist", "id": action.media_id}
        )
        head = r.outbox.head()
        assert head is not None
        await r.sender.deliver(r.session, head)
    assert len(r.emitted()) == 1
    assert r.settled[-1].error is None


async def test_a_poll_and_a_kick_and_a_voteskip() -> None:
    async with rig(facts(2, users=(user(BOT, 2), user("alice", 1)))) as r:

        def script(event: str, data: Any) -> None:
            if event == "newPoll":
                r.reply(
                    "newPoll",
                    {
                        "title": data["title"],
                        "options": data["opts"],
                        "counts": [0, 0],
                        "initiator": BOT,
                        "timestamp": 1,
                    },
                )
            elif event == "chatMsg" and data["msg"].startswith("/kick alice"):
                r.reply("userLeave", {"name": "alice"})

        r.script = script
        poll = await deliver(r, NewPoll("Lunch?", ("pizza", "soup")))
        kick = await deliver(r, Kick("alice", "bye"), key="k2")
        skip = await deliver(r, VoteSkip(), key="k3", advance=1.0)  # rank 2 < viewvoteskip? no reply here
    assert (poll.error, poll.detail) == (None, "poll opened")
    assert (kick.error, kick.detail) == (None, "left")
    assert skip.error is None
    assert [e for e, _ in r.emitted()] == ["newPoll", "chatMsg", "voteskip"]


@pytest.mark.parametrize("ms", [500])
async def test_a_chat_command_cooled_down_is_sent_again_after_the_cooldown(ms: int) -> None:
    async with rig(facts(2)) as r:
        calls: list[str] = []

        def script(event: str, data: Any) -> None:
            calls.append(event)
            if len(calls) == 1:
                r.reply("cooldown", ms)
            else:
                r.reply("userLeave", {"name": "alice"})

        r.script = script
        done = await deliver(r, Kick("alice"), advance=0.1)
    assert done.error is None
    assert len(r.emitted()) == 2


async def test_a_replica_that_never_completes_recycles_the_connection_instead_of_blocking() -> None:
    async with rig(facts(2), timeout=2) as r:
        r.sender.replica = lambda: None
        await r.outbox.put(line(DeleteMedia(1)))
        head = r.outbox.head()
        assert head is not None
        task = asyncio.create_task(r.sender.deliver(r.session, head))
        for _ in range(60):
            await r.clock.advance(0.1)
            if task.done():
                break
        assert await task == "replica_incomplete"
    assert r.emitted() == []
    assert r.outbox.depth == 1  # still queued, for the next connection
    assert r.settled == []
