"""Channel actions against the fake CyTube server over real sockets, the whole bot (DazApp: outbox,
SQLite journal, retry queue), CyTube's limits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cytube.conftest import mirrored_limits

from daz.app import AppOptions, DazApp
from daz.config import validate_config
from daz.cytube.room_actions import ActionTicket, RoomActions
from daz.errors import ActionInvalid, ActionNotPermitted, ActionUnanswered
from daz.events.bus import Event
from daz.plugins.base import PluginContext
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

ROOM = "lobby"
# CyTube's limits with the reconnect-related ones shrunk (the bot reconnects at once after a kill).
FAST = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.3)
ITEMS = [f"rtmp://example.com/live/{n}" for n in "abcde"]


class Probe:
    """A plugin that only hands its context to the test, and keeps what it hears."""

    name = "probe"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Any = None) -> None:
        self.ctx: PluginContext | None = None
        self.events: list[Event] = []
        self.ready = asyncio.Event()

    async def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        for pattern in ("room.action.*", "room.resynced", "channel.synced"):
            ctx.subscribe(pattern, self.events.append)
        self.ready.set()

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    @property
    def actions(self) -> RoomActions:
        assert self.ctx is not None
        assert self.ctx.actions is not None
        return self.ctx.actions

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.name == name]


@dataclass
class Bot:
    app: DazApp
    probe: Probe
    server: FakeCytubeServer
    seen: list[str] = field(default_factory=list)

    async def until(self, cond: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    def live(self) -> bool:
        return self.app.rooms.supervisor(ROOM).live_channel() is not None

    async def dead_letters(self) -> int:
        return len(await self.app.store.list(status="dead_letter", limit=100))


@asynccontextmanager
async def bot(tmp_path: Path, server: FakeCytubeServer, *, account: tuple[str, str] | None = None,
              **cytube: Any) -> AsyncIterator[Bot]:
    room: dict[str, Any] = {"channel": ROOM, "username": account[0] if account else "dazbot"}
    if account is not None:
        room["password"] = account[1]
    config = validate_config({
        "rooms": [room],
        "cytube": {"base_url": server.url, "join_timeout_seconds": 3, "login_timeout_seconds": 3,
                   "connect_timeout_seconds": 3, "liveness_margin_seconds": 0.2,
                   "backoff": {"base_seconds": 0.2, "max_seconds": 1.0}, "probe": {"enabled": False},
                   "servers": {"default": mirrored_limits(server).model_dump()}, **cytube},
        "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
        "spool": {"path": str(tmp_path / "spool.sqlite")},
        "health": {"enabled": False},
        "plugins": {"probe": {}},
    })
    probe = Probe()
    async with DazApp(config, AppOptions(plugin_factories={"probe": lambda _: probe})) as app:
        stopping = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(app.run(stopping), name="test.app")
            try:
                handle = Bot(app, probe, server)
                await handle.until(handle.live)
                yield handle
            finally:
                stopping.set()


def on_playlist(server: FakeCytubeServer) -> list[str]:
    return [item.id for item in server.channel_state(ROOM).items]


@pytest.mark.parametrize("persistent", [True, False], ids=["playlist-persists", "playlist-forgotten"])
async def test_five_items_and_a_poll_land_exactly_once_across_a_server_kill(tmp_path: Path,
                                                                              persistent: bool) -> None:
    accounts = {"DazBot": "pw"} if persistent else {}
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts=accounts,
                              global_ranks={"DazBot": 2} if persistent else {},
                              registered_channels=[ROOM] if persistent else ())
    async with server, bot(tmp_path, server, account=("DazBot", "pw") if persistent else None) as b:
        actions = b.probe.actions
        tickets: dict[str, ActionTicket] = {}
        # The server holds each request 0.4 s before handling it, so the kill below lands while the
        # third item is in flight (sent, not answered), whatever the machine's speed.
        server.delay_replies(0.4)
        for media_id in ITEMS:
            tickets[media_id] = await actions.queue(ROOM, "rt", media_id, duration=60)
        poll = await actions.new_poll(ROOM, "Which next?", ["a", "b"])
        # Kill the server right after it received the third item, before the bot saw a reply.
        await b.until(lambda: len(server.actions(ROOM, "queue")) >= 3, timeout=10)
        if persistent:
            # ...and let this one be APPLIED first, with its confirmation lost on the way: the bot
            # must find it on the resynced playlist instead of queueing it twice.
            server.go_silent()
            in_flight = server.actions(ROOM, "queue")[-1].data["id"]  # nothing new gets through now
            await b.until(lambda: in_flight in on_playlist(server), timeout=10)
        resyncs = len(b.probe.named("room.resynced"))
        await server.stop()
        server.go_silent(False)
        server.delay_replies(0)
        await server.start()
        await b.until(lambda: len(b.probe.named("room.resynced")) > resyncs)
        # A plugin that wants its items on the playlist queues again what the server forgot
        # (only an unregistered channel forgets): the ones confirmed before the kill and missing now.
        for media_id, ticket in list(tickets.items()):
            if not ticket.done:
                continue
            # The replica read AFTER seeing the ticket settled: the confirming frame is applied to the
            # replica before the ticket settles, so an item confirmed after a snapshot taken earlier
            # is not mistaken for a forgotten one (and queued twice: "already on the playlist").
            state = b.probe.ctx.channel(ROOM) if b.probe.ctx else None
            assert state is not None
            if state.find_media("rt", media_id) is None:
                tickets[media_id] = await actions.queue(ROOM, "rt", media_id, duration=60)
        for ticket in (*tickets.values(), poll):
            await ticket.result(timeout=30)
        await b.until(lambda: sorted(on_playlist(server)) == ITEMS)
        assert await b.dead_letters() == 0
        ids = on_playlist(server)
        snapshot = server.channel_state(ROOM)
        queue_sends = len([a for a in server.actions(ROOM, "queue") if a.name == "DazBot"])
        confirmed = b.probe.named("room.action.confirmed")
        in_doubt = [e for e in confirmed if "in doubt" in e["detail"] or "earlier send" in e["detail"]]
    assert sorted(ids) == ITEMS, ids  # each exactly once
    if persistent:
        # The item applied while its confirmation was lost was settled as in doubt: found on the
        # resynced playlist (or, if the bot raced the replica, by the server's "already on the playlist").
        assert len(in_doubt) == 1, confirmed
    assert snapshot.poll is not None
    assert snapshot.poll.title == "Which next?"
    assert len(server.actions(ROOM, "newPoll")) == 1  # opened once
    if persistent:
        # Nothing was forgotten: at most the in-doubt item went out a second time, and it was not added.
        assert queue_sends <= len(ITEMS) + (1 if "earlier send" in in_doubt[0]["detail"] else 0), confirmed


async def test_a_rank_1_bot_fails_at_once_and_sends_nothing(tmp_path: Path) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                              registered_channels=[ROOM])
    async with server:
        await server.add_user(ROOM, "owner", rank=3)
        await server.user_act(ROOM, "owner", "queue", {"id": "rtmp://x/owner", "type": "rt", "pos": "end",
                                                        "duration": 60})
        await server.add_user(ROOM, "alice", rank=0)
        async with bot(tmp_path, server, account=("DazBot", "pw")) as b:
            state = b.probe.ctx.channel(ROOM) if b.probe.ctx else None
            assert state is not None
            assert state.self_rank == 1
            uid = state.items[0].uid
            before = len(server.actions(ROOM))
            started = time.monotonic()
            with pytest.raises(ActionNotPermitted) as deleted:
                await b.probe.actions.delete(ROOM, uid)
            with pytest.raises(ActionNotPermitted) as kicked:
                await b.probe.actions.kick(ROOM, "alice")
            took = time.monotonic() - started
            await asyncio.sleep(0.3)
            after = server.actions(ROOM)[before:]
    assert (deleted.value.key, deleted.value.needed) == ("playlistdelete", 2)
    assert (kicked.value.key, kicked.value.needed) == ("kick", 1.5)
    assert "'playlistdelete' needs rank 2" in str(deleted.value)
    assert "'kick' needs rank 1.5" in str(kicked.value)
    assert took < 1.0  # at once: no round trip, no timeout
    assert [a for a in after if a.name == "DazBot"] == []  # the server received nothing


async def test_an_action_the_server_drops_fails_after_its_timeout_and_is_not_retried_forever(
    tmp_path: Path,
) -> None:
    server = FakeCytubeServer(ping_interval=25, ping_timeout=120, limits=FAST)
    async with server, bot(tmp_path, server, action_timeout_seconds=1.0, action_silent_retries=1) as b:
        server.go_silent()  # every frame black-holed; the connection stays up
        started = time.monotonic()
        ticket = await b.probe.actions.queue(ROOM, "rt", "rtmp://x/dropped", duration=60)
        with pytest.raises(ActionUnanswered) as info:
            await ticket.result(timeout=10)
        took = time.monotonic() - started
        server.go_silent(False)
        failed = b.probe.named("room.action.failed")
        playlist = on_playlist(server)
    assert "no reply (dropped by the server)" in str(info.value)
    assert "the replica shows no effect" in str(info.value)
    assert 2.0 <= took < 5.0  # two attempts of 1 s each, then given up
    assert len(failed) == 1
    assert "rtmp://x/dropped" not in playlist


async def test_adding_videos_too_quickly_is_paced_and_every_item_lands(tmp_path: Path) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST)  # a guest: burst 3, then 1/s
    ten = [f"rtmp://example.com/live/q{n}" for n in range(10)]
    async with server, bot(tmp_path, server) as b:
        tickets = [await b.probe.actions.queue(ROOM, "rt", media_id, duration=60) for media_id in ten]
        started = time.monotonic()
        for ticket in tickets:
            await ticket.result(timeout=40)
        took = time.monotonic() - started
        assert await b.dead_letters() == 0
        refusals = [a for a in server.actions(ROOM, "queue") if a.name and a.name.startswith("dazbot")]
        playlist = on_playlist(server)
    assert playlist == ten  # all, in order, once
    assert took >= 5.0  # paced at the server's 1 per second after the burst of 3
    assert len(refusals) > 10  # some were refused "too quickly" and sent again later


async def test_an_action_queued_while_offline_survives_a_bot_restart_and_lands_once(tmp_path: Path) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST)
    async with server:
        async with bot(tmp_path, server) as first:
            server.refuse_connections()
            server.kill_connections()
            await first.until(lambda: not first.live())
            ticket = await first.probe.actions.queue(ROOM, "rt", "rtmp://x/kept", duration=60)
            await asyncio.sleep(0.3)
            assert not ticket.done
        # The bot process is gone; the action is only in its SQLite journal now.
        server.refuse_connections(False)
        async with bot(tmp_path, server) as second:
            await second.until(lambda: bool(second.probe.named("room.action.confirmed")))
            confirmed = second.probe.named("room.action.confirmed")
            assert await second.dead_letters() == 0
            playlist = on_playlist(server)
    assert playlist == ["rtmp://x/kept"]
    assert confirmed[0]["key"] == ticket.key
    assert confirmed[0]["kind"] == "queue"


async def test_actions_go_out_in_order_with_the_rooms_chat_lines(tmp_path: Path) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST)
    async with server, bot(tmp_path, server) as b:
        assert b.probe.ctx is not None
        assert b.probe.ctx.rooms is not None
        before = len(server.actions(ROOM))
        await b.probe.ctx.rooms.send_chat(ROOM, "first")
        ticket = await b.probe.actions.queue(ROOM, "rt", "rtmp://x/ordered", duration=60)
        poll = await b.probe.actions.new_poll(ROOM, "Now?", ["yes", "no"])
        await b.probe.ctx.rooms.send_chat(ROOM, "last")
        await ticket.result(timeout=10)
        await poll.result(timeout=10)
        await b.until(lambda: any(r.text == "last" for r in server.chat_log(ROOM)))
        sent = [(a.event, a.data.get("msg") if a.event == "chatMsg" else None)
                for a in server.actions(ROOM)[before:] if a.name == "dazbot"]
    assert sent == [("chatMsg", "first"), ("queue", None), ("newPoll", None), ("chatMsg", "last")]


async def test_a_bot_restart_while_an_action_is_in_flight_neither_loses_nor_doubles_it(
    tmp_path: Path,
) -> None:
    # The action reached the server and took effect, but the bot went away before it saw the
    # confirmation: the next process finds it in its journal, in doubt, and reconciles it against
    # the resynced playlist instead of queueing the item twice (or dropping it).
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST)
    async with server:
        # Someone stays in the room: CyTube unloads (and, unregistered, forgets) a channel the moment
        # its last socket leaves, so alone the bot would come back to an empty playlist.
        await server.add_user(ROOM, "watcher")
        async with bot(tmp_path, server) as first:
            server.delay_replies(0.4)
            ticket = await first.probe.actions.queue(ROOM, "rt", "rtmp://x/inflight", duration=60)
            await first.until(lambda: len(server.actions(ROOM, "queue")) == 1, timeout=10)
            server.go_silent()  # applied, but its confirmation never reaches this process
            await first.until(lambda: on_playlist(server) == ["rtmp://x/inflight"], timeout=10)
            assert not ticket.done
        server.go_silent(False)
        server.delay_replies(0)
        async with bot(tmp_path, server) as second:
            await second.until(lambda: bool(second.probe.named("room.action.confirmed")))
            confirmed = second.probe.named("room.action.confirmed")
            assert await second.dead_letters() == 0
            playlist = on_playlist(server)
    assert playlist == ["rtmp://x/inflight"]  # once
    assert [c["key"] for c in confirmed] == [ticket.key]
    assert "in doubt" in confirmed[0]["detail"] or "earlier send" in confirmed[0]["detail"], confirmed


async def test_a_guest_bot_in_a_registered_channel_follows_the_playlist_lock(tmp_path: Path) -> None:
    # A registered channel starts with its playlist locked (playlistadd needs 1.5): a guest bot's
    # queue fails at once and nothing is sent. When the owner opens the playlist, the replica's
    # lock changes and the same call goes through on the open-playlist key (oplaylistadd, -1).
    # A YouTube video: a guest may never add live media here (playlistaddlive has no open-playlist key).
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, registered_channels=[ROOM],
                              media={("yt", "dQw4w9WgXcQ"): ("A video", 60.0)})
    async with server:
        await server.add_user(ROOM, "owner", rank=3)
        async with bot(tmp_path, server) as b:
            before = len(server.actions(ROOM))
            with pytest.raises(ActionNotPermitted) as locked:
                await b.probe.actions.queue(ROOM, "yt", "dQw4w9WgXcQ")
            sent_while_locked = [a for a in server.actions(ROOM)[before:] if a.event == "queue"]
            await server.user_act(ROOM, "owner", "togglePlaylistLock")
            await b.until(lambda: (s := b.probe.ctx.channel(ROOM) if b.probe.ctx else None) is not None
                          and not s.locked)
            ticket = await b.probe.actions.queue(ROOM, "yt", "dQw4w9WgXcQ")
            await ticket.result(timeout=10)
            playlist = on_playlist(server)
    assert (locked.value.key, locked.value.needed) == ("playlistadd", 1.5)
    assert sent_while_locked == []
    assert playlist == ["dQw4w9WgXcQ"]


async def test_a_new_poll_while_one_is_open_replaces_it_and_both_are_confirmed(tmp_path: Path) -> None:
    # CyTube closes an open poll before opening the next one (closePoll to all, then newPoll): the
    # second action is confirmed by its own newPoll, not by the closePoll in between.
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST)
    async with server, bot(tmp_path, server) as b:
        first = await b.probe.actions.new_poll(ROOM, "Round?", ["a", "b"])
        await first.result(timeout=10)
        second = await b.probe.actions.new_poll(ROOM, "Round?", ["c", "d"])  # same title, a new round
        done = await second.result(timeout=10)
        await b.until(lambda: (s := b.probe.ctx.channel(ROOM) if b.probe.ctx else None) is not None
                      and s.poll is not None and s.poll.options == ("c", "d"))
        truth = server.channel_state(ROOM).poll
        sent = [a for a in server.actions(ROOM, "newPoll") if a.name == "dazbot"]
    assert done.detail == "poll opened"
    assert truth is not None
    assert list(truth.options) == ["c", "d"]
    assert len(sent) == 2


async def test_kicking_a_user_who_is_not_in_the_room_fails_with_the_reason_and_sends_nothing(
    tmp_path: Path,
) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                              global_ranks={"DazBot": 2}, registered_channels=[ROOM])
    async with server, bot(tmp_path, server, account=("DazBot", "pw")) as b:
        before = len(server.actions(ROOM))
        ticket = await b.probe.actions.kick(ROOM, "ghost", "bye")
        with pytest.raises(ActionInvalid, match="ghost is not in the room"):
            await ticket.result(timeout=10)
        failed = b.probe.named("room.action.failed")
        sent = [a for a in server.actions(ROOM)[before:] if a.name == "DazBot"]
    assert sent == []
    assert [f["kind"] for f in failed] == ["kick"]
