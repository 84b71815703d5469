"""The ban list as CyTube 3.86 serves it (kickban.js sendBanlist/handleUnban), over real sockets: who
gets ``banlist`` and with which addresses, silence for everyone else, and ``banlistRemove`` after
``unban`` (even for an id that is gone) to ``ban``-permitted users only."""

from __future__ import annotations

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient
from daz.testing.fake_cytube.members import cloak

LIMITS = CytubeLimits(guest_login_window_seconds=0.05, usercount_interval_seconds=0.2)
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
