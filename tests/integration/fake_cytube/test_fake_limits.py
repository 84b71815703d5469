"""The fake CyTube server's limits over real sockets, each pinned to the real server's rule.

Numbers are shrunk through ``CytubeLimits`` so the tests are fast; the rules are CyTube's
(../shared/cytube-protocol.md, "Rate limits", "Login rules", "Kicks and refusals").
"""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient

GUEST_WINDOW = 0.6


async def _connect(server: FakeCytubeServer, ip: str) -> CytubeTestClient:
    client = CytubeTestClient(server.url, ip=ip)
    await client.connect()
    return client


async def test_connection_bucket_refuses_past_the_burst_and_a_refusal_costs_no_token() -> None:
    async with FakeCytubeServer(limits=CytubeLimits(bucket_size=2, refill_seconds=0.5)) as server:
        started = time.monotonic()
        clients = [await _connect(server, "10.0.0.1") for _ in range(2)]
        for _ in range(3):  # three refusals in a row: none of them may eat the next token
            with pytest.raises(socketio.exceptions.ConnectionError, match="Rate limit exceeded"):
                await _connect(server, "10.0.0.1")
        other_ip = await _connect(server, "10.0.0.2")  # a bucket per IP
        await asyncio.sleep(max(0.0, 0.55 - (time.monotonic() - started)))
        clients.append(await _connect(server, "10.0.0.1"))  # exactly one token came back
        with pytest.raises(socketio.exceptions.ConnectionError, match="Rate limit exceeded"):
            await _connect(server, "10.0.0.1")
        assert server.refused_connects == 4
        assert server.connections_total == 4
        for client in [*clients, other_ip]:
            await client.close()


async def test_socket_cap_accepts_then_kicks_the_extra_socket_and_it_cost_a_token() -> None:
    limits = CytubeLimits(bucket_size=3, refill_seconds=60, max_sockets_per_ip=2)
    async with FakeCytubeServer(limits=limits) as server:
        first, second = await _connect(server, "10.0.0.1"), await _connect(server, "10.0.0.1")
        extra = await _connect(server, "10.0.0.1")  # accepted ...
        kick = await extra.wait_for("kick")  # ... then kicked and disconnected
        assert kick == {"reason": "Too many connections from your IP address"}
        await asyncio.wait_for(extra.disconnected.wait(), 5)
        assert extra.names() == ["kick"]  # no `rank -1`: CyTube kicks it before making a user of it
        assert first.connected
        assert second.connected
        with pytest.raises(socketio.exceptions.ConnectionError, match="Rate limit exceeded"):
            await _connect(server, "10.0.0.1")  # the kicked socket spent the third token
        assert server.kicks_by_reason() == {"Too many connections from your IP address": 1}
        await first.close()
        await second.close()
        await extra.close()


async def test_socket_cap_frees_a_slot_when_a_socket_closes() -> None:
    limits = CytubeLimits(bucket_size=5, refill_seconds=60, max_sockets_per_ip=1)
    async with FakeCytubeServer(limits=limits) as server:
        first = await _connect(server, "10.0.0.1")
        await first.close()
        await asyncio.sleep(0.1)
        second = await _connect(server, "10.0.0.1")
        await second.quiet(0.2)
        assert "kick" not in second.names()
        assert server.kicks == []
        await second.close()


