"""A fake CyTube server speaking CyTube's wire protocol and rules, with fault controls. Public, documented.

Built on python-socketio's ``AsyncServer`` + aiohttp, it reproduces what a CyTube client depends on
(docs/fake-cytube.md; the protocol notes in ../shared): ``/socketconfig/<channel>.json``; ``rank -1`` on
connect; ``joinChannel`` with the join sequence and a 15-line backlog replay; guest and registered login
with the real rules; chat echo with HTML escaping and the 320-character cut; CyTube's limits
(``CytubeLimits``: connection bucket, socket cap, guest window, chat flood), ON by default.

Clients connect through a small TCP relay that owns the public port; that is what makes the faults
real at the socket level: ``kill_connections()`` resets every socket, ``refuse_connections()``
closes new ones at once, ``stop()``/``start()`` release and re-bind the SAME port, ``go_silent()``
black-holes traffic both ways while keeping sockets open (no PINGs, no frames).

    limits = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.5)
    async with FakeCytubeServer(ping_interval=0.5, ping_timeout=1.0, limits=limits) as server:
        config_url = server.url            # http://127.0.0.1:<port>
        ...
        server.chat_log("lobby")           # ground truth: every line the server accepted

Run it by hand: ``python -m daz.testing.fake_cytube --port 8099``.

Modules: ``server`` (lifecycle, controls, ground truth), ``sessions`` (socket handlers: connect, join,
login, chat), ``channel`` (members, ranks, join sequence), ``playlist`` (playlist and playback clock),
``polls``, ``moderation`` (commands, bans, mutes, options, permissions), ``permissions`` (defaults),
``media`` (queue resolution), ``typecheck``, ``limits`` (CyTube's numbers), ``names`` (name rules and
texts), ``records`` and ``state`` (ground truth), ``relay`` (the TCP relay behind the fault controls),
``client`` (a raw socket client for tests).
"""

from daz.testing.fake_cytube.limits import CytubeLimits
from daz.testing.fake_cytube.playlist import PlaybackTiming
from daz.testing.fake_cytube.records import ActionRecord, ChatRecord, KickRecord, LoginRefusal
from daz.testing.fake_cytube.server import FakeCytubeServer
from daz.testing.fake_cytube.state import ChannelSnapshot, ItemState, PollSnapshot, UserState

__all__ = [
    "ActionRecord",
    "ChannelSnapshot",
    "ChatRecord",
    "CytubeLimits",
    "FakeCytubeServer",
    "ItemState",
    "KickRecord",
    "LoginRefusal",
    "PlaybackTiming",
    "PollSnapshot",
    "UserState",
]
