from __future__ import annotations

import pytest
from plugin_fakes import FakeSend, running_host, wait_for

from daz.errors import ConfigError
from daz.plugins.greeter import GreeterPlugin, GreetLimiter
from daz.testing import FakeClock


def test_limiter_per_user_and_burst() -> None:
    lim = GreetLimiter(per_user_seconds=100, burst=2, window_seconds=10)
    assert lim.allow("r", "a", 0)
    assert not lim.allow("r", "a", 50)  # same user again too soon
    assert lim.allow("r", "b", 1)
    assert not lim.allow("r", "c", 2)  # burst of 2 per 10 s used up
    assert lim.allow("other", "c", 2)  # rooms are limited separately
    assert lim.allow("r", "c", 11)
    assert lim.allow("r", "a", 101)


def test_message_placeholders_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.greeter: 1 problem"):
        GreeterPlugin({"message": "hi {nick}"})
    assert GreeterPlugin({"message": "hi {user} in {room}"}).settings.burst == 3


async def test_greets_new_joins_but_not_the_userlist_or_itself() -> None:
    clock = FakeClock()
    send = FakeSend()
    async with running_host({"greeter": {"burst": 5}}, clock=clock, send=send) as (_, bus, _):
        bus.publish("cytube.user.joined", {"room": "lobby", "event": {"name": "old"}, "backlog": True})
        bus.publish("room.ready", {"room": "lobby", "user": "DazBot"})
        await bus.drain()
        bus.publish("cytube.user.joined", {"room": "lobby", "event": {"name": "dazbot"}})
        bus.publish("cytube.user.joined", {"room": "lobby", "event": {"name": "zoe"}})
        bus.publish("cytube.user.joined", {"room": "lobby", "event": {"name": "zoe"}})
        await wait_for(lambda: len(send.sent) == 1)
        await bus.drain()
    assert send.sent == [("lobby", "Welcome, zoe!")]
