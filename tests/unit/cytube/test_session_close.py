"""A session that ends early (kicked, dropped) leaves no failed future that nobody retrieves.

``Session._close`` fails every step still pending: the join, the login and the armed echo. Only the
step being awaited re-raises it; the others were never reached, and asyncio would log their
exception as "Future exception was never retrieved" when they are collected (seen against a real
server as ``Kicked('kicked: Too many connections from your IP address')``).
"""

from __future__ import annotations

import asyncio

import pytest

from daz.aio import race
from daz.config import CytubeConfig
from daz.cytube.outbox import OutboundLine
from daz.cytube.session import Credentials, Session
from daz.errors import Kicked
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock
from daz.testing.fake_transport import FakeNetwork
from daz.testing.leaks import UnretrievedExceptions

TOO_MANY = "Too many connections from your IP address"


async def _kicked_session(*, arm_echo: bool) -> None:
    clock = FakeClock()
    network = FakeNetwork()
    network.answer_join = False  # the server kicks before the join is answered
    transport = network.factory("lobby", clock)
    await transport.connect("ws://fake", timeout=1.0)
    session = Session(room="lobby", channel="lobby", credentials=Credentials("dazbot"), transport=transport,
                      clock=clock, config=CytubeConfig(), publish=lambda name, data: None,
                      metrics=DazMetrics())
    if arm_echo:
        session.expect(OutboundLine(key="k", room="lobby", kind="chat", text="hi", created_at=0.0))

    async def kick_soon() -> None:
        await asyncio.sleep(0)
        transport.kick(TOO_MANY)
        await asyncio.Event().wait()

    with pytest.raises(Kicked, match=TOO_MANY):
        await race({"establish": session.establish, "pump": _pump_then_wait(session), "kick": kick_soon},
                   label="test")


def _pump_then_wait(session: Session):  # type: ignore[no-untyped-def]
    async def run() -> None:
        await session.pump()
        await asyncio.Event().wait()  # the join step, not the pump, reports the kick here
    return run


@pytest.mark.parametrize("arm_echo", [False, True])
async def test_a_kick_before_login_leaves_no_unretrieved_exception(arm_echo: bool) -> None:
    with UnretrievedExceptions() as detector:
        await _kicked_session(arm_echo=arm_echo)
        assert detector.collect() == []
