"""More of the real server's rules, over real sockets: shuffle, requestPlaylist, smute, /clear, the
ban list, a leader leaving, hidden poll counts for moderators (../shared/cytube-protocol-actions.md)."""

from __future__ import annotations

from dataclasses import replace

from fake_kit import FAST, joined, moderated_lobby
from fake_kit import LIMITS as KIT_LIMITS

from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient

LIMITS = replace(KIT_LIMITS, queue_burst=10)
MEDIA = {("yt", f"v{i}"): (f"Video {i}", 60) for i in range(3)}


async def test_shuffle_gives_new_uids_with_the_current_item_first() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, media=MEDIA) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        for i in range(3):
            await bot.emit("queue", {"id": f"v{i}", "type": "yt", "pos": "end"})
        await bot.wait_for("queue", lambda d: d["item"]["uid"] == 2)
        await bot.emit("jumpTo", 1)
        await bot.wait_for("setCurrent", lambda d: d == 1)
        mark = len(bot.events)
        await bot.emit("shufflePlaylist")
        shuffled = await bot.wait_for("playlist", after=mark)
        assert sorted(i["uid"] for i in shuffled) == [3, 4, 5]
        assert shuffled[0]["media"]["id"] == "v1"
        assert await bot.wait_for("setCurrent", after=mark) == shuffled[0]["uid"]
        await bot.close()


async def test_request_playlist_is_limited_to_once_a_minute() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        mark = len(bot.events)
        await bot.emit("requestPlaylist")
        await bot.wait_for("playlist", after=mark)
        await bot.emit("requestPlaylist")
        error = await bot.wait_for("errorMsg")
        assert error == {
            "msg": "Get Playlist URLs is limited to 1 usage every 60 seconds.  Please try again later.",
            "code": "REQ_PLAYLIST_LIMIT_REACHED",
        }
        await bot.close()


async def test_smute_echoes_only_to_the_sender_and_moderators_and_clear_reaches_all() -> None:
    async with moderated_lobby(LIMITS) as (server, mod):
        other = await joined(server, "other", "10.0.0.2")
        troll = await joined(server, "troll", "10.0.0.3")
        await mod.emit("chatMsg", {"msg": "/smute troll", "meta": {}})
        assert (await mod.wait_for("setUserMeta"))["meta"]["smuted"] is True
        await troll.emit("chatMsg", {"msg": "spam", "meta": {}})
        assert (await troll.wait_for("chatMsg", lambda d: d["msg"] == "spam"))["meta"] == {}
        shadow = await mod.wait_for("chatMsg", lambda d: d["msg"] == "spam")
        assert shadow["meta"]["shadow"] is True
        await other.quiet(0.2)
        assert "spam" not in [d["msg"] for d in other.received("chatMsg")]
        assert "setUserMeta" not in other.names()  # a shadow mute is invisible below the mute rank
        await mod.emit("chatMsg", {"msg": "/clear", "meta": {}})
        assert await other.wait_for("clearchat") == {"clearedBy": "mod"}
        for client in (mod, other, troll):
            await client.close()


async def test_ban_list_and_unban() -> None:
    async with moderated_lobby(LIMITS) as (server, mod):
        await mod.emit("chatMsg", {"msg": "/ban gone for spam", "meta": {}})
        await mod.emit("requestBanlist")
        banlist = await mod.wait_for("banlist")
        assert banlist == [{"id": 1, "ip": "*", "name": "gone", "reason": "for spam", "bannedby": "mod"}]
        await mod.emit("unban", {"id": 1, "name": "gone"})
        assert await mod.wait_for("banlistRemove") == {"id": 1, "name": "gone"}
        async with CytubeTestClient(server.url, ip="10.0.0.5") as back:
            await back.join("lobby")
            assert (await back.login("gone"))["success"] is True
            assert "kick" not in [n for n, _ in await back.quiet(0.2)]
        await mod.close()


