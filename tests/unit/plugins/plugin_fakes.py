"""Fakes shared by the plugin unit tests: a send API, a SQL API with a fault switch, a bus harness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from daz.errors import SqlError, SqlRetryScheduled
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.plugins.host import PluginHost, RestartPolicy
from daz.testing import FakeClock


class FakeSend:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.pms: list[tuple[str, str, str]] = []
        self.got_line = asyncio.Event()

    async def send_chat(self, room: str, text: str, *, action: bool = False,
                        correlation_id: str | None = None) -> list[str]:
        self.sent.append((room, text))
        self.got_line.set()
        return [f"k{len(self.sent)}"]

    async def send_pm(
        self, room: str, user: str, text: str, *, correlation_id: str | None = None
    ) -> list[str]:
        self.pms.append((room, user, text))
        return [f"p{len(self.pms)}"]


class FakeSql:
    """Stores rows by idempotency key (column 0), ON CONFLICT DO NOTHING like the real table."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[Any, ...]] = {}
        self.calls = 0
        self.fail_next = 0
        self.permanent = False
        self.batch_sizes: list[int] = []
        self.queue_next = 0
        self.queued: list[list[tuple[Any, ...]]] = []

    async def exec_many(
        self, sql: str, rows: Sequence[Sequence[Any]], *, source: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        self.calls += 1
        self.batch_sizes.append(len(rows))
        if self.permanent:
            raise SqlError("value too long", sqlstate="22001", retryable=False)
        if self.queue_next > 0:
            self.queue_next -= 1
            self.queued.append([tuple(r) for r in rows])
            raise SqlRetryScheduled("database is locked (queued)", retryable=True)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise SqlError("database is locked", retryable=True)
        added = 0
        for row in rows:
            if row[0] not in self.rows:
                self.rows[row[0]] = tuple(row)
                added += 1
        return added


def chat(room: str, user: str, text: str, time_ms: int, **flags: bool) -> dict[str, Any]:
    return {"room": room, "event": {"username": user, "text": text, "time_ms": time_ms}, **flags}


@asynccontextmanager
async def running_host(
    sections: dict[str, dict[str, Any]],
    *,
    clock: FakeClock | None = None,
    factories: dict[str, Any] | None = None,
    sql: FakeSql | None = None,
    send: FakeSend | None = None,
    status: Any = None,
    policy: RestartPolicy | None = None,
    wait_running: bool = True,
) -> AsyncIterator[tuple[PluginHost, EventBus, asyncio.Event]]:
    """A bus plus a running host; stops both (cooperatively) when the block ends, within 5 s."""
    clk = clock or FakeClock()
    metrics = DazMetrics()
    async with EventBus(clock=clk, metrics=metrics) as bus:
        host = PluginHost(sections, bus=bus, clock=clk, metrics=metrics, sql=sql, rooms=send,
                          status=status, factories=factories, policy=policy, stop_grace_seconds=2.0)
        stopping = asyncio.Event()
        async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
            tg.create_task(host.run(stopping), name="test.host")
            if wait_running:
                await wait_for(lambda: all(s.state.value == "running" for s in host.statuses.values()))
            try:
                yield host, bus, stopping
            finally:
                stopping.set()


async def wait_for(cond: Any, turns: int = 2000) -> None:
    """Give the loop up to ``turns`` turns for ``cond()`` to hold (no wall-clock sleeps)."""
    for _ in range(turns):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")
