"""The fake server's join sequence, permissions and playlist over real sockets, pinned to the real
server's rules (../shared/cytube-protocol-actions.md §1, §3, §6). Timings shrunk via PlaybackTiming."""

from __future__ import annotations

import asyncio

from fake_kit import FAST, LIMITS, joined

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient
from daz.testing.fake_cytube.permissions import REGISTERED_PERMISSIONS, UNREGISTERED_PERMISSIONS

TIMED = {"id": "rtmp://example.com/live/a", "type": "rt", "pos": "end", "temp": True, "duration": 0.5}


def timed(n: int, *, temp: bool = True, duration: float = 0.5, pos: str = "end") -> dict[str, object]:
    return {**TIMED, "id": f"rtmp://example.com/live/{n}", "temp": temp, "duration": duration, "pos": pos}


async def test_unregistered_join_sequence_in_the_real_order() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        await server.say("lobby", "alice", "old line")
        async with CytubeTestClient(server.url) as client:
            await client.join("lobby")
            await client.wait_for("channelNotRegistered")
            assert client.names() == [
                "rank",
                "setPermissions",
                "setPlaylistLocked",
                "emoteList",
                "chatMsg",
                "drinkCount",
                "channelCSSJS",
                "setMotd",
                "channelOpts",
                "setPlaylistMeta",
                "playlist",
                "userlist",
                "usercount",
                "channelNotRegistered",
            ]
            assert client.received("setPermissions") == [dict(UNREGISTERED_PERMISSIONS)]
            assert "kick" not in client.received("setPermissions")[0]  # absent: nobody may kick
            assert client.received("setPlaylistLocked") == [False]  # unregistered channels start open
            assert client.received("userlist") == [[]]  # anonymous: not in the list


async def test_guest_login_gets_its_rank_before_the_login_reply_and_nothing_after_its_add_user() -> None:
    # Measured on CyTube 3.86: a guest's channel rank is never looked up, so no `rank`, playlist
    # re-send or `setUserRank` follows its addUser (a client waiting for one waits forever).
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["lobby"]) as server:
        async with CytubeTestClient(server.url) as client:
            await client.join("lobby")
            await client.wait_for("usercount")
            mark = len(client.events)
            assert await client.login("guest1") == {"success": True, "name": "guest1", "guest": True}
            await client.wait_for("addUser", lambda d: d["name"] == "guest1")
            async with CytubeTestClient(server.url, ip="10.0.0.9") as other:  # a later frame, as a fence
                await other.join("lobby")
                await client.wait_for("usercount", after=mark)
            assert client.names()[mark:mark + 3] == ["rank", "login", "addUser"]
            assert client.received("rank")[-1] == 0
            assert "setUserRank" not in client.names()[mark:]
            assert client.names()[mark:].count("rank") == 1


async def test_registered_join_then_login_sequence() -> None:
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, registered_channels=["lobby"], accounts={"user1": "pw"}
    ) as server:
        async with CytubeTestClient(server.url) as client:
            await client.join("lobby")
            await client.wait_for("usercount")
            mark = len(client.events)
            assert await client.login("user1", "pw") == {"success": True, "name": "user1"}
            await client.wait_for("setUserRank")
            assert client.names()[mark:] == [
                "rank",
                "login",
                "addUser",
                "rank",
                "setPlaylistMeta",
                "playlist",
                "setUserRank",
            ]
            assert client.received("setPermissions") == [dict(REGISTERED_PERMISSIONS)]
            assert client.received("setPlaylistLocked") == [True]
            assert "channelNotRegistered" not in client.names()
            assert client.received("setUserRank")[-1] == {"name": "user1", "rank": 1}


async def test_a_channel_moderator_account_gets_its_rank_then_the_userlist_again() -> None:
    # Measured on CyTube 3.86 (an account with channel rank 4, global rank 1).
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, registered_channels=["lobby"], accounts={"owner1": "pw"}
    ) as server:
        await server.set_rank("lobby", "owner1", 4)
        async with CytubeTestClient(server.url) as client:
            await client.join("lobby")
            await client.wait_for("usercount")
            mark = len(client.events)
            await client.login("owner1", "pw")
            await client.wait_for("setUserRank")
            assert client.names()[mark:] == [
                "rank", "login", "addUser", "rank", "userlist", "setPlaylistMeta", "playlist", "setUserRank",
            ]
            assert client.received("rank")[-2:] == [1, 4]


