"""``daz demo``: the whole self-healing loop, offline, in under a minute.

A fake CyTube server on a free loopback port and a real bot (every part wired by ``daz.app``) on a
temporary SQLite database live in this process. A script then breaks things and the bot heals:

1. users chat; the chat log fills; ``!status`` is answered;
2. the CyTube server is stopped: the room backs off (the reconnect schedule, shortened for the demo) while
   the bot keeps sending; the server returns; the probe notices; queued lines are delivered;
3. the database refuses connections: chat-log batches fail, are queued in the retry queue, the
   ``database`` breaker opens, then everything lands once the database is back;
4. a poison operation fails permanently into the dead-letter queue; it is fixed and replayed.

The final table is computed from the database file and the fake server's own record, never from
the bot's counters; the exit code says whether the story held.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from daz.aio import sleep_or_stop
from daz.app import AppOptions, DazApp
from daz.clock import SystemClock
from daz.config import DazConfig, validate_config
from daz.db.sqlite import connect as sqlite_connect
from daz.demo.faults import POISON_OPERATION, Poison, SwitchedBackend
from daz.events.bus import Event
from daz.store.base import NewItem
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer, PlaybackTiming

ROOM = "lobby"
BOT = "DazBot"
USERS = ("alice", "bob", "carol")
DEFAULT_TIME_LIMIT_SECONDS = 110.0
SERVER_DOWN_SECONDS = 5.0
DATABASE_DOWN_SECONDS = 5.0
STEP_TIMEOUT_SECONDS = 25.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 4.0
REFRESH_SECONDS = 0.25  # the live display is redrawn four times a second
GUEST_WINDOW_SECONDS = 1.0  # the fake server's guest-login window, mirrored in daz's config


def demo_config(workdir: Path, server_url: str) -> DazConfig:
    """Production config with the timings shortened so the story fits in a minute."""
    return validate_config({
        "rooms": [{"channel": ROOM, "username": BOT}],
        "cytube": {
            "base_url": server_url, "join_timeout_seconds": 3, "login_timeout_seconds": 3,
            "connect_timeout_seconds": 3, "stable_after_seconds": 2, "rate_limit_min_wait_seconds": 1,
            "delivery_timeout_seconds": 3,
            "backoff": {"base_seconds": BACKOFF_BASE_SECONDS, "max_seconds": BACKOFF_CAP_SECONDS},
            "probe": {"interval_seconds": 0.3, "max_interval_seconds": 0.6, "timeout_seconds": 0.5},
            # daz mirrors the server's limits; the demo's fake server has a shortened guest window
            "servers": {"default": {"guest_login_window_seconds": GUEST_WINDOW_SECONDS}},
        },
        "database": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "retry": {
            "poll_interval_seconds": 0.5, "worker_count": 2, "lease_seconds": 5,
            "heartbeat_interval_seconds": 1, "no_handler_delay_seconds": 1,
            "retry_policies": {
                "sql_operation": {"max_retries": 20, "initial_delay_seconds": 0.5, "max_delay_seconds": 1.5,
                                  "backoff_multiplier": 1.5, "breaker": "database"},
                "cytube_command": {"max_retries": 5, "initial_delay_seconds": 5, "max_delay_seconds": 30},
                POISON_OPERATION: {"max_retries": 2, "initial_delay_seconds": 0.2, "max_delay_seconds": 0.5},
            },
        },
        "breakers": {"default": {}, "database": {"minimum_calls": 3, "window_size": 6, "break_seconds": 1.0,
                                                 "max_break_seconds": 2.0}},
        "spool": {"path": str(workdir / "spool.sqlite"), "drain_interval_seconds": 0.5},
        "health": {"port": 0, "interval_seconds": 1, "external_check": False},
        "plugins": {"commands": {"cooldown_seconds": 0},
                    "chatlog": {"batch_size": 50, "flush_interval_seconds": 0.2}},
    }, source="demo")


@dataclass
class Summary:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


class Display:
    """A live rich view on a terminal; plain timeline lines otherwise (pipes, CI, the tests)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self.started = time.monotonic()
        self.timeline: list[str] = []
        self.state: dict[str, Any] = {}
        self._live: Live | None = None

    def note(self, text: str, *, headline: bool = False) -> None:
        line = f"{time.monotonic() - self.started:5.1f}s  {'== ' if headline else ''}{text}"
        self.timeline.append(line)
        if self._live is not None:
            self._live.update(self.render())
        else:
            self.console.print(line, markup=False, highlight=False)

    def render(self) -> Group:
        st = self.state
        table = Table(title="daz demo (timings shortened for the demo)", expand=True)
        for column in ("room", "queue (pending/processing/dead/done)", "breaker:database",
                       "chat log rows", "spool"):
            table.add_column(column)
        table.add_row(str(st.get("room", "?")), str(st.get("queue", "?")), str(st.get("breaker", "?")),
                      str(st.get("rows", "?")), str(st.get("spool", "?")))
        return Group(table, Text("\n".join(self.timeline[-14:])))

    async def refresh_loop(self, app: DazApp, db: Path, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample(app, db)
            if self._live is not None:
                self._live.update(self.render())
            await sleep_or_stop(SystemClock(), REFRESH_SECONDS, stop, label="demo.refresh")

    async def sample(self, app: DazApp, db: Path) -> None:
        room = app.rooms.room(ROOM)
        delay = f", next try in {room.next_delay:.1f}s" if room.next_delay else ""
        self.state["room"] = f"{room.state.value} (attempt {room.attempt}{delay}, outbox {room.outbox_depth})"
        try:
            stats = await app.store.stats()
            by = {s: sum(r.count for r in stats if r.status == s)
                  for s in ("pending", "processing", "dead_letter", "completed")}
            self.state["queue"] = "/".join(str(v) for v in by.values())
        except Exception as exc:  # noqa: BLE001 - the display shows whatever it can
            self.state["queue"] = f"unreachable ({type(exc).__name__})"
        snap = {b["name"]: b for b in app.breakers.snapshot()}
        self.state["breaker"] = snap.get("database", {}).get("state", "closed")
        self.state["rows"] = await asyncio.to_thread(count_rows, db)
        self.state["spool"] = await app.spool.count()

    def __enter__(self) -> Display:
        if self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None


def count_rows(db: Path) -> int:
    with contextlib.closing(sqlite_connect(db, busy_timeout_seconds=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM daz_chatlog WHERE kind = 'chat'").fetchone()[0])


async def wait_until(what: str, cond: Callable[[], Awaitable[bool] | bool],
                     timeout: float = STEP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"gave up waiting: {what} (after {timeout:.0f}s)")


class Story:
    def __init__(self, app: DazApp, server: FakeCytubeServer, display: Display, db: Path, *,
                 switch: SwitchedBackend, poison: Poison) -> None:
        self.app = app
        self.server = server
        self.display = display
        self.db = db
        self.switch = switch
        self.poison = poison
        self.bot_lines: list[str] = []
        self.poison_id: int | None = None
        self.dead_lettered_seen = 0

    def note(self, text: str, *, headline: bool = False) -> None:
        self.display.note(text, headline=headline)

    def healthy(self) -> bool:
        report = self.app.monitor.latest()
        return report is not None and report.status.value == "pass"

    def ready(self) -> bool:
        return self.app.rooms.room(ROOM).state.value == "ready"

    async def chat(self, count: int, tag: str) -> None:
        for i in range(count):
            await self.server.say(ROOM, USERS[i % len(USERS)], f"{tag} message {i + 1}")
            await asyncio.sleep(0.02)

    def on_event(self, event: Event) -> None:
        d = event.data if isinstance(event.data, dict) else {}
        if event.name == "room.state_changed":
            nxt = f", next try in {d['next_delay']:.1f}s" if d.get("next_delay") else ""
            self.note(f"room {d.get('room')}: {d.get('from')} -> {d.get('to')} ({d.get('reason')}{nxt})")
        elif event.name == "breaker.state_changed":
            self.note(f"breaker {d.get('name')}: {d.get('from')} -> {d.get('to')}")
        elif event.name == "retry.dead_lettered":
            self.dead_lettered_seen += 1
            self.note(f"dead letter #{d.get('id')} ({d.get('operation_type')}): {d.get('reason', '')}")
        elif event.name == "plugin.crashed":
            self.note(f"plugin {d.get('plugin')} crashed: {d.get('error')}")

    async def act_one_chat(self) -> None:
        self.note("1. users chat in #lobby; the chatlog plugin writes every line", headline=True)
        await wait_until("the bot joins #lobby", self.ready)
        await self.chat(12, "hello")
        with contextlib.suppress(TimeoutError):  # only so !status shows a settled verdict
            await wait_until("health settles", self.healthy, timeout=5)
        await self.server.say(ROOM, "alice", "!status")
        await wait_until("the bot answers !status", lambda: any(
            r.username == BOT and r.text.startswith("status:") for r in self.server.chat_log(ROOM)))
        reply = next(r.text for r in self.server.chat_log(ROOM) if r.username == BOT)
        self.note(f"bot answered: {reply[:90]}")
        await wait_until("chat lines in the database", self.rows_match)
        self.note(f"{count_rows(self.db)} chat lines in daz_chatlog")

    async def rows_match(self) -> bool:
        expected = len(self.server.chat_log(ROOM))
        return await asyncio.to_thread(count_rows, self.db) >= expected

    async def act_two_server(self) -> None:
        self.note("2. the CyTube server is killed", headline=True)
        self.note(f"   (demo timings: reconnect backoff {BACKOFF_BASE_SECONDS}s doubling to "
                  f"{BACKOFF_CAP_SECONDS}s, +/-25% jitter; production: 2s doubling to 300s)")
        await self.server.stop()
        await wait_until("the room notices", lambda: not self.ready(), timeout=10)
        for i in range(3):
            text = f"announcement {i + 1} (sent while the server was down)"
            await self.app.rooms.send_chat(ROOM, text)
            self.bot_lines.append(text)
        self.note("bot queued 3 lines while offline")
        await asyncio.sleep(SERVER_DOWN_SECONDS)
        self.note("the server is back (same port); the reachability probe should notice", headline=True)
        back_at = time.monotonic()
        await self.server.start()
        await wait_until("room ready again", self.ready)
        self.note(f"room READY {time.monotonic() - back_at:.1f}s after the server came back")
        await wait_until("queued lines delivered", self.bot_lines_delivered)
        self.note("all 3 queued lines delivered (seen in the server's own chat record)")
        await self.chat(6, "welcome back")
        await wait_until("chat lines in the database", self.rows_match)

    def bot_lines_delivered(self) -> bool:
        said = {r.text for r in self.server.chat_log(ROOM) if r.username == BOT}
        return all(t in said for t in self.bot_lines)

    async def act_three_database(self) -> None:
        self.note("3. the database becomes unavailable (fault switch on the SQL path)", headline=True)
        self.switch.down = True
        await self.chat(15, "during the outage")
        await asyncio.sleep(DATABASE_DOWN_SECONDS)
        pending = await self.queue_count("sql_operation", ("pending", "processing"))
        self.note(f"{self.switch.refused} database sessions refused; {pending} chat-log batches "
                  "waiting in the retry queue")
        self.switch.down = False
        self.note("the database is back; retries land", headline=True)
        await wait_until("every chat line in the database", self.rows_match, timeout=40)
        await wait_until("retry queue drained", self._sql_drained)
        self.note(f"{count_rows(self.db)} chat lines in daz_chatlog, none lost, none twice")

    async def _sql_drained(self) -> bool:
        return await self.queue_count("sql_operation", ("pending", "processing")) == 0

    async def queue_count(self, op: str, statuses: tuple[str, ...]) -> int:
        try:
            return sum(r.count for r in await self.app.store.stats()
                       if r.operation_type == op and r.status in statuses)
        except Exception:  # noqa: BLE001 - only for narration
            return -1

    async def act_four_poison(self) -> None:
        self.note("4. a poison operation", headline=True)
        ids = await self.app.queue.schedule(NewItem(operation_type=POISON_OPERATION,
                                                    payload={"what": "demo"}))
        self.poison_id = ids[0]
        self.app.queue.wake()
        await wait_until("poison dead-lettered", lambda: self.item_status("dead_letter"))
        self.note(f"item #{self.poison_id} is in the dead-letter queue after {self.poison.attempts} "
                  "attempt(s): it failed permanently")
        self.poison.fixed = True
        self.note("operator fixes the cause and replays it (daz retry replay / POST /api/retry/{id}/replay)")
        await self.app.replay(self.poison_id)
        await wait_until("replayed item completed", lambda: self.item_status("completed"))
        self.note(f"item #{self.poison_id} completed after the replay")

    async def item_status(self, status: str) -> bool:
        if self.poison_id is None:
            return False
        item = await self.app.store.get(self.poison_id)
        return str(item.status) == status

    def summarise(self) -> Summary:
        """The final table, from the database file and the fake server's record only."""
        s = Summary()
        server_lines = self.server.chat_log(ROOM)
        with contextlib.closing(sqlite_connect(self.db, busy_timeout_seconds=5)) as conn:
            rows = conn.execute(
                "SELECT username, event_time_ms, message FROM daz_chatlog WHERE kind = 'chat'").fetchall()
            retried = conn.execute(
                "SELECT count(*), coalesce(sum(attempt), 0) FROM daz_retry_queue "
                "WHERE operation_type = 'sql_operation'").fetchone()
            poison = conn.execute(
                "SELECT status, attempt FROM daz_retry_queue WHERE id = ?", (self.poison_id,)).fetchone()
        stored = {(u, t, m) for u, t, m in rows}
        truth = {(r.username, r.time_ms, r.text) for r in server_lines}
        lost = len(truth - stored)
        duplicates = len(rows) - len(stored)
        bot_texts = [r.text for r in server_lines if r.username == BOT]
        bot_dupes = sum(bot_texts.count(t) - 1 for t in set(bot_texts) if t in self.bot_lines)
        bot_missing = sum(1 for t in self.bot_lines if t not in bot_texts)
        reconnects = max(self.server.connections_total - 1, 0)
        replayed = poison is not None and poison[0] == "completed"
        s.rows = [
            ("chat lines said (server record)", str(len(server_lines)), "fake server"),
            ("events received and stored", str(len(rows)), "daz_chatlog"),
            ("reconnects", str(reconnects), "fake server connections"),
            ("lines sent while offline, delivered",
             f"{len(self.bot_lines) - bot_missing}/{len(self.bot_lines)}", "fake server"),
            ("retried SQL batches (attempts)", f"{retried[0]} ({retried[1]})", "daz_retry_queue"),
            ("dead letters (replayed)", f"{int(self.dead_lettered_seen > 0)} ({'yes' if replayed else 'no'})",
             "daz_retry_queue"),
            ("lost", str(lost + bot_missing), "server record vs database"),
            ("duplicates", str(duplicates + bot_dupes), "database and server record"),
        ]
        if lost or bot_missing:
            s.problems.append(f"{lost} chat line(s) missing from the database, {bot_missing} bot line(s) "
                              "never reached the server")
        if duplicates or bot_dupes:
            s.problems.append(f"{duplicates} duplicated row(s), {bot_dupes} bot line(s) delivered twice")
        if reconnects < 1:
            s.problems.append("the bot never reconnected")
        if retried[0] < 1:
            s.problems.append("no SQL operation went through the retry queue")
        if poison is None or poison[0] != "completed":
            s.problems.append("the poison operation was not replayed to completion")
        return s


async def run_demo(console: Console, stopping: asyncio.Event, *, keep_running: bool = False,
                   time_limit: float = DEFAULT_TIME_LIMIT_SECONDS, workdir: Path | None = None) -> bool:
    """Run the story; True when it held. ``stopping`` (signals) ends ``--keep-running``."""
    with contextlib.ExitStack() as stack:
        root = workdir if workdir is not None else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="daz-demo-")))
        return await _run(console, stopping, root, keep_running=keep_running, time_limit=time_limit)