async def test_a_leaving_leader_hands_the_clock_back_to_the_server() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, media=MEDIA) as server:
        boss = await joined(server, "boss", "10.0.0.1")
        watcher = await joined(server, "watcher", "10.0.0.2")
        await boss.emit("queue", {"id": "v0", "type": "yt", "pos": "end"})
        await boss.emit("assignLeader", {"name": "watcher"})
        assert await watcher.wait_for("rank", lambda r: r == 1.5) == 1.5
        await watcher.emit("mediaUpdate", {"id": "v0", "currentTime": 20.0, "paused": True})
        await boss.wait_for("mediaUpdate", lambda d: d == {"currentTime": 20.0, "paused": True})
        mark = len(boss.events)
        await watcher.close()
        assert await boss.wait_for("setLeader", after=mark) == ""
        resumed = await boss.wait_for("mediaUpdate", lambda d: not d["paused"], after=mark)
        assert resumed["currentTime"] >= 20.0
        assert server.channel_state("lobby").leader is None
        await boss.close()


async def test_moderators_see_hidden_counts_with_a_question_mark() -> None:
    async with moderated_lobby(LIMITS) as (server, mod):
        guest = await joined(server, "guest", "10.0.0.2")
        await mod.emit("newPoll", {"title": "t", "opts": ["a", "b"], "obscured": True})
        await guest.wait_for("newPoll")
        await guest.emit("vote", {"option": 0})
        assert (await mod.wait_for("updatePoll"))["counts"] == ["1?", "0?"]
        assert (await guest.wait_for("updatePoll"))["counts"] == ["?", "?"]
        for client in (mod, guest):
            await client.close()


async def test_chat_is_cut_escaped_and_links_become_anchors() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        await bot.emit("chatMsg", {"msg": "see https://example.com/a?b=1&c=2 (now) <b>", "meta": {}})
        line = await bot.wait_for("chatMsg", lambda d: d["username"] == "bot")
        assert line["msg"] == (
            'see <a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">'
            "https://example.com/a?b=1&amp;c=2</a> (now) &lt;b&gt;"  # parentheses as sent (measured)
        )
        await bot.emit("chatMsg", {"msg": "<" * 400, "meta": {}})
        cut = await bot.wait_for("chatMsg", lambda d: d["msg"].startswith("&lt;"))
        assert cut["msg"] == "&lt;" * 320  # cut at 320 BEFORE escaping
        await bot.emit("chatMsg", {"msg": "/me waves", "meta": {}})
        action = await bot.wait_for("chatMsg", lambda d: d["msg"] == "waves")
        assert action["meta"] == {"addClass": "action", "action": True}
        await bot.close()


async def test_a_jump_away_from_a_temp_item_deletes_it_before_the_media_change() -> None:
    # CyTube's changeMedia waits for an asynchronous onPreMediaChange round, so the delete of the
    # old temp item goes out first (measured on 3.86: delete, setPlaylistMeta, setCurrent, changeMedia).
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        for n in range(2):
            await bot.emit("queue", {"id": f"rtmp://example.com/live/{n}", "type": "rt", "pos": "end",
                                     "temp": True, "duration": 30})
        await bot.wait_for("setPlaylistMeta", lambda d: d["count"] == 2)
        mark = len(bot.events)
        await bot.emit("jumpTo", 1)
        await bot.wait_for("changeMedia", after=mark)
        frames = [(name, data) for name, data in bot.events[mark:] if name != "usercount"][:4]
        await bot.close()
    assert [name for name, _ in frames] == ["delete", "setPlaylistMeta", "setCurrent", "changeMedia"]
    assert frames[0][1] == {"uid": 0}