async def test_the_last_socket_leaving_unloads_the_channel() -> None:
    # CyTube 3.86, measured: an empty channel is unloaded. Registered: saved, and loaded again on the
    # next join with its uids renumbered from 0. Unregistered: forgotten, playlist and all.
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["reg"],
                                accounts={"mod": "pw"}) as server:
        await server.set_rank("reg", "mod", 2)
        for room in ("reg", "open"):
            async with CytubeTestClient(server.url, ip="10.0.0.1") as client:
                await client.join(room)
                await client.wait_for("usercount")
                await client.login("mod", "pw")
                await client.wait_for("setUserRank")
                for n in range(2):
                    await client.emit("queue", timed(n, temp=False, duration=60))
                    await client.wait_for("queue", lambda d, n=n: d["item"]["media"]["id"].endswith(f"/{n}"))
                await client.emit("delete", 0)
                await client.wait_for("delete")
                assert [i.uid for i in server.channel_state(room).items] == [1]
            await asyncio.sleep(0.1)  # the server handles the disconnect
            async with CytubeTestClient(server.url, ip="10.0.0.2") as late:
                await late.join(room)
                playlist = await late.wait_for("playlist")
            assert [i["uid"] for i in playlist] == ([0] if room == "reg" else []), room


async def test_late_joiner_sees_current_item_and_poll_in_the_join_burst() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        alice = await joined(server, "alice", "10.0.0.1")
        await alice.emit("queue", timed(1, duration=30))
        await alice.wait_for("changeMedia")
        await alice.emit("newPoll", {"title": "Lunch?", "opts": ["a", "b"], "obscured": False})
        await alice.wait_for("newPoll")
        async with CytubeTestClient(server.url, ip="10.0.0.2") as late:
            await late.join("lobby")
            await late.wait_for("channelNotRegistered")
            names = late.names()
            start = names.index("playlist")
            assert names[start : start + 6] == [
                "playlist",
                "setCurrent",
                "setCurrent",
                "changeMedia",
                "newPoll",
                "userlist",
            ]
            assert "mediaUpdate" not in names  # changeMedia carries the live position on join
        await alice.close()


async def test_queue_plays_with_lead_in_updates_and_the_last_temp_item_ends_in_silence() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        mark = len(bot.events)
        await bot.emit("queue", timed(1, duration=0.5))
        queued = await bot.wait_for("queue")
        assert queued["after"] == "prepend"
        assert queued["item"]["uid"] == 0
        assert queued["item"]["temp"] is True
        assert queued["item"]["media"] == {
            "id": "rtmp://example.com/live/1",
            "title": "Livestream",
            "seconds": 0.5,
            "duration": "00:00",
            "type": "rt",
            "meta": {},
        }
        change = await bot.wait_for("changeMedia")
        assert change["currentTime"] == -0.15
        assert change["paused"] is True
        first_update = await bot.wait_for("mediaUpdate")
        assert first_update == {"currentTime": 0, "paused": False}  # the lead-in is over
        await bot.wait_for("delete", timeout=3)
        meta = await bot.wait_for("setPlaylistMeta", lambda d: d["count"] == 0, after=mark + 3)
        assert meta == {"count": 0, "rawTime": 0, "time": "00:00"}
        await bot.quiet(0.3)
        after_start = bot.names()[mark:]
        assert after_start.count("changeMedia") == 1  # the end of the playlist sends no changeMedia
        tail = after_start[after_start.index("delete") :]
        assert tail == ["delete", "setPlaylistMeta"]  # and nothing else: no setCurrent, no mediaUpdate
        assert server.channel_state("lobby").current_uid is None
        await bot.close()


async def test_mediaupdate_cadence_and_a_single_non_temp_item_loops() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        await bot.emit("queue", timed(1, temp=False, duration=0.6))
        await bot.wait_for("changeMedia")
        await asyncio.sleep(2.0)
        changes = bot.received("changeMedia")
        assert len(changes) >= 2  # it starts again at the lead-in each time
        assert all(c["currentTime"] == -0.15 for c in changes)
        updates = [u for u in bot.received("mediaUpdate") if u["currentTime"] > 0]
        assert updates  # every 5 ticks while it plays
        assert bot.received("delete") == []
        assert [i.uid for i in server.channel_state("lobby").items] == [0]
        await bot.close()


