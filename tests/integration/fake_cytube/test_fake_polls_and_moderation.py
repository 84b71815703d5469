"""The fake server's polls, moderation, leader and test-side controls over real sockets, pinned to
the real server's rules (../shared/cytube-protocol-actions.md §2, §3.2, §4, §5, §6)."""

from __future__ import annotations

import asyncio

from fake_kit import FAST, LIMITS, joined, moderated_lobby

from daz.testing.fake_cytube import FakeCytubeServer


async def test_poll_votes_are_per_ip_and_obscured_counts_are_revealed_on_close() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        host = await joined(server, "host", "10.0.0.1")
        voter = await joined(server, "voter", "10.0.0.2")
        same_ip = await joined(server, "twin", "10.0.0.2")
        await host.emit(
            "newPoll",
            {"title": "Best <b>color</b>? http://example.com", "opts": ["red", "a & b"], "obscured": True},
        )
        seen_by_guest = await voter.wait_for("newPoll")
        assert seen_by_guest["counts"] == ["?", "?"]
        assert seen_by_guest["options"] == ["red", "a &amp; b"]
        assert seen_by_guest["title"] == (
            'Best &lt;b&gt;color&lt;/b&gt;? <a href="http://example.com" '
            'target="_blank" rel="noopener noreferer">http://example.com</a>'
        )
        assert seen_by_guest["initiator"] == "host"
        await voter.emit("vote", {"option": 1})
        await voter.wait_for("updatePoll")
        await same_ip.wait_for("updatePoll")
        await same_ip.emit("vote", {"option": 1})  # the same IP voting the same option: nothing changes
        assert "updatePoll" not in [n for n, _ in await same_ip.quiet(0.3)]
        mark = len(same_ip.events)
        await same_ip.emit("vote", {"option": 0})  # the same IP changes ITS vote (one vote per IP)
        await same_ip.wait_for("updatePoll", after=mark)
        assert server.channel_state("lobby").poll is not None
        assert server.channel_state("lobby").poll.counts == (1, 0)  # type: ignore[union-attr]
        await host.emit("closePoll")
        revealed = await voter.wait_for("updatePoll", lambda d: d["counts"] == [1, 0])
        assert revealed["counts"] == [1, 0]
        await voter.wait_for("closePoll")
        assert server.channel_state("lobby").poll is None
        for client in (host, voter, same_ip):
            await client.close()


async def test_poll_refusals_and_the_timeout() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        host = await joined(server, "host", "10.0.0.1")
        await host.emit("newPoll", {"title": "x", "opts": ["a"]})
        missing = await host.wait_for("errorMsg")
        assert missing["msg"] == "Unexpected error for message newPoll: Missing key: boolean:obscured"
        await host.emit("newPoll", {"title": "x", "opts": [""], "obscured": False})
        assert (await host.wait_for("errorMsg", lambda d: "1-255" in d["msg"]))["msg"] == (
            "Poll options must be 1-255 characters long."
        )
        await host.emit("newPoll", {"title": "quick", "opts": ["a"], "obscured": False, "timeout": 1})
        await host.wait_for("newPoll")
        await host.wait_for("closePoll", timeout=3)
        assert server.channel_state("lobby").poll is None
        await host.close()


async def test_admin_actions_without_the_rank_are_kicks() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, registered_channels=["lobby"]) as server:
        for event, data, reason in [
            ("setOptions", {"allow_voteskip": False}, "Attempted setOptions as a non-moderator"),
            ("setPermissions", {"kick": 0}, "Attempted setPermissions as a non-admin"),
            ("setMotd", {"motd": "hi"}, "Attempted setMotd with insufficient permission"),
            ("assignLeader", {"name": "x"}, "Attempted assignLeader without sufficient permission"),
        ]:
            client = await joined(server, f"g{len(server.kicks)}", f"10.0.1.{len(server.kicks)}")
            await client.emit(event, data)
            assert await client.wait_for("kick") == {"reason": reason}
            await asyncio.wait_for(client.disconnected.wait(), 5)
            await client.close()
        assert server.channel_state("lobby").options["allow_voteskip"] is True


async def test_mute_sends_the_meta_then_the_whisper_and_unmute_the_other_way_round() -> None:
    # The order CyTube 3.86 sends them in (measured), as a moderator sees it.
    async with moderated_lobby() as (server, mod):
        await joined(server, "guest", "10.0.0.3")
        await mod.wait_for("addUser", lambda d: d["name"] == "guest")
        mark = len(mod.events)
        for verb in ("mute", "unmute"):
            await mod.emit("chatMsg", {"msg": f"/{verb} guest", "meta": {}})
            await mod.wait_for("chatMsg", lambda d, v=verb: d["msg"] == f"mod {v}d guest", after=mark)
        await mod.wait_for("setUserMeta", lambda d: not d["meta"]["muted"], after=mark)
        told = [name for name, data in mod.events[mark:]
                if name == "setUserMeta" or (name == "chatMsg" and "muted guest" in data["msg"])]
        assert told == ["setUserMeta", "chatMsg", "chatMsg", "setUserMeta"]


