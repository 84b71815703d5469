"""Benchmark (not a test): kill -9 failover time in a cluster, with lease_seconds at its default.

Three `daz run` processes share six rooms on one fake CyTube server (registered account, so a
second session in a room would be a duplicate login) and PostgreSQL (a throwaway schema). Each
trial SIGKILLs the instance holding the most rooms, measures for each of its rooms the time from the
kill until a survivor's session is in the room again (the fake server is polled every 20 ms), then
restarts the victim and waits for the spread to settle. Reported: p50/p95/max over every room of
every trial (the bound without presence locks is lease_seconds + renew_interval_seconds + the join;
issue 16 measured 15.8 s with the defaults before them).

    .venv/bin/python bench/failover.py --trials 10 --dsn postgresql://root@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.process import DazProcess

ACCOUNT = "dazbot"
PASSWORD = "bench-pw-123"  # noqa: S105 - the fake server's test account
ROOMS = [f"room{i}" for i in range(6)]
NAMES = ("a", "b", "c")


def write_config(tmp: Path, server: FakeCytubeServer, dsn: str) -> Path:
    (tmp / "bot.pw").write_text(PASSWORD)
    config = {
        "rooms": [{"channel": r, "username": ACCOUNT, "password_file": str(tmp / "bot.pw"),
                   "server_url": server.url} for r in ROOMS],
        "cytube": {"stable_after_seconds": 1, "backoff": {"base_seconds": 0.3, "max_seconds": 2},
                   "probe": {"interval_seconds": 0.2, "max_interval_seconds": 0.5, "timeout_seconds": 0.5}},
        "database": {"url": dsn, "pool": {"min_size": 1, "max_size": 4}},
        "health": {"port": 0, "external_check": False},
        # lease_seconds, renew_interval_seconds, instance_timeout_seconds at their defaults
        "cluster": {"enabled": True, "rebalance_interval_seconds": 2},
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


async def owners(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT room, owner FROM daz_room_leases WHERE lease_until > now()")
    except asyncpg.UndefinedTableError:  # the instances have not migrated yet
        return {}
    finally:
        await conn.close()
    return {r["room"]: r["owner"] for r in rows if r["owner"] is not None}


async def until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def balanced(dsn: str, timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        held = await owners(dsn)
        if len(held) == len(ROOMS) and sorted(list(held.values()).count(n) for n in NAMES) == [2, 2, 2]:
            return held
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: not balanced within {timeout}s: {held}")
        await asyncio.sleep(0.2)


async def run(trials: int, base_dsn: str) -> None:
    schema = f"daz_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(base_dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base_dsn else "?"
    dsn = f"{base_dsn}{sep}search_path={schema}"
    figures: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as raw:
            tmp = Path(raw)
            limits = CytubeLimits(guest_login_window_seconds=0.2, bucket_size=1000, refill_seconds=0.01,
                                  max_sockets_per_ip=1000)  # one IP for three instances here
            async with FakeCytubeServer(accounts={ACCOUNT: PASSWORD}, ping_interval=1, ping_timeout=2,
                                        limits=limits) as server:
                config = write_config(tmp, server, dsn)
                procs = {n: DazProcess.daz_run(
                    "-c", str(config), "--log-format", "json", "--grace", "3", cwd=tmp, name=n,
                    env={"DAZ_CLUSTER__INSTANCE_ID": n, "DAZ_SPOOL__PATH": str(tmp / f"spool-{n}.sqlite")},
                    output_path=tmp / f"{n}.log") for n in NAMES}
                try:
                    for proc in procs.values():
                        await proc.start()
                    for trial in range(1, trials + 1):
                        held = await balanced(dsn)
                        await until(lambda: all(server.sessions(r).count(ACCOUNT) == 1 for r in ROOMS), 30,
                                    "every room joined")
                        victim = NAMES[trial % len(NAMES)]
                        rooms = sorted(r for r, o in held.items() if o == victim)
                        await procs[victim].kill()
                        killed = time.monotonic()
                        back: dict[str, float] = {}
                        left: set[str] = set()

                        def settled(rooms: list[str] = rooms, back: dict[str, float] = back,
                                    left: set[str] = left, killed: float = killed) -> bool:
                            for room in rooms:
                                count = server.sessions(room).count(ACCOUNT)
                                if count == 0:
                                    left.add(room)
                                elif room in left and room not in back:
                                    back[room] = time.monotonic() - killed
                            return len(back) == len(rooms)

                        await until(settled, 30, f"trial {trial}: {rooms} back")
                        figures.extend(back.values())
                        print(f"trial {trial}: killed {victim} holding {rooms}: READY again after "
                              + ", ".join(f"{back[r]:.2f}s" for r in rooms), flush=True)
                        await procs[victim].start()
                finally:
                    for proc in procs.values():
                        await proc.stop(grace=5)
                kicks = server.duplicate_login_kicks
                worst = max(server.max_concurrent_sessions(ACCOUNT, r) for r in ROOMS)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    ordered = sorted(figures)
    p95 = ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)]
    print(f"\nkill -9 → READY on a survivor, {len(ordered)} rooms over {trials} trials, lease_seconds 10: "
          f"p50 {statistics.median(ordered):.2f}s, p95 {p95:.2f}s, max {ordered[-1]:.2f}s")
    print("without presence locks the bound is lease_seconds + renew_interval_seconds + the join")
    print(f"duplicate-login kicks {kicks}, most sessions of the account in one room {worst}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--dsn", default="postgresql://root@127.0.0.1:5432/test")
    args = parser.parse_args()
    asyncio.run(run(args.trials, args.dsn))


if __name__ == "__main__":
    main()
