"""Testing a daz plugin: the pure core directly, then the whole bot against the fake CyTube server."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest
from daz_dice import DicePlugin, DiceSettings, parse_roll, roll

from daz.app import AppOptions, DazApp
from daz.config import validate_config
from daz.errors import ConfigError
from daz.testing.fake_cytube import FakeCytubeServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [("!roll", (1, 6)), ("!roll 2d6", (2, 6)), ("!roll d20", (1, 20)), ("!roll 11d6", None),
     ("!roll 2d1", None), ("!roll two", None), ("!rolled 2d6", None), ("hello", None)],
)
def test_parse_roll(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_roll(text, DiceSettings()) == expected


def test_roll_is_in_range() -> None:
    rng = random.Random(3)
    for _ in range(100):
        dice = roll(3, 6, rng)
        assert len(dice) == 3
        assert all(1 <= d <= 6 for d in dice)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        DicePlugin({"max_dice": 0})
    assert info.value.problems[0].startswith("plugins.dice.max_dice:")


async def _until(cond: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_bot_rolls_in_a_real_channel(tmp_path: Path) -> None:
    async with FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0) as server:
        config = validate_config({
            "rooms": [{"channel": "lobby", "username": "DiceBot"}],
            "cytube": {"base_url": server.url},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "health": {"enabled": False},
            "plugins": {"dice": {"max_dice": 5}},
        })
        factories = {"dice": lambda section: DicePlugin(section, rng=random.Random(7))}
        async with DazApp(config, AppOptions(plugin_factories=factories)) as app:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(app.run(stopping))
                try:
                    await _until(lambda: "DiceBot" in server.sessions("lobby"))
                    await server.say("lobby", "alice", "!roll 3d6")
                    await _until(lambda: any(r.username == "DiceBot" for r in server.chat_log("lobby")))
                finally:
                    stopping.set()
    reply = next(r.text for r in server.chat_log("lobby") if r.username == "DiceBot")
    assert reply.startswith("alice rolled 3d6: ")
    dice = [int(d) for d in reply.split(": ")[1].split(" = ")[0].split(" + ")]
    assert sum(dice) == int(reply.rsplit("= ", 1)[1])
