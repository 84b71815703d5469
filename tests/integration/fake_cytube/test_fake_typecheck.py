"""The fake server's payload typecheck over real sockets, pinned frame for frame to CyTube 3.86
(json-typecheck: object required, template keys in order, null is a wrong type even for an optional
key, extra keys refused; measured 2026-12-02 on a real server, ../shared/cytube-protocol-actions.md §0)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_kit import LIMITS

from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient

PREFIX = "Unexpected error for message "

# (event, payload, the real server's errorMsg text after PREFIX)
MEASURED: list[tuple[str, Any, str]] = [
    ("unban", "x", "unban: Expected type object, got string"),
    ("unban", [1], "unban: Expected type object, got array"),
    ("unban", None, "unban: Expected type object, got undefined"),
    ("unban", {"id": None, "name": "a"}, "unban: Expected key id to be of type number, instead got null"),
    ("unban", {"name": "a"}, "unban: Missing key: number:id"),
    ("unban", {"id": 99999, "name": "a", "zz": 1, "yy": 2}, "unban: Extra key: zz"),
    ("unban", {"zz": 1, "id": "s", "name": "a"},
     "unban: Expected key id to be of type number, instead got string"),
    ("queue", {"id": "rtmp://x/y", "type": "rt", "pos": "end", "title": None},
     "queue: Expected key title to be of type string,boolean,optional, instead got null"),
    ("queue", {"id": "rtmp://x/y", "type": "rt", "pos": "end", "duration": "5"},
     "queue: Expected key duration to be of type number,optional, instead got string"),
    ("queue", {"id": "rtmp://x/y", "type": "rt", "pos": "end", "temp": True, "extra": 1},
     "queue: Extra key: extra"),
    ("newPoll", {"title": "t", "opts": ["a"], "obscured": False, "retainVotes": "x"},
     "newPoll: Expected key retainVotes to be of type boolean,optional, instead got string"),
    ("chatMsg", {"msg": "hi", "meta": {}, "extra": 1}, "chatMsg: Extra key: extra"),
    ("chatMsg", {"msg": "hi", "meta": None},
     "chatMsg: Expected key meta to be of type object,optional, instead got null"),
    ("pm", {"msg": "hi", "to": "someone", "meta": {}, "extra": 1}, "pm: Extra key: extra"),
    ("setMotd", {"motd": "x", "extra": 1}, "setMotd: Extra key: extra"),
    ("vote", {"option": 0, "extra": 1}, "vote: Extra key: extra"),
]


@pytest.mark.parametrize(("event", "payload", "expected"), MEASURED, ids=[m[2] for m in MEASURED])
async def test_a_bad_payload_gets_the_real_servers_error_and_nothing_else(
    event: str, payload: Any, expected: str,
) -> None:
    async with FakeCytubeServer(limits=LIMITS, accounts={"boss": "pw"}, global_ranks={"boss": 255},
                                registered_channels=["lobby"]) as server:
        client = await CytubeTestClient.joined(server.url, "boss", ip="10.0.0.1", password="pw")
        mark = len(client.events)
        await client.emit(event, payload)
        error = await client.wait_for("errorMsg", after=mark)
        heard = [name for name, _ in await client.quiet(0.3)]
        await client.close()
    assert error["msg"] == PREFIX + expected
    # the action did not happen either (no queue, newPoll, chatMsg, setMotd, banlistRemove ...)
    assert [name for name, _ in client.events[mark:] if name not in {"errorMsg", "usercount"}] == []
    assert "errorMsg" not in heard


async def test_a_pm_before_login_is_refused_with_an_error() -> None:
    server = FakeCytubeServer(limits=LIMITS)
    async with server, CytubeTestClient(server.url, ip="10.0.0.1") as client:
        await client.join("lobby")
        await client.wait_for("usercount")
        await client.emit("pm", {"msg": "hi", "to": "someone", "meta": {}})
        error = await client.wait_for("errorMsg")
    assert error == {"msg": "You must be signed in to send PMs"}