async def test_guest_window_counts_from_the_last_successful_guest_login_per_ip() -> None:
    limits = CytubeLimits(guest_login_window_seconds=GUEST_WINDOW)
    async with FakeCytubeServer(limits=limits) as server:
        one, two, other = [await _connect(server, ip) for ip in ("10.0.0.1", "10.0.0.1", "10.0.0.2")]
        for client in (one, two, other):
            await client.join("lobby")
        assert (await one.login("guest1"))["success"] is True
        succeeded = time.monotonic()
        refused = await two.login("guest2")
        assert refused == {
            "success": False,
            "error": f"Guest logins are restricted to one per IP address per {GUEST_WINDOW:g} seconds.",
        }
        assert (await other.login("guest3"))["success"] is True  # another IP has its own window
        await asyncio.sleep(GUEST_WINDOW / 2)
        assert (await two.login("guest2"))["success"] is False  # a refusal does not restart the window
        await asyncio.sleep(max(0.0, GUEST_WINDOW + 0.05 - (time.monotonic() - succeeded)))
        assert (await two.login("guest2"))["success"] is True
        assert [r.error.startswith("Guest logins") for r in server.login_refusals] == [True, True]
        for client in (one, two, other):
            await client.close()


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "bad name!",
            "Invalid username.  Usernames must be 1-20 characters long and consist only of "
            "characters a-z, A-Z, 0-9, -, or _.",
        ),
        (
            "x" * 21,
            "Invalid username.  Usernames must be 1-20 characters long and consist only of "
            "characters a-z, A-Z, 0-9, -, or _.",
        ),
        ("Admin", "That username is reserved."),
        ("Owner", "That username is reserved."),
        ("Registered1", "That username is registered."),
        ("ALICE", "That name is already in use on this channel."),
    ],
)
async def test_guest_name_rules_with_exact_messages(name: str, error: str) -> None:
    async with FakeCytubeServer(accounts={"registered1": "pw"}) as server:
        async with (
            CytubeTestClient(server.url, ip="10.0.0.1") as alice,
            CytubeTestClient(server.url, ip="10.0.0.2") as bob,
        ):
            await alice.join("lobby")
            assert (await alice.login("alice"))["success"] is True
            await bob.join("lobby")
            assert await bob.login(name) == {"success": False, "error": error}
            assert (await bob.login("bob"))["success"] is True  # a refusal opened no guest window
        assert [(r.name, r.error, r.guest) for r in server.login_refusals] == [(name, error, True)]


async def test_registered_login_refusals_and_the_duplicate_login_kick() -> None:
    async with FakeCytubeServer(accounts={"DazBot": "right"}) as server:
        async with CytubeTestClient(server.url) as old, CytubeTestClient(server.url) as new:
            await old.join("lobby")
            assert await old.login("nobody", "pw") == {"success": False, "error": "User does not exist"}
            assert await old.login("dazbot", "wrong") == {
                "success": False,
                "error": "Invalid username/password combination",
            }
            assert await old.login("dazbot", "right") == {"success": True, "name": "DazBot"}
            await new.join("lobby")
            assert (await new.login("DAZBOT", "right"))["success"] is True
            assert await old.wait_for("kick") == {"reason": "Duplicate login"}
            await asyncio.wait_for(old.disconnected.wait(), 5)
            assert new.connected
        assert server.duplicate_login_kicks == 1
        assert [r.error for r in server.login_refusals] == [
            "User does not exist",
            "Invalid username/password combination",
        ]


async def test_invalid_channel_name_gets_error_then_kick() -> None:
    async with FakeCytubeServer() as server, CytubeTestClient(server.url) as client:
        await client.join("no spaces allowed")
        error = await client.wait_for("errorMsg")
        assert error["msg"].startswith("Invalid channel name.  Channel names may consist of 1-30")
        assert await client.wait_for("kick") == {"reason": "Invalid channel name"}
        await asyncio.wait_for(client.disconnected.wait(), 5)


async def test_bans_kick_present_users_and_refuse_them_on_join() -> None:
    async with FakeCytubeServer(registered_channels=["lobby"]) as server:
        async with (
            CytubeTestClient(server.url, ip="10.0.0.1") as eve,
            CytubeTestClient(server.url, ip="10.0.0.2") as mallory,
        ):
            await eve.join("lobby")
            await eve.login("eve")
            await mallory.join("lobby")
            await mallory.login("mallory")
            await server.ban("lobby", name="eve")
            assert await eve.wait_for("kick") == {"reason": "You're banned!"}
            await server.ban("lobby", ip="10.0.0.2")
            assert await mallory.wait_for("kick") == {"reason": "You're banned!"}
        async with CytubeTestClient(server.url, ip="10.0.0.3") as eve_again:
            await eve_again.join("lobby")  # a name ban bites at login
            await eve_again.login("Eve")
            assert await eve_again.wait_for("kick") == {"reason": "You are banned from this channel."}
        async with CytubeTestClient(server.url, ip="10.0.0.2") as same_ip:
            await same_ip.join("lobby")  # an IP ban bites at join, before any login
            assert await same_ip.wait_for("kick") == {"reason": "You are banned from this channel."}
            assert "setPermissions" not in same_ip.names()
        server.unban("lobby", name="eve")
        async with CytubeTestClient(server.url, ip="10.0.0.4") as forgiven:
            await forgiven.join("lobby")
            assert (await forgiven.login("eve"))["success"] is True
            assert "kick" not in [name for name, _ in await forgiven.quiet(0.2)]
        assert server.kicks_by_reason() == {"You're banned!": 2, "You are banned from this channel.": 2}


