"""The ban list as CyTube 3.86 serves it (kickban.js sendBanlist/handleUnban), over real sockets: who
gets ``banlist`` and with which addresses, silence for everyone else, and ``banlistRemove`` after
``unban`` (even for an id that is gone) to ``ban``-permitted users only."""

from __future__ import annotations

from fake_kit import LIMITS

from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient
from daz.testing.fake_cytube.members import cloak

ACCOUNTS = {"mod": "pw", "boss": "pw", "member": "pw"}
TROLL_IP = "10.0.0.99"


async def joined(server: FakeCytubeServer, name: str, ip: str, room: str = "lobby") -> CytubeTestClient:
    return await CytubeTestClient.joined(server.url, name, ip=ip, password=ACCOUNTS.get(name), room=room)


async def test_banlist_goes_to_ban_ranks_cloaked_below_effective_rank_255_and_to_nobody_else() -> None:
    async with FakeCytubeServer(limits=LIMITS, registered_channels=["lobby"], accounts=ACCOUNTS) as server:
        await server.set_rank("lobby", "mod", 2)
        await server.set_rank("lobby", "boss", 255)  # a channel rank: effectiveRank = max(channel, global)
        await server.ban("lobby", name="troll", ip=TROLL_IP, reason="flood")
        mod = await joined(server, "mod", "10.0.0.1")
        boss = await joined(server, "boss", "10.0.0.2")
        member = await joined(server, "member", "10.0.0.3")  # rank 1: below ban (2)
        for client in (mod, boss, member):
            await client.emit("requestBanlist")
        seen_by_mod = await mod.wait_for("banlist")
        seen_by_boss = await boss.wait_for("banlist")
        member_heard = await member.quiet(0.3)
        for client in (mod, boss, member):
            await client.close()
    row = {"id": 1, "name": "troll", "reason": "flood", "bannedby": "[server]"}
    assert seen_by_mod == [{**row, "ip": cloak(TROLL_IP)}]
    assert cloak(TROLL_IP) != TROLL_IP
    assert seen_by_boss == [{**row, "ip": TROLL_IP}]  # the real address from effective rank 255
    assert "banlist" not in [name for name, _ in member_heard]


async def test_an_unregistered_channel_has_no_banlist_not_even_for_a_site_admin() -> None:
    site_admin = FakeCytubeServer(limits=LIMITS, accounts={"admin": "pw"}, global_ranks={"admin": 255})
    async with site_admin as server:
        admin = await CytubeTestClient.joined(server.url, "admin", ip="10.0.0.1", password="pw", room="open")
        await admin.emit("requestBanlist")
        await admin.emit("unban", {"id": 1, "name": "x"})
        heard = await admin.quiet(0.3)
        await admin.close()
    assert not {"banlist", "banlistRemove"} & {name for name, _ in heard}


async def test_unban_echoes_banlist_remove_to_ban_ranks_even_for_an_id_that_is_gone() -> None:
    async with FakeCytubeServer(limits=LIMITS, registered_channels=["lobby"], accounts=ACCOUNTS) as server:
        await server.set_rank("lobby", "mod", 2)
        await server.ban("lobby", name="troll")
        mod = await joined(server, "mod", "10.0.0.1")
        member = await joined(server, "member", "10.0.0.3")
        await mod.emit("unban", {"id": 41, "name": "ghost"})  # no such row: CyTube deletes nothing...
        stale = await mod.wait_for("banlistRemove")  # ...and confirms all the same
        mark = len(mod.events)
        await mod.emit("requestBanlist")
        still = await mod.wait_for("banlist", after=mark)
        await mod.emit("unban", {"id": 1, "name": "troll"})
        lifted = await mod.wait_for("banlistRemove", lambda d: d["id"] == 1)
        whisper = await mod.wait_for("chatMsg", lambda d: d["username"] == "[server]" and "troll" in d["msg"])
        member_heard = await member.quiet(0.3)
        mark = len(mod.events)
        await mod.emit("requestBanlist")
        after = await mod.wait_for("banlist", after=mark)
        for client in (mod, member):
            await client.close()
    assert stale == {"id": 41, "name": "ghost"}
    assert [r["id"] for r in still] == [1]
    assert lifted == {"id": 1, "name": "troll"}
    assert whisper["msg"] == "mod unbanned troll"
    assert "banlistRemove" not in [name for name, _ in member_heard]  # rank 1 < ban
    assert after == []


