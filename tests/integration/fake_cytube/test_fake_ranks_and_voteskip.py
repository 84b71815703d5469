"""The fake server's voteskip, AFK, usercount throttle, absent permission keys and channel-rank
refusals over real sockets, pinned to the real server's rules (../shared/cytube-protocol-actions.md)."""

from __future__ import annotations

import asyncio

from fake_kit import FAST, LIMITS, joined

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer


async def test_voteskip_per_ip_passes_at_the_ratio_and_skips() -> None:
    media = {("yt", "a"): ("A", 60), ("yt", "b"): ("B", 60)}
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, media=media) as server:
        one = await joined(server, "one", "10.0.0.1")
        await server.add_user("lobby", "two", ip="10.0.0.2")
        await server.add_user("lobby", "three", ip="10.0.0.3")
        await one.emit("queue", {"id": "a", "type": "yt", "pos": "end"})
        await one.emit("queue", {"id": "b", "type": "yt", "pos": "end"})
        await one.wait_for("queue", lambda d: d["item"]["media"]["id"] == "b")
        await one.emit("voteskip")
        await asyncio.sleep(0.1)
        await one.emit("voteskip")  # a repeat vote from the same IP: nothing
        await server.user_act("lobby", "two", "voteskip")
        line = await one.wait_for("chatMsg", lambda d: d["username"] == "[voteskip]")
        assert line["msg"] == (
            "Voteskip passed: 2/3 skipped; eligible voters: 3 = total (3) - AFK (0) - "
            "no permission (0); ratio = 0.5"
        )
        assert server.channel_state("lobby").current is not None
        assert server.channel_state("lobby").current.id == "b"  # type: ignore[union-attr]
        assert len(server.actions("lobby", "voteskip")) == 3
        await one.close()


async def test_afk_toggles_with_meta_and_any_chat_clears_it() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        me = await joined(server, "me", "10.0.0.1")
        await me.emit("chatMsg", {"msg": "/afk", "meta": {}})
        assert await me.wait_for("setAFK") == {"name": "me", "afk": True}
        assert "clearVoteskipVote" in me.names()
        assert (await me.wait_for("setUserMeta"))["meta"]["afk"] is True
        mark = len(me.events)
        await me.emit("chatMsg", {"msg": "back", "meta": {}})
        assert await me.wait_for("setAFK", after=mark) == {"name": "me", "afk": False}
        assert [c.text for c in server.chat_log("lobby")] == ["back"]
        await me.close()


async def test_usercount_is_throttled_leading_and_trailing() -> None:
    limits = CytubeLimits(guest_login_window_seconds=0.05, usercount_interval_seconds=0.6)
    async with FakeCytubeServer(limits=limits, playback=FAST) as server:
        watcher = await joined(server, "watcher", "10.0.0.1")
        await asyncio.sleep(0.7)
        mark = len(watcher.events)
        for n in range(3):
            await server.add_user("lobby", f"u{n}")
        await asyncio.sleep(0.1)
        assert [d for n, d in watcher.events[mark:] if n == "usercount"] == [2]  # leading edge only
        await asyncio.sleep(0.7)
        assert [d for n, d in watcher.events[mark:] if n == "usercount"] == [2, 4]  # then the trailing one
        await watcher.close()


async def test_absent_keys_deny_even_a_site_admin_in_an_unregistered_channel() -> None:
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, accounts={"root": "pw"}, global_ranks={"root": 255}
    ) as server:
        root = await joined(server, "root", "10.0.0.1", "pw")
        victim = await joined(server, "victim", "10.0.0.2")
        await root.emit("chatMsg", {"msg": "/kick victim", "meta": {}})
        await root.emit("chatMsg", {"msg": "/mute victim", "meta": {}})
        mark = len(root.events)
        await root.emit("setPermissions", {"kick": 1})  # absent keys cannot be added
        assert "kick" not in await root.wait_for("setPermissions", after=mark)
        assert "kick" not in [n for n, _ in await victim.quiet(0.3)]
        assert victim.connected
        assert "kick" not in server.channel_state("lobby").permissions
        await root.emit("setMotd", {"motd": "hello"})  # motdedit is absent too: a kick, even for 255
        assert await root.wait_for("kick") == {"reason": "Attempted setMotd with insufficient permission"}
        await victim.close()
        await root.close()