async def test_queue_failures_with_the_real_messages() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        await bot.emit("queue", {"id": "x", "type": "zz", "pos": "end"})
        assert (await bot.wait_for("queueFail"))["msg"] == "Unknown media type &#39;zz&#39;"
        await asyncio.sleep(3.1)  # the add-rate limiter forgets after burst/rate seconds
        await bot.emit("queue", timed(1, duration=30))
        await bot.wait_for("queue")
        await bot.emit("queue", timed(1, duration=30))
        dup = await bot.wait_for("queueFail", lambda d: d["id"] == "rtmp://example.com/live/1")
        assert dup["msg"] == "This item is already on the playlist"
        await bot.emit("queue", {"id": "dQw4w9WgXcQ", "type": "yt", "pos": "end"})
        fail = await bot.wait_for("queueFail", lambda d: d["id"] == "dQw4w9WgXcQ")
        assert fail["msg"].startswith("The YouTube API now requires an API key.")
        await bot.emit("queue", timed(2, duration=30))
        fail = await bot.wait_for("queueFail", lambda d: d["id"] == "rtmp://example.com/live/2")
        assert fail["msg"] == "You are adding videos too quickly"  # the 4th add within the burst
        await bot.emit("queue", {**timed(3), "pos": "middle"})
        await bot.emit("moveMedia", {"from": "0", "after": "prepend"})
        error = await bot.wait_for("errorMsg")
        assert error["msg"] == (
            "Unexpected error for message moveMedia: Expected key from to be of type number, "
            "instead got string"
        )
        assert not [d for d in bot.received("queueFail") if d["id"] == "rtmp://example.com/live/3"]
        await bot.close()


async def test_catalog_media_and_playlist_edits() -> None:
    media = {("yt", f"v{i}"): (f"Video {i}", 100 + i) for i in range(4)}
    limits = CytubeLimits(guest_login_window_seconds=0.05, queue_burst=10)
    async with FakeCytubeServer(limits=limits, playback=FAST, media=media) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        for i in range(3):
            await bot.emit("queue", {"id": f"v{i}", "type": "yt", "pos": "end"})
            await bot.wait_for("queue", lambda d, i=i: d["item"]["uid"] == i)
        await bot.emit("queue", {"id": "v3", "type": "yt", "pos": "next"})
        nxt = await bot.wait_for("queue", lambda d: d["item"]["uid"] == 3)
        assert nxt["after"] == 0  # next = after the current item
        assert nxt["item"]["media"]["duration"] == "01:43"
        await bot.emit("moveMedia", {"from": 2, "after": "prepend"})
        assert await bot.wait_for("moveVideo") == {"from": 2, "after": "prepend"}
        await bot.emit("setTemp", {"uid": 1, "temp": True})
        assert await bot.wait_for("setTemp") == {"uid": 1, "temp": True}
        await bot.emit("jumpTo", 1)
        assert await bot.wait_for("setCurrent", lambda d: d == 1) == 1
        await bot.emit("playNext")  # 1 is temp: it is deleted, the next one starts
        assert await bot.wait_for("delete") == {"uid": 1}
        state = server.channel_state("lobby")
        assert [i.uid for i in state.items] == [2, 0, 3]
        assert state.current_uid == 2  # 1 was last: the playlist wraps to the first item
        await bot.emit("delete", 3)
        await bot.wait_for("delete", lambda d: d == {"uid": 3})
        # CyTube's move after an unknown uid loses the item without a word (measured on 3.86).
        await bot.emit("moveMedia", {"from": 0, "after": 999})
        told = {name for name, _ in await bot.quiet(0.3)}
        assert not told & {"moveVideo", "delete", "playlist", "errorMsg"}, told
        assert [i.uid for i in server.channel_state("lobby").items] == [2]
        mark = len(bot.events)
        await bot.emit("clearPlaylist")
        assert await bot.wait_for("playlist", after=mark) == []
        meta = await bot.wait_for("setPlaylistMeta", lambda d: d["count"] == 0, after=mark)
        assert meta == {"count": 0, "rawTime": 0, "time": "00:00"}
        assert server.channel_state("lobby").items == ()
        await bot.emit("queue", {"id": "v0", "type": "yt", "pos": "end"})
        again = await bot.wait_for(
            "queue", lambda d: d["item"]["media"]["id"] == "v0" and d["item"]["uid"] > 3
        )
        assert again["item"]["uid"] == 4  # uids never reset
        await bot.close()


async def test_unpermitted_actions_are_dropped_silently() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["lobby"]) as server:
        guest = await joined(server, "guest", "10.0.0.1")
        for event, data in [
            ("queue", timed(1)),
            ("delete", 0),
            ("clearPlaylist", None),
            ("playNext", None),
            ("closePoll", None),
            ("togglePlaylistLock", None),
        ]:
            await guest.emit(event, data)
        assert await guest.quiet(0.4) == []
        assert len(server.actions("lobby", "queue")) == 1  # received, and answered with nothing
        assert server.channel_state("lobby").items == ()
        await guest.close()