def test_addresses_are_cloaked_as_cytube_cloaks_them() -> None:
    # utilities.js cloakIP, checked against the real server's banlist and its own cloakIP (3.86).
    assert cloak("10.1.0.67") == "+Jk.f5d.aWs.iM7"
    assert cloak("10.1.0.66") == "+Jk.f5d.aWs.CYT"
    assert cloak("2001:db8::1") == "Ia3B:fAkd:/9bs:OS0T"
    assert cloak("::1") == "::1"  # matches neither of CyTube's patterns: left as it is


async def test_a_name_ban_bites_after_the_login_is_done_and_moderators_are_told() -> None:
    # kickban.js onUserPostJoin waits for the login: the banned account's login succeeds, everyone
    # sees it arrive (addUser, setUserRank), then it is kicked (measured on CyTube 3.86).
    accounts = {**ACCOUNTS, "troll": "pw"}
    async with FakeCytubeServer(limits=LIMITS, registered_channels=["lobby"], accounts=accounts) as server:
        await server.set_rank("lobby", "mod", 2)
        await server.ban("lobby", name="troll")
        mod = await joined(server, "mod", "10.0.0.1")
        member = await joined(server, "member", "10.0.0.3")
        mark_mod, mark_member = len(mod.events), len(member.events)
        troll = CytubeTestClient(server.url, ip=TROLL_IP)
        await troll.connect()
        await troll.join("lobby")
        await troll.wait_for("usercount")
        joined_at = len(troll.events)
        reply = await troll.login("troll", "pw")
        kick = await troll.wait_for("kick")
        await mod.wait_for("chatMsg", lambda d: "name is banned" in d["msg"], after=mark_mod)
        await member.wait_for("userLeave", after=mark_member)
        member_heard = [(n, d) for n, d in (*member.events[mark_member:], *await member.quiet(0.2))
                        if n != "usercount"]
        mod_heard = [(n, d) for n, d in mod.events[mark_mod:] if n != "usercount"]
        troll_heard = [n for n, _ in troll.events[joined_at:] if n != "usercount"]
        for client in (mod, member, troll):
            await client.close()
    assert reply == {"success": True, "name": "troll"}
    assert kick == {"reason": "You are banned from this channel."}
    assert troll_heard == [
        "rank", "login", "addUser", "rank", "setPlaylistMeta", "playlist", "setUserRank", "kick",
    ]
    assert [n for n, _ in member_heard] == ["addUser", "setUserRank", "userLeave"]
    assert [n if n != "chatMsg" else d["msg"] for n, d in mod_heard] == [
        "addUser", "troll joined (aliases: troll)", "setUserRank",
        "userLeave", "troll was kicked (name is banned)",
    ]
    # numbers as Node.js writes them: "rank":1, not 1.0
    assert type(member_heard[0][1]["rank"]) is int


async def test_whole_numbers_go_out_as_integers_as_from_node() -> None:
    # JSON.stringify writes 1, never 1.0; a Python client decodes "1.0" to a float (measured: the
    # real server's addUser/setUserRank/rank carry ints, 1.5 only for a leader).
    async with FakeCytubeServer(limits=LIMITS, registered_channels=["lobby"], accounts=ACCOUNTS) as server:
        mod = await joined(server, "mod", "10.0.0.1")
        mark = len(mod.events)
        member = await joined(server, "member", "10.0.0.3")
        added = await mod.wait_for("addUser", after=mark)
        rank = await mod.wait_for("setUserRank", lambda d: d["name"] == "member", after=mark)
        for client in (mod, member):
            await client.close()
    assert type(added["rank"]) is int
    assert type(rank["rank"]) is int
    assert [type(r) for n, r in member.events if n == "rank"] == [int, int, int]
