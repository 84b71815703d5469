"""An asyncio event bus: dotted names, segment patterns, bounded per-subscriber queues, request/reply.

Pattern rule (documented in docs/events.md): names are split on dots; ``*`` matches exactly ONE
segment and ``**`` matches any number of segments (including none). So ``*.failed`` matches
``retry.failed`` but not ``sql.query.failed``; use ``sql.*.failed`` or ``**.failed`` for that.
A glob that crosses dots lets a subscriber catch events it never meant to (a retry handler
catching its own failure events loops for ever); segment patterns make such overlaps visible in
the pattern itself.

Publishing never blocks and never raises because of a subscriber: each subscriber has its own
bounded queue and worker task. When a queue is full the event is dropped for that subscriber only
(drop-newest), counted in ``daz_bus_dropped_total{subscriber}`` and logged (rate-limited).
A handler that raises is isolated: logged with its event and reported as ``bus.handler_failed``.

Metric labels use the subscription's *label* (the ``name`` given to ``subscribe``, or the handler's
qualified name), never the per-instance ``#n`` suffix, so label cardinality stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from daz.clock import Clock, SystemClock
from daz.errors import NoHandler, RequestTimeout
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.events")

Handler = Callable[["Event"], Awaitable[None] | None]
Responder = Callable[["Event"], Awaitable[Any]]

HANDLER_FAILED = "bus.handler_failed"
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_CLOSE_TIMEOUT_SECONDS = 1.0
_DROP_LOG_EVERY = 1000
_ROUTE_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Event:
    """The envelope every bus event travels in."""

    name: str
    data: Any
    correlation_id: str | None
    source: str | None
    timestamp: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    reply_to: str | None = None


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (segments, ``*`` one segment, ``**`` any number) matches ``name``."""
    return _match(tuple(pattern.split(".")), tuple(name.split(".")))


