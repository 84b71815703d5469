"""The ban list and unban by name against the fake CyTube server over real sockets, the whole bot
(DazApp: outbox, SQLite journal), CyTube's limits on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.integration.cytube.test_actions_live import ROOM, Bot, bot

from daz.cytube.ban_wire import BanEntry
from daz.errors import ActionError, ActionNotPermitted, BanlistUnanswered, RoomNotReady
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient

# CyTube's limits, the reconnect-related ones shrunk; usercount (throttled to 10 s) is what a
# test user's join waits for, so it comes sooner too.
FAST = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.3, usercount_interval_seconds=0.2)
BOT = ("DazBot", "pw")
TROLL_IP = "10.0.0.66"


def moderated() -> FakeCytubeServer:
    """A registered channel where the bot's account has rank 2 (``ban`` needs 2)."""
    return FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST,
                            accounts={"DazBot": "pw", "troll": "pw"}, global_ranks={"DazBot": 2},
                            registered_channels=[ROOM])


def sent_by_bot(server: FakeCytubeServer, event: str | None = None) -> list[object]:
    return [a.data for a in server.actions(ROOM, event) if a.name == "DazBot"]


async def troll_can_join(server: FakeCytubeServer) -> bool:
    """Whether "troll" from its own address joins and logs in without being kicked for a ban (an
    address ban bites at the join, a name ban at the login: kickban.js)."""
    client = CytubeTestClient(server.url, ip=TROLL_IP)
    await client.connect()
    try:
        await client.join(ROOM)
        if await first_of(client, "usercount", "kick") == "kick":
            return False
        await client.emit("login", {"name": "troll", "pw": "pw"})  # an account: no guest-login window
        if await first_of(client, "login", "kick") == "kick":
            return False
        if client.received("login")[-1]["success"] is not True:
            raise AssertionError(f"troll's login failed for another reason: {client.received('login')[-1]}")
        heard = await client.quiet(0.3)
        return "kick" not in [name for name, _ in heard]
    finally:
        await client.close()


async def first_of(client: CytubeTestClient, *names: str, timeout: float = 5.0) -> str:
    """The first of ``names`` the client receives from now on."""
    mark = len(client.events)
    async with asyncio.timeout(timeout):
        while True:
            for name, _ in client.events[mark:]:
                if name in names:
                    return name
            await asyncio.sleep(0.02)


async def test_ban_list_then_unban_by_name_lifts_every_ban_and_the_user_joins_again(tmp_path: Path) -> None:
    async with moderated() as server, bot(tmp_path, server, account=BOT) as b:
        troll = await CytubeTestClient.joined(server.url, "troll", ip=TROLL_IP, password="pw", room=ROOM)
        await (await b.probe.actions.ban(ROOM, "troll", "spam")).result(timeout=10)
        await troll.close()
        # An address ban on the same name as well (a moderator's /ipban): two rows under "troll".
        await server.ban(ROOM, name="troll", ip=TROLL_IP, reason="flood")
        assert not await troll_can_join(server)
        listed = await b.probe.actions.banlist(ROOM)
        ticket = await b.probe.actions.unban_name(ROOM, "Troll")  # any case: CyTube stores lower case
        done = await ticket.result(timeout=15)
        after = await b.probe.actions.banlist(ROOM)
        unbans = sent_by_bot(server, "unban")
        joins_again = await troll_can_join(server)
    assert listed == (BanEntry(1, "troll", "spam", "DazBot", ip_ban=False),
                      BanEntry(2, "troll", "flood", "[server]", ip_ban=True))
    assert [(e.banned_by, e.ip_ban) for e in listed] == [("DazBot", False), ("[server]", True)]
    assert done.detail == "unbanned (2 ban(s) on Troll lifted)"
    assert unbans == [{"id": 1, "name": "troll"}, {"id": 2, "name": "troll"}]
    assert after == ()
    assert joins_again


async def test_an_unban_by_name_queued_offline_lifts_the_ban_the_server_has_when_it_goes_out(
    tmp_path: Path,
) -> None:
    # The name is journalled, not an id: while the bot was down the ban was lifted and made again
    # under a new id. An id taken before the restart would now name nothing, and CyTube would still
    # answer banlistRemove for it; the id looked up at send time is the ban that exists.
    async with moderated() as server:
        await server.ban(ROOM, name="troll")
        async with bot(tmp_path, server, account=BOT) as first:
            server.refuse_connections()
            server.kill_connections()
            await first.until(lambda: not first.live())
            ticket = await first.probe.actions.unban_name(ROOM, "troll")
            await asyncio.sleep(0.3)
            assert not ticket.done
        server.unban(ROOM, name="troll")
        await server.ban(ROOM, name="troll")  # id 2 now
        server.refuse_connections(False)
        async with bot(tmp_path, server, account=BOT) as second:
            await second.until(lambda: bool(second.probe.named("room.action.confirmed")), timeout=20)
            confirmed = second.probe.named("room.action.confirmed")
        unbans = sent_by_bot(server, "unban")
        joins_again = await troll_can_join(server)
    assert [c["kind"] for c in confirmed] == ["unban_name"]
    assert unbans == [{"id": 2, "name": "troll"}]
    assert joins_again


