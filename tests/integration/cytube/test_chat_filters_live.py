"""Chat lines that a registered channel's default filters rewrite are still confirmed by their echo,
once: the whole bot (DazApp) against the fake CyTube server over real sockets, CyTube's limits on.
CyTube 3.86 sends "a *b*" back as "a <strong>b</strong>", `code`, _x_, ~~x~~ and [sp]x[/sp] likewise,
and quotes, apostrophes and parentheses unescaped (measured on a real server, 2026-12-02)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.cytube.test_actions_live import FAST, ROOM, bot

from daz.events.bus import Event
from daz.testing.fake_cytube import FakeCytubeServer

LINES = [
    "bold *word* here",
    "5 * 3 * 2 = 30",
    "under_score and _italic_ with a_link http://example.com/a_b_(c)?d='1'&e=2",
    "code `x` ~~gone~~ [sp]hidden[/sp] [SP]loud[/SP]",
    "quotes \"q\" 'z' (p) & <i>",
]


@pytest.mark.parametrize("registered", [True, False], ids=["filtered", "unregistered"])
async def test_filtered_lines_are_confirmed_by_their_echo_and_sent_once(
    tmp_path: Path, registered: bool,
) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                              registered_channels=[ROOM] if registered else ())
    async with server, bot(tmp_path, server, account=("DazBot", "pw")) as b:
        assert b.probe.ctx is not None
        assert b.probe.ctx.rooms is not None
        events: list[Event] = []
        b.probe.ctx.subscribe("room.line.*", events.append)
        keys: list[str] = []
        for line in LINES:
            keys += await b.probe.ctx.rooms.send_chat(ROOM, line)
        await b.until(lambda: {e.data["key"] for e in events if e.name == "room.line.delivered"} == set(keys))
        sent = [a.data["msg"] for a in server.actions(ROOM, "chatMsg") if a.name == "DazBot"]
        echoed = [r.text for r in server.chat_log(ROOM) if r.username == "DazBot"]
    assert sent == LINES  # each once: no resend for want of a recognised echo
    assert echoed == LINES
    assert [e.name for e in events if e.name != "room.line.delivered"] == []