def _match(pat: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pat:
        return not parts
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    if head in ("*", parts[0]):
        return _match(rest, parts[1:])
    return False


class Subscription:
    """One subscriber: a pattern, a handler, a bounded queue and a drop counter."""

    def __init__(
        self, bus: EventBus, pattern: str, handler: Handler, name: str, queue_size: int, *, label: str
    ) -> None:
        self.bus = bus
        self.pattern = pattern
        self.handler = handler
        self.name = name
        self.label = label
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.failures = 0
        self.delivered = 0
        self.active = True

    def offer(self, event: Event) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.bus.metrics is not None:
                self.bus.metrics.bus_dropped.labels(subscriber=self.label).inc()
            if self.dropped == 1 or self.dropped % _DROP_LOG_EVERY == 0:
                log.warning("bus.event_dropped", subscriber=self.name, event_name=event.name,
                            dropped=self.dropped, queue_size=self.queue.maxsize)
            return False
        return True

    async def pump(self) -> None:
        """Deliver queued events to the handler one at a time, isolating failures."""
        queue, handler = self.queue, self.handler
        while True:
            event = await queue.get()
            try:
                result = handler(event)
                if result is not None and inspect.isawaitable(result):
                    await result
                self.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a subscriber's bug must never kill the bus
                self.failures += 1
                self.bus.report_handler_failure(self, event, exc)
            finally:
                queue.task_done()


class EventBus:
    """Publish/subscribe and request/reply inside one process.

    Use as ``async with EventBus() as bus:``; the context owns one ``TaskGroup`` holding a named
    pump task per subscription. Events published before entry wait in the bounded queues.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        metrics: DazMetrics | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT_SECONDS,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.metrics = metrics
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self._subs: list[Subscription] = []
        self._route_cache: dict[str, list[Subscription]] = {}
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._responders: dict[str, Subscription] = {}
        self._taps: list[tuple[str, list[Event]]] = []
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[Subscription, asyncio.Task[None]] = {}
        self._names = itertools.count(1)
        self.published = 0

    # lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> EventBus:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        for sub in self._subs:
            self._start(sub)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Cooperative first: on a clean exit, queued events get a short chance to be handled.
        if exc_info[0] is None and self.close_timeout > 0:
            await self.drain(self.close_timeout)
        group, self._group = self._group, None
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        if group is not None:
            await group.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been handled (or ``timeout`` passes).

        Handlers may publish more events while we wait, so passes repeat until one ends with no new
        publications and every queue empty.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    before = self.published
                    for sub in list(self._subs):
                        if sub in self._tasks:
                            await sub.queue.join()
                    if self.published == before and all(
                        s.queue.empty() for s in self._subs if s in self._tasks
                    ):
                        return

    def _start(self, sub: Subscription) -> None:
        if self._group is not None and sub not in self._tasks:
            self._tasks[sub] = self._group.create_task(sub.pump(), name=f"bus.sub.{sub.name}")

    # subscribe -------------------------------------------------------------------------------
    def subscribe(
        self, pattern: str, handler: Handler, *, name: str | None = None, queue_size: int | None = None
    ) -> Subscription:
        """Deliver every event whose name matches ``pattern`` to ``handler`` (sync or async)."""
        label = name or str(getattr(handler, "__qualname__", "handler"))
        sub_name = name or f"{label}#{next(self._names)}"
        return self._add(pattern, handler, sub_name, label, queue_size)

    def _add(
        self, pattern: str, handler: Handler, name: str, label: str, queue_size: int | None
    ) -> Subscription:
        sub = Subscription(self, pattern, handler, name, queue_size or self.queue_size, label=label)
        self._subs.append(sub)
        self._route_cache.clear()
        self._start(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        if sub in self._subs:
            self._subs.remove(sub)
        self._route_cache.clear()
        for request_name, responder in list(self._responders.items()):
            if responder is sub:
                del self._responders[request_name]
        task = self._tasks.pop(sub, None)
        if task is not None:
            task.cancel()

    @contextlib.asynccontextmanager
    async def recording(self, pattern: str = "**") -> AsyncIterator[list[Event]]:
        """Collect matching events into a list for the duration of the block (tests, demo).

        Recording is synchronous (the event is in the list when ``publish`` returns) and unbounded
        in count only for the block's lifetime; it is a tap, not a subscriber, so it never drops.
        """
        seen: list[Event] = []
        tap = (pattern, seen)
        self._taps.append(tap)
        try:
            yield seen
        finally:
            self._taps.remove(tap)

    # publish ---------------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        source: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Event:
        """Queue ``name`` for every matching subscriber; never blocks, never raises for them."""
        event = Event(
            name=name,
            data=data if data is not None else {},
            correlation_id=correlation_id,
            source=source,
            timestamp=self.clock.now(),
            tags=dict(tags) if tags else {},
        )
        self.dispatch(event)
        return event

    def dispatch(self, event: Event) -> None:
        self.published += 1
        for pattern, seen in self._taps:
            if pattern_matches(pattern, event.name):
                seen.append(event)
        for sub in self._route(event.name):
            sub.offer(event)

    def _route(self, name: str) -> list[Subscription]:
        subs = self._route_cache.get(name)
        if subs is None:
            subs = [s for s in self._subs if pattern_matches(s.pattern, name)]
            if len(self._route_cache) >= _ROUTE_CACHE_MAX:
                self._route_cache.clear()  # names come from code, but never let the cache grow unbounded
            self._route_cache[name] = subs
        return subs

    def report_handler_failure(self, sub: Subscription, event: Event, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.bus_handler_failures.labels(subscriber=sub.label).inc()
        log.error("bus.handler_failed", subscriber=sub.name, event_name=event.name,
                  correlation_id=event.correlation_id, error=repr(exc), exc_info=exc)
        if event.name != HANDLER_FAILED:  # a failing failure-handler must not loop
            self.publish(
                HANDLER_FAILED,
                {"subscriber": sub.name, "event_name": event.name, "error": repr(exc)},
                correlation_id=event.correlation_id,
                source="bus",
            )

    # request / reply -------------------------------------------------------------------------
    def respond(self, name: str, responder: Responder, *, queue_size: int | None = None) -> Subscription:
        """Answer requests named exactly ``name``; the responder's return value (or error) is the reply."""
        if name in self._responders:
            raise ValueError(f"'{name}' already has a responder")

        async def handle(event: Event) -> None:
            if event.reply_to is None:
                return
            fut = self._pending.get(event.reply_to)
            try:
                result = await responder(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the requester receives the error instead
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                return
            if fut is not None and not fut.done():
                fut.set_result(result)

        sub = self.subscribe(name, handle, name=f"responder:{name}", queue_size=queue_size)
        self._responders[name] = sub
        return sub

    async def request(
        self,
        name: str,
        data: Any = None,
        *,
        timeout: float,
        correlation_id: str | None = None,
        source: str | None = None,
    ) -> Any:
        """Send a request and wait for the reply; ``RequestTimeout`` after ``timeout`` seconds."""
        if name not in self._responders:
            raise NoHandler(f"no responder for '{name}'", operation_type=name)
        reply_id = uuid.uuid4().hex
        corr = correlation_id or reply_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[reply_id] = fut
        try:
            event = Event(name=name, data=data if data is not None else {}, correlation_id=corr,
                          source=source, timestamp=self.clock.now(), reply_to=reply_id)
            self.dispatch(event)
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError as exc:
                raise RequestTimeout(
                    f"no reply to '{name}' within {timeout}s", correlation_id=corr, operation_type=name
                ) from exc
        finally:
            self._pending.pop(reply_id, None)

    # introspection ---------------------------------------------------------------------------
    def stats(self) -> list[dict[str, Any]]:
        return [
            {"subscriber": s.name, "pattern": s.pattern, "queued": s.queue.qsize(), "dropped": s.dropped,
             "failures": s.failures, "delivered": s.delivered}
            for s in self._subs
        ]

