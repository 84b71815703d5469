from __future__ import annotations

import pytest
from plugin_fakes import FakeSend, chat, running_host, wait_for

from daz.errors import ConfigError
from daz.plugins.commands import CommandsPlugin, Cooldown, format_duration, parse_command
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


def test_cooldown_is_per_user() -> None:
    cd = Cooldown(3.0)
    assert cd.allow("a", 0.0)
    assert not cd.allow("a", 2.9)
    assert cd.allow("b", 2.9)
    assert cd.allow("a", 3.0)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        CommandsPlugin({"prefix": "", "cooldown_seconds": -1, "colour": "red"})
    problems = "\n".join(info.value.problems)
    assert "plugins.commands.prefix:" in problems
    assert "plugins.commands.cooldown_seconds:" in problems
    assert "plugins.commands.colour: unknown field" in problems


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
        await clock.advance(5)
        bus.publish("cytube.chat", chat("lobby", "alice", "%status", 3))
        await wait_for(lambda: len(send.sent) == 2)
    assert send.sent[1] == ("lobby", "status: no status source")