async def test_unregistered_channels_have_no_bans() -> None:
    async with FakeCytubeServer() as server:
        with pytest.raises(ValueError, match="not registered"):
            await server.ban("lobby", name="eve")


async def test_limits_off_lets_everything_through() -> None:
    limits = CytubeLimits.off()
    async with FakeCytubeServer(limits=limits) as server:
        clients = [await _connect(server, "10.0.0.1") for _ in range(12)]
        for i, client in enumerate(clients[:3]):
            await client.join("lobby")
            assert (await client.login(f"guest{i}"))["success"] is True
        assert server.refused_connects == 0
        assert server.kicks == []
        for client in clients:
            await client.close()


def test_limits_reject_a_nonsense_number_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"CytubeLimits\.refill_seconds must be a positive number"):
        CytubeLimits(refill_seconds=0)


async def test_every_frame_a_client_sends_is_recorded() -> None:
    async with FakeCytubeServer() as server, CytubeTestClient(server.url, ip="10.0.0.9") as client:
        await client.join("lobby")
        await client.login("watcher")
        await client.emit("noSuchEvent", {"x": 1})
        await client.emit("chatMsg", {"msg": "hi", "meta": {}})
        await client.wait_for("chatMsg")
        sent = [a.event for a in server.actions("lobby")]
        assert sent == ["joinChannel", "login", "noSuchEvent", "chatMsg"]
        assert server.actions(event="noSuchEvent")[0].data == {"x": 1}
        assert server.actions(event="noSuchEvent")[0].ip == "10.0.0.9"


def test_limits_are_on_by_default_with_cytubes_numbers() -> None:
    server = FakeCytubeServer()
    assert server.limits.enabled
    limits = server.limits
    assert (limits.bucket_size, limits.refill_seconds, limits.max_sockets_per_ip) == (5, 10.0, 10)
    assert limits.guest_login_window_seconds == 60.0
    assert (limits.chat_burst, limits.chat_rate_per_second) == (20, 10.0)
    assert (limits.queue_burst, limits.queue_rate_per_second) == (3, 1.0)
    assert limits.usercount_interval_seconds == 10.0


async def test_the_chat_limiter_gives_no_fresh_burst_after_a_pause_shorter_than_its_cooldown() -> None:
    # CyTube's newRateLimiter is a counter, not a token bucket: once the burst is spent, one line per
    # 1/rate s passes until a full cooldown without a passing line (measured on 3.86 with burst 20,
    # 10/s: 20 at once, 1 s of quiet, 10 at once -> 1 passed, 9 got cooldown).
    limits = CytubeLimits(chat_burst=4, chat_rate_per_second=1, chat_quiet_reset_seconds=30,
                          guest_login_window_seconds=0.05, usercount_interval_seconds=0.2)
    async with FakeCytubeServer(limits=limits) as server:
        client = await CytubeTestClient.joined(server.url, "talker", ip="10.0.0.1")
        for n in range(4):
            await client.emit("chatMsg", {"msg": f"a{n}", "meta": {}})
        await client.wait_for("chatMsg", lambda d: d["msg"] == "a3")
        await asyncio.sleep(3.0)  # a token bucket refilling 1/s would let 3 of the next 4 through
        mark = len(client.events)
        for n in range(4):
            await client.emit("chatMsg", {"msg": f"b{n}", "meta": {}})
        await client.wait_for("chatMsg", lambda d: d["msg"] == "b0", after=mark)
        heard = [(name, data) for name, data in (*client.events[mark:], *await client.quiet(0.3))]
        await client.close()
    assert [data["msg"] for name, data in heard if name == "chatMsg"] == ["b0"]
    assert [name for name, _ in heard].count("cooldown") == 3
