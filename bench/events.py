"""Benchmark: chat events end to end, fake CyTube server → transport → protocol → bus → chatlog → DB.

The fake server runs in a child process (so the bot's process has a core of its own) and, once the
bot has joined, pushes N chat lines through ``FakeCytubeServer.say_many`` (the same records and
wire frames as ``say``, encoded once each, so the server is not the bottleneck). The bot, every part
wired by ``daz.app``, receives them over a real websocket and logs them through the chatlog plugin
in batches. Measured window: from the first chat event the bot handles to the moment all N rows are
counted in the database. Reported for that window:

* wall-clock throughput = rows / elapsed seconds;
* bot CPU seconds (``time.process_time`` of the bot process: every thread, aiosqlite's included)
  and events per bot CPU-second = rows / CPU seconds (what one core of the bot sustains);
* lost = N - rows (rows counted with ``SELECT count(*)``, never a counter the bot keeps).

With ``--profile`` cProfile runs over the same window only and the time is broken down by layer.

    python bench/events.py --events 20000 --db sqlite
    python bench/events.py --events 20000 --db postgres --pg-dsn postgresql://root@127.0.0.1/test
    python bench/events.py --db both --profile
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOM = "lobby"
BOT = "BenchBot"
SERVER_CHUNK = 1000


# the child: fake server + a chatty crowd --------------------------------------------------------

async def serve(port_file: Path, events: int) -> None:
    from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

    async with FakeCytubeServer(limits=CytubeLimits(chat_burst=10**9, chat_rate_per_second=10**9)) as server:
        await asyncio.to_thread(port_file.write_text, server.url)
        deadline = time.monotonic() + 60
        while BOT not in server.sessions(ROOM):
            if time.monotonic() > deadline:
                raise SystemExit("the bot never joined")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        for first in range(0, events, SERVER_CHUNK):
            last = min(first + SERVER_CHUNK, events)
            lines = [(f"user{i % 50}", f"bench line {i}") for i in range(first, last)]
            await server.say_many(ROOM, lines)
            await asyncio.sleep(0)  # let the socket's writer start on this chunk
        print(f"[server] queued {events} lines in {time.perf_counter() - started:.2f}s", file=sys.stderr)
        # Stay up until the parent is done with us.
        await asyncio.sleep(300)


# the parent: the bot ---------------------------------------------------------------------------

class RowCounter:
    """Counts the chat rows in the database (the ground truth), over one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pg: Any = None

    async def count(self) -> int:
        if self.url.startswith("sqlite"):
            path = self.url.removeprefix("sqlite:///")

            def q() -> int:
                with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
                    row = conn.execute("SELECT count(*) FROM daz_chatlog WHERE kind = 'chat'").fetchone()
                    return int(row[0])
            return await asyncio.to_thread(q)
        import asyncpg

        if self._pg is None:
            self._pg = await asyncpg.connect(self.url)
        return int(await self._pg.fetchval("SELECT count(*) FROM daz_chatlog WHERE kind = 'chat'"))

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()


@dataclass
class Window:
    """The measured window: first chat event handled → all rows counted."""

    profiler: cProfile.Profile | None
    received: int = 0
    wall0: float = 0.0
    cpu0: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def on_chat(self, _: object) -> None:
        self.received += 1
        if self.received == 1:
            self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
            if self.profiler is not None:
                self.profiler.enable()

    def close(self) -> None:
        if self.received and not self.wall:
            self.wall = time.perf_counter() - self.wall0
            self.cpu = time.process_time() - self.cpu0
            if self.profiler is not None:
                self.profiler.disable()


async def run_bot(url: str, server_url: str, events: int, timeout: float, window: Window) -> int:
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
    counter = RowCounter(url)
    rows = 0
    try:
        async with DazApp(config, AppOptions(stop_grace_seconds=5)) as app:
            app.bus.subscribe("cytube.chat", window.on_chat, name="bench.counter", queue_size=10**6)
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(app.run(stopping), name="bench.app")
                deadline = time.monotonic() + timeout
                try:
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                        if window.received >= events and await counter.count() >= events:
                            break
                finally:
                    window.close()
                    stopping.set()
        rows = await counter.count()
    finally:
        await counter.close()
    return rows


def bench(db: str, url: str, events: int, profile: bool, timeout: float) -> None:
    window = Window(cProfile.Profile() if profile else None)
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
            rows = asyncio.run(run_bot(url, port_file.read_text(), events, timeout, window))
        finally:
            child.kill()
            child.wait()
    wall, cpu = window.wall, window.cpu
    print(f"[{db}] events said: {events}  received: {window.received}  rows counted: {rows}  "
          f"lost: {events - rows}")
    print(f"[{db}] wall-clock: {wall:.2f}s → {rows / wall if wall else 0:,.0f} events/s   "
          f"bot CPU: {cpu:.2f}s → {rows / cpu if cpu else 0:,.0f} events per bot CPU-second "
          f"({1e6 * cpu / rows if rows else 0:.1f} µs/event; bot busy {100 * cpu / wall if wall else 0:.0f}% "
          f"of one core)")
    if window.profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(window.profiler, stream=out)
        print("where the bot's main-thread time goes under cProfile (own time by layer; idle epoll wait "
              "excluded; the aiosqlite thread is not profiled; cProfile inflates per-call costs):")
        for layer, seconds, share in time_by_layer(stats):
            print(f"  {layer:<32} {seconds:6.2f}s  {share:5.1f}%")
        stats.strip_dirs().sort_stats("tottime").print_stats(25)
        print(out.getvalue())


LAYERS = (
    ("daz/transport", "daz transport"), ("daz/cytube", "daz cytube (protocol, session)"),
    ("daz/events", "daz event bus"), ("daz/plugins", "daz plugins (chatlog)"), ("daz/sql", "daz SQL service"),
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
