from __future__ import annotations

import asyncio
from typing import Any

import pytest
from plugin_fakes import FakeSend, chat, running_host, wait_for

from daz.cytube.channel import ChannelState, apply
from daz.cytube.protocol import UserJoined, UserList
from daz.errors import ConfigError, DazError
from daz.plugins.base import PluginContext
from daz.plugins.command_framework import Arg, Command, CommandRouter, Invocation
from daz.plugins.commands import CommandsPlugin, format_duration, parse_command
from daz.testing import FakeClock


@pytest.mark.parametrize(
    ("text", "expected"),
    [("!status", ("status", "")), ("  !Help me now ", ("help", "me now")), ("!", None),
     ("status", None), ("!!x", None), ("!é", None), ("?uptime", None)],
)
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text, "!") == expected


def test_parse_command_with_a_longer_prefix() -> None:
    assert parse_command("$$uptime", "$$") == ("uptime", "")
    assert parse_command("$uptime", "$$") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (61, "1m 1s"), (3600, "1h 0m 0s"), (93784, "1d 2h 3m 4s"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        CommandsPlugin({"prefix": "", "cooldown_seconds": -1, "colour": "red"})
    problems = "\n".join(info.value.problems)
    assert "plugins.commands.prefix:" in problems
    assert "plugins.commands.cooldown_seconds:" in problems
    assert "plugins.commands.colour: unknown field" in problems


def pm(room: str, user: str, text: str) -> dict[str, Any]:
    return {"room": room, "event": {"username": user, "text": text, "to": "daz"}, "own": False}


class DjLike:
    """A second plugin registering its own commands on the shared registry."""

    name = "dj"
    depends_on: tuple[str, ...] = ("commands",)

    def __init__(self, config: Any, ranks: dict[str, float]) -> None:
        self.ranks = ranks
        self.calls: list[dict[str, Any]] = []

    async def setup(self, ctx: PluginContext) -> None:
        router = CommandRouter(ctx, rank_of=lambda room, user: self.ranks.get(user))
        router.add(Command("skip", self.skip, "skip the video", min_rank=2))
        router.add(Command("add", self.add, "queue a video", aliases=("a",), min_rank=1,
                           args=(Arg("type", choices=("yt", "rt")), Arg("id")), reply="pm"))
        router.attach()

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    def skip(self, call: Invocation) -> str:
        self.calls.append({"skip": call.user})
        return "skipped"

    async def add(self, call: Invocation) -> None:
        if call.args["id"] == "refused":
            raise DazError("permission playlistadd needs rank 1.5")
        self.calls.append(call.args)
        await call.reply(f"queued {call.args['id']}")


async def test_answers_uptime_help_and_status_and_ignores_backlog_and_own() -> None:
    clock = FakeClock()
    send = FakeSend()

    async def status() -> str:
        return "ok: lobby ready, queue 0"

    async with running_host({"commands": {"cooldown_seconds": 0}}, clock=clock, send=send,
                            status=status) as (_, bus, _):
        await clock.advance(3723)
        bus.publish("cytube.chat", chat("lobby", "alice", "!uptime", 1))
        await wait_for(lambda: len(send.sent) == 1)
        assert send.sent[0] == ("lobby", "up 1h 2m 3s")
        bus.publish("cytube.chat", chat("lobby", "old", "!uptime", 2, backlog=True))
        bus.publish("cytube.chat", chat("lobby", "daz", "!uptime", 3, own=True))
        bus.publish("cytube.chat", chat("lobby", "bob", "hello !status", 4))
        bus.publish("cytube.chat", chat("lobby", "bob", "!nosuch", 5))
        bus.publish("cytube.chat", chat("other", "carol", "!status", 6))
        await wait_for(lambda: len(send.sent) == 2)
        bus.publish("cytube.chat", chat("lobby", "carol", "!help", 7))
        await wait_for(lambda: len(send.sent) == 3)
        await bus.drain()
    assert send.sent[1] == ("other", "status: ok: lobby ready, queue 0")
    assert send.sent[2][1].startswith("commands: !help (")
    assert "!uptime" in send.sent[2][1]
    assert len(send.sent) == 3


async def test_cooldown_applies_in_the_plugin() -> None:
    clock = FakeClock()
    send = FakeSend()
    async with running_host({"commands": {"cooldown_seconds": 5, "prefix": "%"}}, clock=clock,
                            send=send) as (_, bus, _):
        bus.publish("cytube.chat", chat("lobby", "alice", "%uptime", 1))
        await wait_for(lambda: len(send.sent) == 1)
        bus.publish("cytube.chat", chat("lobby", "alice", "%uptime", 2))
        await bus.drain()
        assert len(send.sent) == 1
        bus.publish("cytube.chat", chat("lobby", "alice", "%status", 3))  # another command: its own
        await wait_for(lambda: len(send.sent) == 2)
        await clock.advance(5)
        bus.publish("cytube.chat", chat("lobby", "alice", "%uptime", 3))
        await wait_for(lambda: len(send.sent) == 3)
    assert send.sent[1] == ("lobby", "status: no status source")


async def test_room_cooldown_holds_everyone_back() -> None:
    clock = FakeClock()
    send = FakeSend()
    async with running_host({"commands": {"cooldown_seconds": 0, "room_cooldown_seconds": 10}},
                            clock=clock, send=send) as (_, bus, _):
        bus.publish("cytube.chat", chat("lobby", "alice", "!uptime", 1))
        await wait_for(lambda: len(send.sent) == 1)
        bus.publish("cytube.chat", chat("lobby", "bob", "!uptime", 2))
        bus.publish("cytube.chat", chat("other", "bob", "!uptime", 3))
        await wait_for(lambda: len(send.sent) == 2)
        await bus.drain()
        await clock.advance(10)
        bus.publish("cytube.chat", chat("lobby", "bob", "!uptime", 4))
        await wait_for(lambda: len(send.sent) == 3)
    assert [room for room, _ in send.sent] == ["lobby", "other", "lobby"]


async def test_help_lists_only_what_the_caller_may_use_across_plugins() -> None:
    ranks = {"mod": 2.0, "reg": 1.0}
    send = FakeSend()
    factories = {"commands": lambda s: CommandsPlugin(s, rank_of=lambda room, user: ranks.get(user)),
                 "dj": lambda s: DjLike(s, ranks)}
    async with running_host({"commands": {"cooldown_seconds": 0}, "dj": {}}, send=send,
                            factories=factories) as (_, bus, _):
        for count, user in enumerate(("guest", "reg", "mod"), start=1):
            bus.publish("cytube.chat", chat("lobby", user, "!help", 1))
            await wait_for(lambda n=count: len(send.sent) == n)
    guest, reg, mod = (text for _, text in send.sent)
    assert "!uptime" in guest
    assert "!add" not in guest
    assert "!skip" not in guest
    assert "!add <yt|rt> <id> (queue a video)" in reg
    assert "!skip" not in reg
    assert "!skip (skip the video)" in mod
    assert "!add" in mod


async def test_rank_usage_pm_replies_and_handler_errors() -> None:
    ranks = {"mod": 2.0, "reg": 1.0}
    send = FakeSend()
    dj = DjLike({}, ranks)
    factories = {"commands": CommandsPlugin, "dj": lambda s: dj}
    async with running_host({"commands": {}, "dj": {}}, send=send, factories=factories) as (_, bus, _):
        bus.publish("cytube.chat", chat("lobby", "reg", "!skip", 1))
        await wait_for(lambda: len(send.pms) == 1)
        assert send.pms[0] == ("lobby", "reg", "!skip needs rank 2 (you have 1)")
        bus.publish("cytube.chat", chat("lobby", "reg", "!skip", 2))  # told once, not on every try
        bus.publish("cytube.chat", chat("lobby", "mod", "!skip", 3))
        await wait_for(lambda: len(send.sent) == 1)
        assert send.sent[0] == ("lobby", "skipped")
        bus.publish("cytube.chat", chat("lobby", "reg", "!a zz abc", 4))
        await wait_for(lambda: len(send.pms) == 2)
        assert send.pms[1] == ("lobby", "reg", "usage: !add <yt|rt> <id> (type must be one of yt, rt)")
        bus.publish("cytube.chat", chat("lobby", "reg", "!add yt abc", 5))
        await wait_for(lambda: len(send.pms) == 3)
        assert send.pms[2] == ("lobby", "reg", "queued abc")  # a "pm" command answers by PM
        bus.publish("cytube.pm", pm("lobby", "mod", "!skip"))
        await wait_for(lambda: len(send.pms) == 4)
        assert send.pms[3] == ("lobby", "mod", "skipped")  # asked by PM, answered by PM
        bus.publish("cytube.chat", chat("lobby", "reg", "!add rt refused", 6))
        await wait_for(lambda: len(send.pms) == 5)
        assert send.pms[4] == ("lobby", "reg", "permission playlistadd needs rank 1.5")
        await bus.drain()
    assert send.sent == [("lobby", "skipped")]
    assert dj.calls == [{"skip": "mod"}, {"type": "yt", "id": "abc"}, {"skip": "mod"}]


async def test_unknown_callers_count_as_guests() -> None:
    send = FakeSend()
    factories = {"commands": CommandsPlugin, "dj": lambda s: DjLike(s, {})}
    async with running_host({"commands": {}, "dj": {}}, send=send, factories=factories) as (_, bus, _):
        bus.publish("cytube.chat", chat("lobby", "stranger", "!add yt abc", 1))
        await wait_for(lambda: len(send.pms) == 1)
    assert send.pms[0] == ("lobby", "stranger", "!add needs rank 1 (you have 0)")


class SendWithChannel(FakeSend):
    """A send API that also serves the rooms' replicas (as ``RoomManager`` does)."""

    def __init__(self, state: ChannelState) -> None:
        super().__init__()
        self.state = state

    def channel(self, room: str) -> ChannelState | None:
        return self.state if room == "lobby" else None


async def test_the_callers_rank_comes_from_the_channel_replica() -> None:
    state = apply(ChannelState(), UserList((UserJoined("mod", 2), UserJoined("reg", 1))))
    send = SendWithChannel(state)
    factories = {"commands": CommandsPlugin, "dj": lambda s: DjLike(s, {})}
    dj_ranks_ignored = {"commands": {}, "dj": {}}
    async with running_host(dj_ranks_ignored, send=send, factories=factories) as (host, bus, _):
        router = CommandRouter(PluginContext(name="probe", bus=bus, clock=FakeClock(), metrics=host.metrics,
                                             log=None, channels=send))
        assert router.rank("lobby", "MOD") == 2
        assert router.rank("lobby", "reg") == 1
        assert router.rank("lobby", "stranger") == 0  # unknown: a guest
        assert router.rank("other", "mod") == 0  # no replica for that room: a guest
        bus.publish("cytube.chat", chat("lobby", "mod", "!help", 1))
        await wait_for(lambda: len(send.sent) == 1)
    assert "!skip (skip the video)" in send.sent[0][1]  # rank 2, read from the replica


class CooledDj(DjLike):
    """``!add`` with a per-user and a per-room cooldown, as a real DJ bot would have it."""

    async def setup(self, ctx: PluginContext) -> None:
        router = CommandRouter(ctx, rank_of=lambda room, user: self.ranks.get(user))
        router.add(Command("add", self.add, "queue a video", min_rank=1, user_cooldown=10,
                           room_cooldown=5, args=(Arg("type", choices=("yt", "rt")), Arg("id")),
                           reply="pm"))
        router.attach()


async def test_a_usage_error_is_answered_and_does_not_use_up_the_cooldowns() -> None:
    # A caller who mistypes and corrects at once must be served: a call that never ran does not
    # start the per-user or per-room cooldown (the correction would be silently ignored for 10 s).
    clock = FakeClock()
    send = FakeSend()
    dj = CooledDj({}, {"reg": 1.0, "other": 1.0})
    factories = {"commands": CommandsPlugin, "dj": lambda s: dj}
    async with running_host({"commands": {}, "dj": {}}, clock=clock, send=send,
                            factories=factories) as (_, bus, _):
        bus.publish("cytube.chat", chat("lobby", "reg", "!add zz abc", 1))
        await wait_for(lambda: len(send.pms) == 1)
        bus.publish("cytube.chat", chat("lobby", "reg", "!add yt abc", 2))
        await wait_for(lambda: len(send.pms) == 2)
        bus.publish("cytube.chat", chat("lobby", "reg", "!add yt again", 3))  # now it cools down
        bus.publish("cytube.chat", chat("lobby", "other", "!add yt room", 4))  # and so does the room
        await bus.drain()
    assert send.pms == [("lobby", "reg", "usage: !add <yt|rt> <id> (type must be one of yt, rt)"),
                        ("lobby", "reg", "queued abc")]
    assert dj.calls == [{"type": "yt", "id": "abc"}]
