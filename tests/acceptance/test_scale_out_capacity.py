"""Placement by socket capacity: 25 rooms on one fake CyTube server, each instance allowed 10 sockets
there (``cytube.servers``). Two instances hold 20 rooms and report the 5 others waiting, with the
reason; a third instance takes exactly those 5 and nobody else's room moves; never two sessions of
the account in one room.

The fake server sees every instance at 127.0.0.1, so its own per-IP socket cap is raised here and
each instance's cap of 10 is the one daz enforces (in production each instance has its own address).
Chat, connection and login limits stay as configured below, mirrored in ``cytube.servers``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from scale_out_kit import ACCOUNT, PASSWORD, instance, wait_until

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOMS = [f"cap{i:02d}" for i in range(25)]
CAP = 10


def write_config(tmp: Path, server: FakeCytubeServer, dsn: str) -> Path:
    (tmp / "bot.pw").write_text(PASSWORD)
    config = {
        "rooms": [{"channel": r, "username": ACCOUNT, "password_file": str(tmp / "bot.pw"),
                   "server_url": server.url} for r in ROOMS],
        "cytube": {"stable_after_seconds": 1, "backoff": {"base_seconds": 0.3, "max_seconds": 2},
                   "probe": {"interval_seconds": 0.2, "max_interval_seconds": 0.5, "timeout_seconds": 0.5},
                   "servers": {"default": {"connection_burst": 1000, "connection_refill_seconds": 0.01,
                                           "guest_login_window_seconds": 0.2, "max_sockets": CAP}}},
        "database": {"url": dsn, "pool": {"min_size": 1, "max_size": 4}},
        "health": {"port": 0, "interval_seconds": 1, "external_check": False},
        "cluster": {"enabled": True, "lease_seconds": 3, "renew_interval_seconds": 1,
                    "instance_timeout_seconds": 3, "rebalance_interval_seconds": 120},
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


async def owners(dsn: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT room, owner FROM daz_room_leases WHERE lease_until > now()")
    finally:
        await conn.close()
    return {r["room"]: r["owner"] for r in rows if r["owner"] is not None}


def waiting_reports(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if '"cluster.rooms_waiting"' in line]


async def test_rooms_are_placed_by_each_instance_socket_capacity(tmp_path: Path, pg_dsn: str) -> None:
    limits = CytubeLimits(guest_login_window_seconds=0.2, bucket_size=1000, refill_seconds=0.01,
                          max_sockets_per_ip=1000)
    async with FakeCytubeServer(accounts={ACCOUNT: PASSWORD}, ping_interval=1, ping_timeout=2,
                                limits=limits) as server:
        config = write_config(tmp_path, server, pg_dsn)
        procs = {name: instance(tmp_path, config, name) for name in ("a", "b", "c")}

        def joined() -> list[str]:
            return [r for r in ROOMS if server.sessions(r).count(ACCOUNT) == 1]

        try:
            for name in ("a", "b"):
                await procs[name].start()
            await wait_until(lambda: len(joined()) == 2 * CAP, 60, "20 rooms joined by two instances")
            await asyncio.sleep(3)  # no instance takes an eleventh socket
            assert len(joined()) == 2 * CAP
            held = await owners(pg_dsn)
            assert sorted(list(held.values()).count(n) for n in ("a", "b")) == [CAP, CAP]
            waiting = sorted(set(ROOMS) - set(held))
            reports = [r for n in ("a", "b") for r in waiting_reports(procs[n].output())]
            assert reports, "the waiting rooms are reported"
            assert sorted(reports[-1]["rooms"]) == waiting  # type: ignore[arg-type]
            assert "cluster full" in str(reports[-1]["reason"])
            print(f"\ntwo instances, cap {CAP}: 20 READY, waiting {waiting}: {reports[-1]['reason']}")

            started = time.monotonic()
            await procs["c"].start()
            await wait_until(lambda: len(joined()) == len(ROOMS), 60, "all 25 rooms joined")
            took = time.monotonic() - started
            after = await owners(pg_dsn)
            assert sorted(r for r, o in after.items() if o == "c") == waiting
            assert all(after[room] == owner for room, owner in held.items())  # nobody else moved
            print(f"third instance started: the 5 waiting rooms READY on it {took:.2f}s later, "
                  f"the other 20 unmoved")
        finally:
            for proc in procs.values():
                await proc.stop(grace=5)
        assert server.duplicate_login_kicks == 0
        assert all(server.max_concurrent_sessions(ACCOUNT, room) <= 1 for room in ROOMS)