async def test_moderator_commands_kick_mute_and_ban_with_the_real_replies() -> None:
    accounts = {"mod": "pw", "user1": "pw"}
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, registered_channels=["lobby"], accounts=accounts
    ) as server:
        await server.set_rank("lobby", "mod", 2)
        mod = await joined(server, "mod", "10.0.0.1", "pw")
        user = await joined(server, "user1", "10.0.0.2", "pw")
        guest = await joined(server, "guest", "10.0.0.3")
        await user.wait_for("addUser", lambda d: d["name"] == "guest")  # the guest's last frame to others
        await user.emit("chatMsg", {"msg": "/kick guest", "meta": {}})  # rank 1: complete silence
        assert await user.quiet(0.3) == []
        await mod.emit("chatMsg", {"msg": "/mute guest", "meta": {}})
        meta = await user.wait_for("setUserMeta")
        assert meta == {"name": "guest", "meta": {"afk": False, "muted": True}}
        await guest.emit("chatMsg", {"msg": "can I talk?", "meta": {}})
        assert await guest.wait_for("noflood") == {
            "action": "chat",
            "msg": "You have been muted on this channel.",
        }
        await mod.emit("chatMsg", {"msg": "/kick guest Go away now", "meta": {}})
        assert await guest.wait_for("kick") == {"reason": "Go away now"}
        assert await user.wait_for("userLeave") == {"name": "guest"}
        await mod.emit("chatMsg", {"msg": "/ban user1", "meta": {}})
        assert await user.wait_for("kick") == {"reason": "You're banned!"}
        await mod.emit("chatMsg", {"msg": "/ban user1", "meta": {}})
        assert (await mod.wait_for("errorMsg"))["msg"] == "user1 is already banned"
        assert [w["msg"] for w in mod.received("chatMsg") if w["username"] == "[server]"][-3:] == [
            "mod muted guest",
            "mod kicked guest",
            "mod namebanned user1",
        ]
        assert not [c for c in server.chat_log("lobby") if c.text.startswith("/")]  # commands are not chat
        for client in (mod, user, guest):
            await client.close()


async def test_leader_pauses_the_clock_and_resumes_it() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        server.add_media("yt", "v1", "Video 1", 60)
        leader = await joined(server, "lead", "10.0.0.1")
        await leader.emit("queue", {"id": "v1", "type": "yt", "pos": "end"})
        await leader.wait_for("mediaUpdate", lambda d: d["currentTime"] >= 0)
        await leader.emit("assignLeader", {"name": "lead"})
        assert await leader.wait_for("setLeader") == "lead"
        await leader.emit("mediaUpdate", {"id": "v1", "currentTime": 10.5, "paused": True})
        assert await leader.wait_for("mediaUpdate", lambda d: d["paused"]) == {
            "currentTime": 10.5,
            "paused": True,
        }
        assert [n for n, _ in await leader.quiet(0.4)] == []  # no server clock while a leader leads
        await leader.emit("assignLeader", {"name": ""})
        assert await leader.wait_for("setLeader", lambda d: d == "") == ""
        resumed = await leader.wait_for(
            "mediaUpdate", lambda d: d["paused"] is False and d["currentTime"] >= 10.5
        )
        assert resumed["currentTime"] >= 10.5
        await leader.close()


async def test_simulated_users_and_ranks_and_the_state_snapshot() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, media={("yt", "v1"): ("One", 30)}) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        await server.add_user("lobby", "alice", rank=2)
        assert (await bot.wait_for("addUser", lambda d: d["name"] == "alice"))["rank"] == 2
        await server.user_act("lobby", "alice", "queue", {"id": "v1", "type": "yt", "pos": "end"})
        await bot.wait_for("changeMedia")
        await server.user_act("lobby", "alice", "queue", {"id": "nope", "type": "zz", "pos": "end"})
        assert ("queueFail", {"msg": "Unknown media type &#39;zz&#39;", "link": "", "id": "nope"}) in (
            server.inbox("lobby", "alice")
        )
        await server.set_rank("lobby", "bot", 1.5)
        assert await bot.wait_for("rank", lambda r: r == 1.5) == 1.5
        state = server.channel_state("lobby")
        assert [(u.name, u.rank) for u in state.users] == [("bot", 1.5), ("alice", 2)]
        assert state.current is not None
        assert (state.current.id, state.current.title, state.current.queueby) == ("v1", "One", "alice")
        assert state.usercount == 2
        await server.remove_user("lobby", "alice")
        assert await bot.wait_for("userLeave") == {"name": "alice"}
        assert [u.name for u in server.channel_state("lobby").users] == ["bot"]
        await bot.close()


async def test_only_a_first_character_slash_is_a_command_as_on_cytube() -> None:
    """CyTube checks the first character only, after turning control characters into spaces; its /me
    runs the emote's text through the same check again."""
    accounts = {"mod": "pw"}
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, registered_channels=["lobby"], accounts=accounts
    ) as server:
        await server.set_rank("lobby", "mod", 2)
        mod = await joined(server, "mod", "10.0.0.1", "pw")
        await server.add_user("lobby", "alice")
        await server.add_user("lobby", "bob")
        await mod.emit("chatMsg", {"msg": " /kick alice", "meta": {}})  # a leading space: text
        assert (await mod.wait_for("chatMsg", lambda d: d["username"] == "mod"))["msg"] == " /kick alice"
        await mod.emit("chatMsg", {"msg": "/me  /kick alice", "meta": {}})  # the emote's text is " /kick"
        emote = await mod.wait_for("chatMsg", lambda d: d["meta"].get("action") is True)
        assert emote["msg"].strip() == "/kick alice"
        assert server.channel("lobby").find("alice") is not None
        await mod.emit("chatMsg", {"msg": "/me /kick alice", "meta": {}})
        await mod.wait_for("userLeave", lambda d: d["name"] == "alice")
        await mod.emit("chatMsg", {"msg": "/kick\tbob", "meta": {}})  # the tab becomes a space first
        await mod.wait_for("userLeave", lambda d: d["name"] == "bob")
        await mod.close()
