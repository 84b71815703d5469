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

Modules: ``server`` (sockets, sessions, login), ``limits`` (CyTube's numbers), ``names`` (name rules and
texts), ``records`` (ground-truth records), ``relay`` (the TCP relay behind the fault controls).
"""

from daz.testing.fake_cytube.limits import CytubeLimits
from daz.testing.fake_cytube.records import ActionRecord, ChatRecord, KickRecord, LoginRefusal
from daz.testing.fake_cytube.server import FakeCytubeServer

__all__ = ["ActionRecord", "ChatRecord", "CytubeLimits", "FakeCytubeServer", "KickRecord", "LoginRefusal"]
