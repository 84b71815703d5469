"""LeaseGate: a room runs only while its lease is held, and losing it waits for the room to leave."""

from __future__ import annotations

import asyncio

from daz.cluster.gate import LeaseGate


async def test_wait_acquired_returns_when_the_lease_arrives() -> None:
    gate = LeaseGate()
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        waiter = tg.create_task(gate.wait_acquired("r", stopping))
        await asyncio.sleep(0)
        assert not waiter.done()
        await gate.on_acquire("r", 7)
    assert waiter.result() is True
    assert gate.fence("r") == 7
    assert gate.owned() == ["r"]


async def test_wait_acquired_gives_up_on_stop() -> None:
    gate = LeaseGate()
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        waiter = tg.create_task(gate.wait_acquired("r", stopping))
        await asyncio.sleep(0)
        stopping.set()
    assert waiter.result() is False
    assert gate.fence("r") is None


async def test_on_lose_signals_the_room_and_waits_until_it_left() -> None:
    gate = LeaseGate()
    await gate.on_acquire("r", 1)
    gate.joined("r")
    order: list[str] = []

    async def room() -> None:
        await gate.lost_signal("r").wait()
        order.append("room saw loss")
        await asyncio.sleep(0)
        order.append("room left")
        gate.left("r")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(room())
        await gate.on_lose("r", "lease_lost")
        order.append("on_lose returned")
    assert order == ["room saw loss", "room left", "on_lose returned"]
    assert not gate.holds("r")
