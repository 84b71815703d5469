"""A plugin's chat text never runs as a CyTube chat command: the whole bot (DazApp) against the fake
CyTube server over real sockets, CyTube's limits on, the bot an owner (a command WOULD kick/ban)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.cytube.test_actions_live import FAST, ROOM, Bot, bot

from daz.errors import SendInvalid
from daz.events.bus import Event
from daz.testing.fake_cytube import FakeCytubeServer


def _owner_server() -> FakeCytubeServer:
    return FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                            registered_channels=[ROOM])


def _bot_lines(b: Bot) -> list[str]:
    return [str(a.data.get("msg")) for a in b.server.actions(ROOM, "chatMsg") if a.name == "DazBot"]


def _delivered(events: list[Event]) -> set[str]:
    return {str(e.data["key"]) for e in events if e.name == "room.line.delivered"}


def _sent(b: Bot, outcome: str) -> float:
    value = b.app.metrics.registry.get_sample_value("daz_messages_sent_total",
                                                     {"room": ROOM, "outcome": outcome})
    return value or 0.0


async def test_echoed_command_text_arrives_as_chat_kicks_nobody_and_is_confirmed_once(tmp_path: Path) -> None:
    server = _owner_server()
    async with server:
        await server.set_rank(ROOM, "DazBot", 3)
        await server.add_user(ROOM, "alice", rank=0)
        await server.add_user(ROOM, "bob", rank=0)
        async with bot(tmp_path, server, account=("DazBot", "pw")) as b:
            assert b.probe.ctx is not None
            assert b.probe.ctx.rooms is not None
            channel = b.probe.ctx.channel(ROOM)
            assert channel is not None
            assert channel.self_rank == 3  # it may kick: a line run as a command would
            events: list[Event] = []
            b.probe.ctx.subscribe("room.line.*", events.append)
            # What a say/translate plugin would echo from users: a command, and a long line whose
            # continuation starts with one.
            long_line = "x" * 318 + " /ban bob and more words"
            keys = await b.probe.ctx.rooms.send_chat(ROOM, "/kick alice")
            keys += await b.probe.ctx.rooms.send_chat(ROOM, long_line)
            assert len(keys) == 3
            await b.until(lambda: _delivered(events) == set(keys))
            texts = [r.text for r in server.chat_log(ROOM) if r.username == "DazBot"]
            lines = _bot_lines(b)
            delivered, timeouts = _sent(b, "delivered"), _sent(b, "timeout")
            present = {m.name for m in server.channel(ROOM).members}
    assert server.kicks == []
    assert {"alice", "bob"} <= present
    assert [t.strip() for t in texts] == ["/kick alice", "x" * 318, "/ban bob and more words"]
    # Each line went out once and its own echo confirmed it: no timeout, no resend.
    assert len(lines) == 3
    assert (delivered, timeouts) == (3, 0)
    assert not [e for e in events if e.name == "room.line.failed"]


async def test_an_explicit_action_arrives_as_an_emote_and_its_text_runs_no_command(tmp_path: Path) -> None:
    server = _owner_server()
    async with server:
        await server.set_rank(ROOM, "DazBot", 3)
        await server.add_user(ROOM, "alice", rank=0)
        async with bot(tmp_path, server, account=("DazBot", "pw")) as b:
            assert b.probe.ctx is not None
            assert b.probe.ctx.rooms is not None
            events: list[Event] = []
            b.probe.ctx.subscribe("room.line.*", events.append)
            with pytest.raises(SendInvalid, match="action must be True or False"):
                await b.probe.ctx.rooms.send_chat(ROOM, "waves", action="yes")  # type: ignore[arg-type]
            keys = await b.probe.ctx.rooms.send_chat(ROOM, "waves", action=True)
            keys += await b.probe.ctx.rooms.send_chat(ROOM, "/kick alice", action=True)
            await b.until(lambda: _delivered(events) == set(keys))
            seen = [(event, data) for event, data in server.inbox(ROOM, "alice") if event == "chatMsg"]
            delivered, timeouts = _sent(b, "delivered"), _sent(b, "timeout")
            present = {m.name for m in server.channel(ROOM).members}
    assert server.kicks == []
    assert "alice" in present
    emotes = [(d["msg"].strip(), d["meta"].get("action")) for _, d in seen if d["username"] == "DazBot"]
    assert emotes == [("waves", True), ("/kick alice", True)]
    assert (delivered, timeouts) == (2, 0)