@pytest.mark.parametrize("registered", [True, False], ids=["rank-1", "unregistered-channel"])
async def test_a_bot_without_the_ban_permission_fails_at_once_and_sends_nothing(
    tmp_path: Path, registered: bool,
) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                              global_ranks={"DazBot": 1 if registered else 255},
                              registered_channels=[ROOM] if registered else ())
    async with server, bot(tmp_path, server, account=BOT) as b:
        before = len(server.actions(ROOM))
        started = time.monotonic()
        with pytest.raises(ActionNotPermitted) as listed:
            await b.probe.actions.banlist(ROOM)
        with pytest.raises(ActionNotPermitted) as unbanned:
            await b.probe.actions.unban_name(ROOM, "troll")
        took = time.monotonic() - started
        await asyncio.sleep(0.3)
        sent = [a for a in server.actions(ROOM)[before:] if a.name == "DazBot"]
    for error in (listed.value, unbanned.value):
        assert error.key == "ban"
        assert error.needed == (2 if registered else None)
    if registered:
        assert str(listed.value) == "banlist: permission 'ban' needs rank 2; the bot has rank 1"
    else:  # even a site admin: an unregistered channel has no ban key, so no ban list
        assert "does not exist in this channel (unregistered channels lack it)" in str(listed.value)
    assert took < 1.0  # at once: no round trip, no timeout
    assert sent == []


async def test_a_silent_server_gives_banlist_unanswered_after_the_timeout(tmp_path: Path) -> None:
    server = moderated()
    server.ping_interval, server.ping_timeout = 25, 120  # the socket outlives the silence
    async with server, bot(tmp_path, server, account=BOT) as b:
        server.go_silent()
        started = time.monotonic()
        with pytest.raises(BanlistUnanswered) as info:
            async with asyncio.timeout(10):  # a query without its own timeout would hang here
                await b.probe.actions.banlist(ROOM, timeout=1.0)
        took = time.monotonic() - started
        server.go_silent(False)
    assert "did not answer requestBanlist within 1s" in str(info.value)
    assert 1.0 <= took < 5.0


async def test_asking_while_the_room_is_not_ready_is_a_clear_error_and_sends_nothing(tmp_path: Path) -> None:
    async with moderated() as server, bot(tmp_path, server, account=BOT) as b:
        server.refuse_connections()
        server.kill_connections()
        await b.until(lambda: not b.live())
        before = len(server.actions(ROOM))
        with pytest.raises(RoomNotReady, match=r"banlist: room lobby is \w+, not READY"):
            await b.probe.actions.banlist(ROOM)
        assert len(server.actions(ROOM)) == before


async def test_a_malformed_banlist_is_reported_and_the_bot_carries_on(tmp_path: Path) -> None:
    async with moderated() as server, bot(tmp_path, server, account=BOT) as b:
        await server.ban(ROOM, name="troll")
        server.delay_replies(1.0)  # the real answer comes late: the bad frame below arrives first
        query = asyncio.create_task(b.probe.actions.banlist(ROOM), name="test.banlist")
        try:
            await b.until(lambda: bool(sent_by_bot(server, "requestBanlist")), timeout=10)
            await bad_banlist(server, b)
            with pytest.raises(ActionError, match="banlist reply was malformed"):
                await asyncio.wait_for(query, 10)
        finally:
            query.cancel()
        server.delay_replies(0)
        malformed = b.app.metrics.protocol_malformed.labels(room=ROOM)._value.get()
        again = await b.probe.actions.banlist(ROOM)  # same connection, still READY
    assert malformed == 1
    assert [entry.name for entry in again] == ["troll"]


async def bad_banlist(server: FakeCytubeServer, b: Bot) -> None:
    member = server.channel(ROOM).find("DazBot")
    assert member is not None
    assert member.sid is not None
    await server.sio.emit("banlist", [{"id": "1", "ip": TROLL_IP, "name": "troll"}], to=member.sid)
