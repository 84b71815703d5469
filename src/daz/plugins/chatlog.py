"""Built-in ``chatlog`` plugin: chat, PMs, joins/leaves and media changes into ``daz_chatlog``.

Every row carries an idempotency key derived from the event itself (room, kind, server time, user,
a hash of the text), and the insert is ``ON CONFLICT (idempotency_key) DO NOTHING``. So retrying a
batch after a database error, or seeing the same line again in the 15-line backlog CyTube replays on
every join, never makes a duplicate; logging the backlog even recovers lines said while the bot was
disconnected. Rows are buffered and written in batches under a batch idempotency key. When a batch
fails retryably the SQL service queues that exact batch in the durable retry queue (``SqlRetryScheduled``)
and it lands later, once; if it could not be queued, the batch stays in the buffer and is retried
here with backoff (nothing is dropped while the buffer has room).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, LiteralString

from pydantic import Field

from daz.backoff import proportional_backoff
from daz.cytube.protocol import ChatMessage, PrivateMessage
from daz.errors import DazError, SqlRetryScheduled
from daz.events.bus import Event
from daz.plugins.base import PluginContext, PluginSettings, event_fields, parse_settings

INSERT_SQL: Final[LiteralString] = (
    "INSERT INTO daz_chatlog (idempotency_key, room, kind, username, target, message, meta, event_time_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING"
)
SUBSCRIPTIONS: Final = {
    "cytube.chat": "chat",
    "cytube.pm": "pm",
    "cytube.user.joined": "join",
    "cytube.user.left": "leave",
    "cytube.media.changed": "media",
}
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0

Row = tuple[str, str, str, str | None, str | None, str | None, str | None, int]


class ChatlogSettings(PluginSettings):
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    flush_interval_seconds: Annotated[float, Field(gt=0)] = 0.5
    max_buffer_rows: Annotated[int, Field(ge=1)] = 200_000
    stop_flush_seconds: Annotated[float, Field(ge=0)] = 5.0
    log_backlog: bool = True
    kinds: tuple[str, ...] = tuple(SUBSCRIPTIONS.values())


def _epoch_ms(value: Any, fallback: Event) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return int(fallback.timestamp.timestamp() * 1000)


def row_for(kind: str, event: Event, fields: Mapping[str, Any] | None = None) -> Row | None:
    """The chatlog row for a bus event, with its idempotency key; None if it is not loggable. Pure."""
    f = fields if fields is not None else event_fields(event)
    room = str(f.get("room") or "")
    if not room:
        return None
    user = str(f["username"]) if f.get("username") is not None else None
    message: str | None = None
    target: str | None = None
    meta: Any = f.get("meta")
    if kind in ("chat", "pm"):
        message = str(f.get("msg") or "")
        target = str(f["to"]) if kind == "pm" and f.get("to") is not None else None
        # Server time makes the backlog replay of a line produce the same key as the live line.
        when = _epoch_ms(f.get("time"), event)
    elif kind == "media":
        message = str(f.get("title") or "")
        target = str(f.get("id") or "") or None
        meta = {"type": f.get("type"), "seconds": f.get("seconds")}
        when = _epoch_ms(None, event)
    else:
        when = _epoch_ms(None, event)
    return _row(room, kind, user, target, message, meta, when)


def _row(  # noqa: PLR0917 - private; the positional order is the row's column order
    room: str, kind: str, user: str | None, target: str | None, message: str | None, meta: Any, when: int
) -> Row:
    meta_text = json.dumps(meta, sort_keys=True, default=str) if meta else None
    digest = hashlib.sha256(
        "\x1f".join((room, kind, str(when), user or "", target or "", message or "")).encode()
    ).hexdigest()[:32]
    return (f"chatlog:{digest}", room, kind, user, target, message, meta_text, when)


def fast_chat_row(kind: str, event: Event, *, log_backlog: bool) -> Row | bool | None:
    """``row_for`` for the rooms package's own chat/PM events, without flattening them first.

    Returns the same row ``row_for`` would (same idempotency key), None when the line is not logged,
    or False when the event has another shape and must take the general path. Pure.
    """
    data = event.data
    if type(data) is not dict:
        return False
    inner = data.get("event")
    if kind == "chat" and type(inner) is ChatMessage:
        target = None
    elif kind == "pm" and type(inner) is PrivateMessage:
        target = inner.to
    else:
        return False
    if data.get("backlog") and (kind != "chat" or not log_backlog):
        return None
    room = str(data.get("room") or "")
    if not room:
        return None
    return _row(room, kind, inner.username, target, inner.text, inner.meta, inner.time_ms)


class ChatlogPlugin:
    name = "chatlog"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None, *, rng: random.Random | None = None) -> None:
        self.settings = parse_settings(ChatlogSettings, self.name, config or {})
        self.rng = rng if rng is not None else random.Random()
        self.buffer: list[Row] = []
        self.handed_off = 0
        self.overflowed = 0
        self._full = asyncio.Event()
        self._last_media: dict[str, str | None] = {}
        self._ctx: PluginContext | None = None

    async def setup(self, ctx: PluginContext) -> None:
        if ctx.sql is None:
            raise DazError("chatlog needs the SQL service, which is not configured", retryable=False)
        self._ctx = ctx
        for pattern, kind in SUBSCRIPTIONS.items():
            if kind in self.settings.kinds:
                ctx.subscribe(pattern, self._handler(kind))

    def _handler(self, kind: str) -> Any:
        def handle(event: Event) -> None:
            self.add(kind, event)

        return handle

    def add(self, kind: str, event: Event) -> None:
        fast = fast_chat_row(kind, event, log_backlog=self.settings.log_backlog)
        if fast is False:
            f = event_fields(event)
            if f.get("backlog") and (kind != "chat" or not self.settings.log_backlog):
                return
            row = row_for(kind, event, f)
        else:
            row = fast if isinstance(fast, tuple) else None
        if row is None:
            return
        if kind == "media":
            # CyTube re-announces the current item on every (re)join; log a change, not a rejoin.
            if self._last_media.get(row[1]) == row[4]:
                return
            self._last_media[row[1]] = row[4]
        if len(self.buffer) >= self.settings.max_buffer_rows:
            self.overflowed += 1
            if self._ctx is not None and (self.overflowed == 1 or self.overflowed % 1000 == 0):
                self._ctx.log.error("chatlog.buffer_full", dropped=self.overflowed,
                                    max_buffer_rows=self.settings.max_buffer_rows)
            return
        self.buffer.append(row)
        if len(self.buffer) >= self.settings.batch_size:
            self._full.set()

    async def run(self, stopping: asyncio.Event) -> None:
        ctx = self._require_ctx()
        failures = 0
        while not stopping.is_set():
            if failures:
                delay = proportional_backoff(failures, self.rng, base=RETRY_BASE_SECONDS,
                                             cap=RETRY_CAP_SECONDS)
            else:
                delay = self.settings.flush_interval_seconds
            await self._wait(ctx, stopping, delay, wake_on_full=not failures)
            failures = 0 if await self.flush(ctx) else failures + 1
        await self._final_flush(ctx)

    def _require_ctx(self) -> PluginContext:
        if self._ctx is None:
            raise DazError("chatlog: run() called before setup()")
        return self._ctx

    async def _wait(
        self, ctx: PluginContext, stopping: asyncio.Event, seconds: float, *, wake_on_full: bool
    ) -> None:
        if self._full.is_set() and wake_on_full:
            return
        woke = asyncio.Event()
        clock = ctx.clock

        async def timer() -> None:
            await clock.sleep(seconds)
            woke.set()

        async def on(event: asyncio.Event) -> None:
            await event.wait()
            woke.set()

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(timer(), name="chatlog.timer"),
                     tg.create_task(on(stopping), name="chatlog.stopping")]
            if wake_on_full:
                tasks.append(tg.create_task(on(self._full), name="chatlog.full"))
            await woke.wait()
            for task in tasks:
                task.cancel()

    async def flush(self, ctx: PluginContext) -> bool:
        """Write buffered rows batch by batch; False (rows kept) on a retryable failure."""
        sql = ctx.sql
        if sql is None:
            return False
        while self.buffer:
            batch = self.buffer[: self.settings.batch_size]
            try:
                await sql.exec_many(INSERT_SQL, batch, source=self.name, idempotency_key=_batch_key(batch))
            except SqlRetryScheduled as exc:
                # The SQL service queued this exact batch in the durable retry queue under its key:
                # it will land once, so it is no longer ours to keep.
                self.handed_off += len(batch)
                ctx.log.info("chatlog.batch_queued", rows=len(batch), correlation_id=exc.correlation_id)
                del self.buffer[: len(batch)]
                continue
            except DazError as exc:
                if exc.retryable is False:
                    self._reject(ctx, batch, exc)
                    continue
                ctx.log.warning("chatlog.flush_failed", rows=len(batch), buffered=len(self.buffer),
                                error=str(exc), retryable=True)
                return False
            del self.buffer[: len(batch)]
            for kind, count in Counter(row[2] for row in batch).items():
                ctx.metrics.chatlog_rows.labels(kind=kind).inc(count)
        self._full.clear()
        return True

    def _reject(self, ctx: PluginContext, batch: Sequence[Row], exc: DazError) -> None:
        # A permanent error would block the buffer forever: keep the rows in the log record (the
        # operator can re-insert them) and move on, rather than wedge every later line behind it.
        ctx.log.error("chatlog.rows_rejected", rows=len(batch), error=str(exc),
                      keys=[row[0] for row in batch[:20]])
        del self.buffer[: len(batch)]

    async def _final_flush(self, ctx: PluginContext) -> None:
        deadline = ctx.clock.monotonic() + self.settings.stop_flush_seconds
        attempt = 0
        while self.buffer and ctx.clock.monotonic() < deadline:
            if await self.flush(ctx):
                return
            attempt += 1
            await ctx.clock.sleep(min(proportional_backoff(attempt, self.rng, base=0.2, cap=1.0),
                                      max(deadline - ctx.clock.monotonic(), 0)))
        if self.buffer:
            ctx.log.error("chatlog.unflushed_at_stop", rows=len(self.buffer))


def _batch_key(batch: Sequence[Row]) -> str:
    """A key naming exactly this set of rows (a retried batch that grew gets a new key)."""
    digest = hashlib.sha256("\n".join(row[0] for row in batch).encode()).hexdigest()[:32]
    return f"chatlog-batch:{digest}"