async def test_playlist_survives_a_restart_only_in_a_registered_channel() -> None:
    media = {("yt", "a"): ("A", 100), ("yt", "b"): ("B", 100)}
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, media=media, registered_channels=["reg"], accounts={"boss": "pw"}
    ) as server:
        await server.set_rank("reg", "boss", 3)  # stored: applied at the account's login
        for room in ("reg", "open"):
            client = CytubeTestClient(server.url, ip="10.0.0.1")
            await client.connect()
            await client.join(room)
            await client.wait_for("usercount")
            await asyncio.sleep(0.06)
            login = await client.login("boss", "pw") if room == "reg" else await client.login("guest1")
            assert login["success"] is True
            await client.emit("queue", {"id": "a", "type": "yt", "pos": "end", "temp": False})
            await client.emit("queue", {"id": "b", "type": "yt", "pos": "end", "temp": False})
            await client.wait_for("queue", lambda d: d["item"]["media"]["id"] == "b")
            await client.close()
        before = server.channel_state("reg")
        await server.restart()
        after = server.channel_state("reg")
        assert [(i.id, i.temp) for i in after.items] == [(i.id, i.temp) for i in before.items]
        assert [i.uid for i in after.items] == [0, 1]  # renumbered from the fresh counter
        assert after.current is not None
        assert server.channel_state("open").items == ()


async def test_channel_opts_carry_the_channel_password_in_clear_as_the_real_server_sends_it() -> None:
    # CyTube's channelOpts holds opts.password (the password itself, or false): a client that must
    # never log it has to meet it in the fake too (../shared/cytube-protocol.md, channelOpts).
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["lobby", "open"],
                                channel_passwords={"lobby": "s3cret-pw"}) as server:
        async with CytubeTestClient(server.url) as client:
            await client.join("lobby")
            assert await client.wait_for("needPassword") is False
            await client.emit("channelPassword", "s3cret-pw")
            opts = await client.wait_for("channelOpts")
        async with CytubeTestClient(server.url) as other:
            await other.join("open")
            open_opts = await other.wait_for("channelOpts")
    assert opts["password"] == "s3cret-pw"
    assert open_opts["password"] is False


async def test_the_channel_password_is_an_option_that_moderators_walk_past() -> None:
    # accesscontrol.js and opts.js, measured on CyTube 3.86: setOptions {password} (rank >= 3) locks
    # the channel for new joiners; a wrong password gets needPassword true; a moderator who logs in
    # (before the join, or while asked) is let in with cancelNeedPassword; "" unlocks it.
    accounts = {"owner": "pw", "mod": "pw", "member": "pw"}
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["lobby"],
                                accounts=accounts) as server:
        await server.set_rank("lobby", "owner", 3)
        await server.set_rank("lobby", "mod", 2)
        owner = await joined(server, "owner", "10.0.0.1", "pw")
        await owner.emit("setOptions", {"password": "sekrit"})
        await owner.wait_for("channelOpts", lambda d: d["password"] == "sekrit")
        async with CytubeTestClient(server.url, ip="10.0.0.2") as guest:
            await guest.emit("joinChannel", {"name": "lobby", "pw": "wrong"})
            asked = await guest.wait_for("needPassword")
            await guest.emit("channelPassword", "sekrit")
            await guest.wait_for("userlist")
            guest_heard = guest.names()
        async with CytubeTestClient(server.url, ip="10.0.0.3") as member:
            await member.join("lobby")
            await member.wait_for("needPassword")
            reply = await member.login("member", "pw")  # not a moderator: still asked
            member_after_login = [name for name, _ in await member.quiet(0.3)]
        async with CytubeTestClient(server.url, ip="10.0.0.4") as mod:
            await mod.join("lobby")
            await mod.wait_for("needPassword")
            await mod.login("mod", "pw")  # a moderator's login lets it in
            await mod.wait_for("cancelNeedPassword")
            mod_heard = mod.names()
        await owner.emit("setOptions", {"password": ""})
        await owner.wait_for("channelOpts", lambda d: d["password"] is False)
        async with CytubeTestClient(server.url, ip="10.0.0.5") as later:
            await later.join("lobby")
            await later.wait_for("userlist")
            later_heard = later.names()
        await owner.close()
    assert asked is True  # joinChannel carried a wrong pw
    assert guest_heard[guest_heard.index("needPassword") + 1] == "cancelNeedPassword"
    assert reply["success"] is True
    assert "userlist" not in member_after_login
    assert "cancelNeedPassword" not in member_after_login
    after_login = mod_heard[mod_heard.index("login"):]  # the join burst, THEN the cancel (measured)
    assert after_login[:3] == ["login", "rank", "setPermissions"]
    assert after_login.index("userlist") < after_login.index("cancelNeedPassword")
    assert "needPassword" not in later_heard
