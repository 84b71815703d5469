"""Benchmark: chat events end to end, fake CyTube server → transport → protocol → bus → chatlog → DB.

The fake server runs in a child process (so the measured core is the bot's alone) and, once the
bot has joined, says N lines as fast as it can. The bot (every part wired by ``daz.app``) logs
them through the chatlog plugin in batches. Throughput = N / (time from the first event received
to the moment all N rows are counted in the database). Lost = N - rows. With ``--profile`` the
bot's process is profiled with cProfile and the top functions are printed.

    python bench/events.py --events 20000 --db sqlite
    python bench/events.py --events 20000 --db postgres --pg-dsn postgresql://root@127.0.0.1/test
    python bench/events.py --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# bench/ holds other scripts (e.g. queue.py) that would shadow stdlib modules of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOM = "lobby"
BOT = "BenchBot"


# the child: fake server + a chatty crowd --------------------------------------------------------

async def serve(port_file: Path, events: int) -> None:
    from daz.testing.fake_cytube import FakeCytubeServer

    async with FakeCytubeServer(chat_burst=10**9, chat_rate_per_second=10**9) as server:
        await asyncio.to_thread(port_file.write_text, server.url)
        deadline = time.monotonic() + 60
        while BOT not in server.sessions(ROOM):
            if time.monotonic() > deadline:
                raise SystemExit("the bot never joined")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for i in range(events):
            await server.say(ROOM, f"user{i % 50}", f"bench line {i}")
        # Stay up until the parent is done with us.
        await asyncio.sleep(300)


# the parent: the bot ---------------------------------------------------------------------------

def _row_counter(url: str) -> object:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")

        async def count_sqlite() -> int:
            def q() -> int:
                with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
                    row = conn.execute("SELECT count(*) FROM daz_chatlog WHERE kind = 'chat'").fetchone()
                    return int(row[0])
            return await asyncio.to_thread(q)
        return count_sqlite

    async def count_pg() -> int:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM daz_chatlog WHERE kind = 'chat'"))
        finally:
            await conn.close()
    return count_pg


async def run_bot(url: str, server_url: str, events: int, timeout: float) -> tuple[float, int, int]:
    from daz.app import AppOptions, DazApp
    from daz.config import validate_config

    tmp = Path(tempfile.mkdtemp(prefix="daz-bench-"))
    config = validate_config({
        "rooms": [{"channel": ROOM, "username": BOT}],
        "cytube": {"base_url": server_url},
        "database": {"url": url},
        "spool": {"path": str(tmp / "spool.sqlite")},
        "health": {"enabled": False},
        "plugins": {"chatlog": {"batch_size": 2000, "flush_interval_seconds": 0.05}},
    })
    count_rows = _row_counter(url)
    first: list[float] = []
    received = 0

    def on_chat(_: object) -> None:
        nonlocal received
        received += 1
        if not first:
            first.append(time.perf_counter())

    async with DazApp(config, AppOptions(stop_grace_seconds=5)) as app:
        app.bus.subscribe("cytube.chat", on_chat, name="bench.counter", queue_size=10**6)
        stopping = asyncio.Event()
        rows = 0
        async with asyncio.TaskGroup() as tg:
            tg.create_task(app.run(stopping), name="bench.app")
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    if received >= events:
                        rows = await count_rows()  # type: ignore[operator]
                        if rows >= events:
                            break
            finally:
                done = time.perf_counter()
                stopping.set()
        rows = await count_rows()  # type: ignore[operator]
    elapsed = done - first[0] if first else 0.0
    return elapsed, received, rows


def bench(db: str, url: str, events: int, profile: bool, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="daz-bench-srv-") as tmp:
        port_file = Path(tmp) / "url"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port_file), "--events", str(events)])
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the fake server did not start")
                time.sleep(0.05)
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            cpu_before = time.process_time()
            elapsed, received, rows = asyncio.run(run_bot(url, port_file.read_text(), events, timeout))
            cpu = time.process_time() - cpu_before
            if profiler is not None:
                profiler.disable()
        finally:
            child.kill()
            child.wait()
    rate = rows / elapsed if elapsed > 0 else 0.0
    print(f"[{db}] events said: {events}  received: {received}  rows: {rows}  lost: {events - rows}  "
          f"time: {elapsed:.2f}s  throughput: {rate:,.0f} events/s  "
          f"bot CPU: {cpu:.2f}s for the whole run (≈ {rows / cpu if cpu else 0:,.0f} events per CPU-second)")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        print("where the bot's CPU time goes (own time by layer, idle epoll wait excluded):")
        for layer, seconds, share in time_by_layer(stats):
            print(f"  {layer:<28} {seconds:6.2f}s  {share:5.1f}%")
        stats.strip_dirs().sort_stats("tottime").print_stats(15)
        print(out.getvalue())


LAYERS = (
    ("daz/transport", "daz transport"), ("daz/cytube", "daz cytube (protocol, session)"),
    ("daz/events", "daz event bus"), ("daz/plugins", "daz plugins (chatlog)"), ("daz/sql", "daz SQL plugin"),
    ("daz/", "daz other"), ("socketio", "python-socketio"), ("engineio", "python-engineio"),
    ("aiohttp", "aiohttp (websocket)"), ("aiosqlite", "aiosqlite"), ("asyncpg", "asyncpg"),
    ("asyncio", "asyncio event loop"), ("structlog", "structlog"),
)


def time_by_layer(stats: pstats.Stats) -> list[tuple[str, float, float]]:
    totals: dict[str, float] = {}
    for (path, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == "<method 'poll' of 'select.epoll' objects>":
            continue  # waiting for the network, not work
        layer = next((name for key, name in LAYERS if key in path), "other (builtins, stdlib)")
        totals[layer] = totals.get(layer, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return sorted(((k, v, 100 * v / whole) for k, v in totals.items()), key=lambda r: -r[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--pg-dsn", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from daz.logging import configure_logging

    configure_logging("warning", "console")
    if args.serve is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.serve, args.events))
        return
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="daz-bench-db-") as tmp:
            bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.events, args.profile, args.timeout)
    if args.db in ("postgres", "both"):
        schema = f"daz_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg(args.pg_dsn, f"CREATE SCHEMA {schema}"))
        try:
            sep = "&" if "?" in args.pg_dsn else "?"
            url = f"{args.pg_dsn}{sep}search_path={schema}"
            bench("postgres", url, args.events, args.profile, args.timeout)
        finally:
            asyncio.run(_pg(args.pg_dsn, f"DROP SCHEMA {schema} CASCADE"))


async def _pg(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
