"""The python-engineio / python-socketio internals ``daz.transport.socketio`` hooks, named one by one.

``_FrameTimedEngineIO`` replaces engineio's websocket read loop and its packet dispatch, and
``_Client`` hooks two private methods of python-socketio's ``AsyncClient`` (module docstring of
``daz/transport/socketio.py``). pyproject.toml bounds both libraries to the minor these hooks were
written for; this test is what tells the person who raises that bound what to re-read. It fails,
naming the internal, when a hooked method's signature changes, an attribute the hooks read is gone,
or the library code that daz replaces or mirrors was edited (a fingerprint of its source).

How to upgrade: docs/architecture.md, "Upgrading python-engineio / python-socketio".
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from importlib import metadata
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
from engineio import async_client as eio_async_client
from engineio import base_client as eio_base_client
from engineio import packet as eio_packet
from socketio import async_client as sio_async_client

from daz.transport.socketio import _Client, _FrameTimedEngineIO

# The minors the hooks were written and last reviewed for (keep in step with pyproject.toml).
WRITTEN_FOR = {"python-engineio": "4.15", "python-socketio": "5.18"}

HOW = "see docs/architecture.md, 'Upgrading python-engineio / python-socketio'"

# (owner class, method name, expected parameters, coroutine?) for every library method daz overrides
# or calls below the public API.
HOOKED_METHODS: list[tuple[type[Any], str, list[str], bool]] = [
    (engineio.AsyncClient, "_receive_packet", ["self", "pkt"], True),  # overridden (frame timestamps)
    (engineio.AsyncClient, "_read_loop_websocket", ["self"], True),  # replaced (one deadline per loop)
    (engineio.AsyncClient, "_trigger_event", ["self", "event", "args", "kwargs"], True),  # called
    (engineio.AsyncClient, "_reset", ["self"], True),  # called at the end of the read loop
    (engineio.AsyncClient, "disconnect", ["self", "abort", "reason"], True),  # called with abort=True
    (socketio.AsyncClient, "_engineio_client_class", ["self"], False),  # overridden (our Engine.IO)
    (socketio.AsyncClient, "_handle_eio_message", ["self", "data"], True),  # wrapped (malformed frames)
]

# Instance attributes of a fresh engineio.AsyncClient the replaced read loop reads or writes.
ENGINEIO_ATTRIBUTES = ["handlers", "state", "ws", "write_loop_task", "queue", "ping_interval",
                       "ping_timeout", "http", "logger"]

# The library code daz replaces or mirrors, and where daz's version lives.
REPLACED_BY = {
    "engineio.AsyncClient._read_loop_websocket":
        "replaced by _FrameTimedEngineIO._read_loop_websocket/_read_frames/_next_frame/_read_loop_exit",
    "engineio.AsyncClient._receive_packet":
        "mirrored by _FrameTimedEngineIO._dispatch (MESSAGE → a handler task, the rest → the library)",
    "socketio.AsyncClient._handle_eio_message":
        "mirrored by _FrameTimedEngineIO._inline_event (plain '42[...]' events decoded inline)",
}
# sha256 of that code's source as reviewed (python-engineio 4.15.1, python-socketio 5.18.1). A change
# means: re-read the new code, port it into daz's version, then put the new fingerprint here.
SOURCE_SHA256 = {
    "engineio.AsyncClient._read_loop_websocket":
        "ba1a9fab366e28b883ac0010b83fde72fb1aa87360aaf678bb1f370dc0f3c9e7",
    "engineio.AsyncClient._receive_packet":
        "05a1e1ce0913b06dfeb6e6f34f9dfbfc3fb541fad88173fc4bf18aee6c94700d",
    "socketio.AsyncClient._handle_eio_message":
        "a1fb37324163d9aa84ff4a1da15789b4fab40313c5004c29aefa4a152ce6a7fa",
}


def _source_of(dotted: str) -> str:
    owner_name, method = dotted.rsplit(".", 1)
    owner = {"engineio.AsyncClient": eio_async_client.AsyncClient,
             "socketio.AsyncClient": sio_async_client.AsyncClient}[owner_name]
    return textwrap.dedent(inspect.getsource(getattr(owner, method)))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("dist", sorted(WRITTEN_FOR))
def test_installed_minor_is_the_one_the_hooks_were_written_for(dist: str) -> None:
    installed = metadata.version(dist)
    minor = ".".join(installed.split(".")[:2])
    assert minor == WRITTEN_FOR[dist], (
        f"{dist} {installed} is installed but daz's transport hooks were written for {WRITTEN_FOR[dist]}.x "
        f"(pyproject.toml bounds it); review the hooks before allowing it: {HOW}"
    )


@pytest.mark.parametrize(("owner", "name", "params", "is_async"), HOOKED_METHODS,
                         ids=[f"{o.__module__.split('.')[0]}.{n}" for o, n, _, _ in HOOKED_METHODS])
def test_hooked_method_keeps_its_signature(owner: type[Any], name: str, params: list[str],
                                          is_async: bool) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{name}"
    method = getattr(owner, name, None)
    assert method is not None, f"{where} is gone; daz.transport.socketio hooks it: {HOW}"
    got = list(inspect.signature(method).parameters)
    assert got == params, f"{where} now takes {got}, daz.transport.socketio expects {params}: {HOW}"
    assert inspect.iscoroutinefunction(method) is is_async, (
        f"{where} is {'no longer' if is_async else 'now'} a coroutine function: {HOW}")


def test_engineio_client_has_the_attributes_the_read_loop_uses() -> None:
    client = engineio.AsyncClient()
    missing = [a for a in ENGINEIO_ATTRIBUTES if not hasattr(client, a)]
    assert not missing, f"engineio.AsyncClient no longer has {missing} (used by _FrameTimedEngineIO): {HOW}"
    assert hasattr(client.reason, "TRANSPORT_ERROR"), (
        f"engineio.AsyncClient.reason.TRANSPORT_ERROR is gone: {HOW}")
    assert isinstance(eio_base_client.connected_clients, list), (
        f"engineio.base_client.connected_clients is no longer a list: {HOW}")
    pkt = eio_packet.Packet(encoded_packet='42["chatMsg",{}]')
    assert (pkt.packet_type, pkt.data) == (eio_packet.MESSAGE, '2["chatMsg",{}]'), (
        f"engineio.packet.Packet decodes a MESSAGE differently: {HOW}")


def test_socketio_client_builds_its_engineio_client_through_the_hook() -> None:
    client = _Client(reconnection=False, handle_sigint=False)
    assert isinstance(client.eio, _FrameTimedEngineIO), (
        f"socketio.AsyncClient no longer calls _engineio_client_class() to build .eio: {HOW}")
    assert hasattr(client, "_binary_packet"), (
        f"socketio.AsyncClient no longer has _binary_packet (the inline path checks it): {HOW}")


def test_aiohttp_websocket_keeps_its_response() -> None:
    # _ws_response() reaches engineio's ws._response to release the connection on every close path.
    source = inspect.getsource(aiohttp.ClientWebSocketResponse.__init__)
    assert "self._response" in source, (
        "aiohttp.ClientWebSocketResponse no longer keeps _response "
        f"(daz.transport.socketio._ws_response): {HOW}")


@pytest.mark.parametrize("dotted", sorted(REPLACED_BY))
def test_library_code_daz_replaces_is_unchanged(dotted: str) -> None:
    got = _sha256(_source_of(dotted))
    assert got == SOURCE_SHA256[dotted], (
        f"{dotted} changed in the installed library ({REPLACED_BY[dotted]}). Re-read it, port the change "
        f"into daz/transport/socketio.py, then set its fingerprint in {__name__} to {got}: {HOW}"
    )