async def _run(console: Console, stopping: asyncio.Event, root: Path, *, keep_running: bool,
               time_limit: float) -> bool:
    display = Display(console)
    poison = Poison()
    limits = CytubeLimits(guest_login_window_seconds=GUEST_WINDOW_SECONDS)
    async with FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0,
                                playback=PlaybackTiming(tick_seconds=0.2), limits=limits) as server:
        cfg = demo_config(root, server.url)
        db = root / "demo.db"
        console.print(f"daz demo: fake CyTube server on {server.url}, database {db}", highlight=False)
        async with DazApp(cfg, AppOptions(stop_grace_seconds=5.0)) as app:
            switch = SwitchedBackend(app.sql.backend)
            app.sql.backend = switch
            app.queue.register(POISON_OPERATION, poison.handle)
            story = Story(app, server, display, db, switch=switch, poison=poison)
            for pattern in ("room.state_changed", "breaker.state_changed", "retry.dead_lettered",
                            "plugin.crashed"):
                app.bus.subscribe(pattern, story.on_event, name=f"demo:{pattern}")
            app_stop = asyncio.Event()
            display_stop = asyncio.Event()
            summary: Summary | None = None
            failure: str | None = None
            with display:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(app.run(app_stop), name="demo.app")
                    tg.create_task(display.refresh_loop(app, db, display_stop), name="demo.display")
                    try:
                        await _announce(app, display)
                        async with asyncio.timeout(time_limit):
                            await story.act_one_chat()
                            await story.act_two_server()
                            await story.act_three_database()
                            await story.act_four_poison()
                            await app.bus.drain(timeout=2)
                    except TimeoutError as exc:
                        failure = str(exc) or f"the story did not finish within {time_limit:.0f}s"
                        display.note(f"FAILED: {failure}", headline=True)
                    finally:
                        display_stop.set()
                        if not keep_running:
                            app_stop.set()
                    summary = story.summarise()
                    if failure is not None:
                        summary.problems.insert(0, failure)
                    _print_summary(console, summary)
                    if keep_running:
                        url = app.health_server.url if app.health_server is not None else "(disabled)"
                        console.print(f"--keep-running: status page {url}/  (Ctrl-C to stop)",
                                      highlight=False)
                        await stopping.wait()
                        app_stop.set()
            return summary.held


async def _announce(app: DazApp, display: Display) -> None:
    if app.health_server is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await app.health_server.started.wait()
            url = app.health_server.url
            display.note(f"status page {url}/  metrics {url}/metrics")


def _print_summary(console: Console, summary: Summary) -> None:
    table = Table(title="demo summary (from the database and the fake server's record)")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("source")
    for row in summary.rows:
        table.add_row(*row)
    console.print(table)
    if summary.held:
        console.print("RESULT: the story held: nothing lost, nothing duplicated", highlight=False)
    else:
        for problem in summary.problems:
            console.print(f"RESULT: FAILED: {problem}", highlight=False)