async def test_queue_fail_links_and_the_media_cytube_takes_without_a_lookup() -> None:
    # utilities.js formatLink and get-info.js, measured on 3.86 (no internet needed for tw/li).
    async with FakeCytubeServer(limits=LIMITS, playback=FAST) as server:
        bot = await joined(server, "bot", "10.0.0.1")
        sent = [("yt", "dQw4w9WgXcQ"), ("zz", "q"), ("cu", "<b>no</b>"), ("tw", "!!!"), ("li", "abc"),
                ("sc", "x"), ("tw", "some_chan/extra")]
        for media_type, media_id in sent:
            await bot.emit("queue", {"id": media_id, "type": media_type, "pos": "end", "temp": True})
        await bot.wait_for("queue")
        await bot.wait_for("queueFail", lambda d: d["id"] == "x")
        fails = {d["id"]: (d["msg"], d["link"]) for d in bot.received("queueFail")}
        queued = bot.received("queue")[0]["item"]["media"]
        await bot.close()
    assert fails == {
        "dQw4w9WgXcQ": (fails["dQw4w9WgXcQ"][0], "https://youtu.be/dQw4w9WgXcQ"),
        "q": ("Unknown media type &#39;zz&#39;", ""),
        "<b>no</b>": ("Invalid embed.  Input must be an &lt;iframe&gt; tag", ""),
        "!!!": ("Invalid ID", "https://twitch.tv/!!!"),
        "abc": ("Invalid ID", "https://livestream.com/abc"),
        "x": ("Soundcloud is not supported anymore due to requiring OAuth but not accepting new API key "
              "registrations.", "x"),
    }
    assert queued == {"id": "some_chan", "title": "Twitch.tv - some_chan", "seconds": 0, "duration": "--:--",
                      "type": "tw", "meta": {}}


# (sent, msg, meta) as CyTube 3.86 broadcast them in a registered channel (measured 2026-12-02)
CHAT_RENDERING = [
    ("b *w* _i_ `c` ~~s~~ [sp]h[/sp] [SP]u[/SP]",
     'b <strong>w</strong> <em>i</em> <code>c</code> <s>s</s> <span class="spoiler">h</span> '
     '<span class="spoiler">u</span>', {}),
    ("q \"x\" 'y' (z) &amp; &#39;", "q \"x\" 'y' (z) &amp;amp; &amp;#39;", {}),
    ("5 * 3 * 2", "5 <strong> 3 </strong> 2", {}),
    ("a_b_c http://e.com/a_b_(c)?d='1'&e=\"2\" *x*",
     "a<em>b</em>c <a href=\"http://e.com/a_b_(c)?d='1'&amp;e=&quot;2&quot;\" target=\"_blank\" "
     "rel=\"noopener noreferrer\">http://e.com/a_b_(c)?d='1'&amp;e=\"2\"</a> <strong>x</strong>", {}),
    ("/me", "", {"addClass": "action", "action": True}),
    ("/sp *b*", "<strong>b</strong>", {"addClass": "spoiler"}),
    (">q \"x\"", "&gt;q \"x\"", {"addClass": "greentext"}),
    ("/say hi", "hi", {"addClass": "shout", "addClassToNameAndTimestamp": True, "forceShowName": True}),
]


async def test_chat_is_rendered_as_cytube_renders_it() -> None:
    async with FakeCytubeServer(limits=LIMITS, playback=FAST, accounts={"boss": "pw"},
                                registered_channels=["lobby", "other"]) as server:
        await server.set_rank("lobby", "boss", 5)
        boss = await joined(server, "boss", "10.0.0.1", password="pw")
        for text, _, _ in CHAT_RENDERING:
            await boss.emit("chatMsg", {"msg": text, "meta": {}})
        await boss.wait_for("chatMsg", lambda d: d["msg"] == "hi")  # the last one
        got = [(d["msg"], d["meta"]) for d in boss.received("chatMsg") if d["username"] == "boss"]
        await boss.close()
        server.register_channel("other", registered=False)  # no filters in an unregistered channel
        guest = await joined(server, "guest", "10.0.0.2", room="other")
        await guest.emit("chatMsg", {"msg": "b *w* (p) /say x", "meta": {}})
        plain = await guest.wait_for("chatMsg", lambda d: d["username"] == "guest")
        await guest.emit("chatMsg", {"msg": "/say hi", "meta": {}})  # a guest is below 1.5: silence
        heard = await guest.quiet(0.3)
        await guest.close()
    assert got == [(msg, meta) for _, msg, meta in CHAT_RENDERING]
    assert plain["msg"] == "b *w* (p) /say x"
    assert "chatMsg" not in [name for name, _ in heard]