async def test_channel_rank_changes_and_their_refusals() -> None:
    accounts = {"admin1": "pw", "user1": "pw"}
    async with FakeCytubeServer(
        limits=LIMITS, playback=FAST, accounts=accounts, registered_channels=["lobby"]
    ) as server:
        await server.set_rank("lobby", "admin1", 3)
        admin = await joined(server, "admin1", "10.0.0.1", "pw")
        user = await joined(server, "user1", "10.0.0.2", "pw")
        guest = await joined(server, "guest", "10.0.0.3")
        await admin.emit("setChannelRank", {"name": "admin1", "rank": 2})
        fail = await admin.wait_for("channelRankFail")
        assert fail == {"msg": "Updating user rank failed: You can't promote or demote yourself."}
        await admin.emit("setChannelRank", {"name": "user1", "rank": 3})
        fail = await admin.wait_for("channelRankFail", lambda d: "equal or higher" in d["msg"])
        assert fail["msg"] == (
            "Updating user rank failed: You can't promote someone to a rank equal or higher "
            "than yourself, or demote them to below rank 1."
        )
        await admin.emit("setChannelRank", {"name": "user1", "rank": 2})
        assert await user.wait_for("rank", lambda r: r == 2) == 2
        assert "userlist" in user.names()[-4:]  # the rank crossed 2: the moderator's userlist
        await admin.emit("setChannelRank", {"name": "guest", "rank": 2})
        note = await admin.wait_for("channelRankFail", lambda d: "not a registered account" in d["msg"])
        assert note["msg"] == (
            "The user you promoted is not a registered account.  Any rank changes are "
            "temporary and not stored in the database."
        )
        await user.emit("setChannelRank", {"name": "guest", "rank": 1})  # rank 2 < 3: silent
        assert [n for n, _ in await user.quiet(0.3) if n == "channelRankFail"] == []
        assert [(u.name, u.rank) for u in server.channel_state("lobby").users] == [
            ("admin1", 3),
            ("user1", 2),
            ("guest", 2),
        ]
        for client in (admin, user, guest):
            await client.close()


async def test_voteskip_counts_follow_cytubes_update_rules() -> None:
    # voteskip.js update(), measured on CyTube 3.86: an AFK change re-counts an open vote (and can pass
    # it), the passing vote sends no {count, need} of its own (whisper, then {0, 0}), and counts go
    # out BEFORE the AFK meta.
    media = {("yt", "a"): ("A", 60), ("yt", "b"): ("B", 60), ("yt", "c"): ("C", 60)}
    server = FakeCytubeServer(limits=LIMITS, playback=FAST, media=media, accounts={"mod": "pw"},
                              global_ranks={"mod": 2})
    async with server:
        mod = await joined(server, "mod", "10.0.0.1", password="pw")  # sees voteskip counts (1.5)
        one = await joined(server, "one", "10.0.0.2")
        two = await joined(server, "two", "10.0.0.3")
        for media_id in ("a", "b", "c"):
            await mod.emit("queue", {"id": media_id, "type": "yt", "pos": "end", "temp": False})
        await mod.wait_for("queue", lambda d: d["item"]["media"]["id"] == "c")
        mark = len(mod.events)
        await one.emit("voteskip")  # 1 of 3 eligible: need 2
        await mod.wait_for("voteskip", lambda d: d == {"count": 1, "need": 2}, after=mark)
        await two.emit("chatMsg", {"msg": "/afk", "meta": {}})  # 2 eligible now: need 1, so it passes
        await mod.wait_for("setAFK", after=mark)
        first = watched(mod.events[mark:])
        mark = len(mod.events)
        await two.emit("chatMsg", {"msg": "back", "meta": {}})  # 3 eligible again
        await mod.wait_for("setAFK", after=mark)
        await one.emit("voteskip")
        await mod.wait_for("voteskip", lambda d: d == {"count": 1, "need": 2}, after=mark)
        await two.emit("voteskip")  # the passing vote
        await mod.wait_for("changeMedia", after=mark)
        changed = max(i for i, (name, _) in enumerate(mod.events) if name == "changeMedia")
        await mod.wait_for("voteskip", after=changed)  # the {0, 0} that follows every media change
        second = watched(mod.events[mark:])
        for client in (mod, one, two):
            await client.close()
    passed = ("[voteskip] Voteskip passed: {} skipped; eligible voters: {} = total (3) - AFK ({}) - "
              "no permission (0); ratio = 0.5")
    assert first == ["voteskip 1/2", passed.format("1/2", 2, 1), "voteskip 0/0", "changeMedia",
                     "voteskip 0/0", "setAFK"]
    assert second == ["setAFK", "voteskip 1/2", passed.format("2/3", 3, 0), "voteskip 0/0", "changeMedia",
                      "voteskip 0/0"]


def watched(events: list[tuple[str, object]]) -> list[str]:
    """The voteskip counts, the [voteskip] whisper, media changes and AFK changes, in order."""
    out = []
    for name, data in events:
        if name == "voteskip" and isinstance(data, dict):
            out.append(f"voteskip {data['count']}/{data['need']}")
        elif name == "chatMsg" and isinstance(data, dict) and data["username"] == "[voteskip]":
            out.append(f"[voteskip] {data['msg']}")
        elif name in {"changeMedia", "setAFK"}:
            out.append(name)
    return out
