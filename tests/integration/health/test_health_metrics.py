"""Metrics completeness: a scripted scenario through the real app (fake CyTube server, SQLite),
scraping ``/metrics`` over HTTP, asserting every metric the issues name actually moved."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daz.app import AppOptions, DazApp
from daz.config import validate_config
from daz.errors import DazError
from daz.store.base import NewItem, QueueItem
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer, PlaybackTiming

Scrape = dict[str, float]


async def scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    """Every sample as ``name{labels}`` → value."""
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def total(scrape_: Scrape, name: str) -> float:
    return sum(v for k, v in scrape_.items() if k.startswith(name + "{"))


def values(scrapes: list[Scrape], key: str) -> set[float]:
    return {s[key] for s in scrapes if key in s}


async def until(cond: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = cond()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def test_every_named_metric_moves_during_a_scripted_scenario(tmp_path: Path) -> None:
    async with FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0,
                                playback=PlaybackTiming(tick_seconds=0.2),
                                limits=CytubeLimits(guest_login_window_seconds=0.5)) as server:
        config = validate_config({
            "rooms": [{"channel": "lobby", "username": "dazbot"}],
            "cytube": {"base_url": server.url, "connect_timeout_seconds": 2, "join_timeout_seconds": 2,
                       "login_timeout_seconds": 2, "liveness_margin_seconds": 0.2,
                       "rate_limit_min_wait_seconds": 0.5,
                       "backoff": {"base_seconds": 0.2, "max_seconds": 0.5}, "probe": {"enabled": False},
                       "servers": {"default": {"guest_login_window_seconds": 0.5}}},
            "database": {"url": f"sqlite:///{tmp_path / 'daz.db'}"},
            "retry": {"poll_interval_seconds": 0.2, "worker_count": 1, "lease_seconds": 5,
                      "heartbeat_interval_seconds": 1,
                      "retry_policies": {
                          "flaky": {"max_retries": 3, "initial_delay_seconds": 0.1,
                                    "max_delay_seconds": 0.2},
                          "poison": {"max_retries": 1, "initial_delay_seconds": 0.1,
                                     "max_delay_seconds": 0.2},
                      }},
            "breakers": {"default": {}, "flaky-dependency": {"minimum_calls": 2, "window_size": 2,
                                                             "break_seconds": 30}},
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "health": {"port": 0, "interval_seconds": 0.3, "external_check": False},
            "plugins": {},
        })
        attempts = {"flaky": 0, "poison": 0}

        async def flaky(item: QueueItem) -> None:
            attempts["flaky"] += 1
            if attempts["flaky"] == 1:
                raise DazError("transient", retryable=True)

        async def poison(item: QueueItem) -> None:
            attempts["poison"] += 1
            raise DazError("always broken", retryable=True)

        async with DazApp(config, AppOptions(stop_grace_seconds=3.0)) as app:
            app.queue.register("flaky", flaky)
            app.queue.register("poison", poison)
            stopping = asyncio.Event()
            scrapes: list[Scrape] = []
            async with asyncio.TaskGroup() as tg, aiohttp.ClientSession() as http:
                tg.create_task(app.run(stopping), name="test.app")
                try:
                    assert app.health_server is not None
                    async with asyncio.timeout(10):
                        await app.health_server.started.wait()
                    url = app.health_server.url

                    def room_state() -> str:
                        return str(app.rooms.room("lobby").state.value)

                    await until(lambda: room_state() == "ready")
                    await until(lambda: (r := app.monitor.latest()) is not None
                                and r.components["room:lobby"].status.value == "pass")
                    scrapes.append(await scrape(http, url))  # baseline, room READY

                    # chat both ways
                    await server.say("lobby", "alice", "hello bot")
                    await app.rooms.send_chat("lobby", "hello alice")
                    await until(lambda: any(r.username == "dazbot" for r in server.chat_log("lobby")))

                    # retries: one that succeeds on its second attempt, one that is dead-lettered
                    await app.queue.schedule(NewItem(operation_type="flaky", payload={}),
                                             NewItem(operation_type="poison", payload={}))
                    app.queue.wake()

                    async def settled() -> bool:
                        dead = await app.store.list(status="dead_letter", limit=10)
                        done = await app.store.list(status="completed", limit=10)
                        return bool(dead) and any(i.operation_type == "flaky" for i in done)

                    await until(settled)

                    # a breaker opens for real: two failed calls through it
                    breaker = app.breakers.get("flaky-dependency")

                    async def failing() -> None:
                        raise DazError("dependency down", retryable=True)

                    for _ in range(2):
                        with pytest.raises(DazError):
                            await breaker.call(failing)
                    assert breaker.state.value == "open"

                    # the room loses its server and comes back: a reconnect
                    await server.stop()
                    await until(lambda: room_state() != "ready")
                    await until(lambda: (r := app.monitor.latest()) is not None
                                and r.components["room:lobby"].status.value == "fail")
                    scrapes.append(await scrape(http, url))  # during the outage
                    await server.start()
                    await until(lambda: room_state() == "ready")
                    await until(lambda: (r := app.monitor.latest()) is not None
                                and r.components["room:lobby"].status.value != "fail")
                    scrapes.append(await scrape(http, url))
                finally:
                    stopping.set()

    first, outage, last = scrapes
    room = "room=lobby"
    # rooms
    assert first[f"daz_room_state{{{room}}}"] == 4.0  # ready
    assert outage[f"daz_room_state{{{room}}}"] != 4.0
    assert last[f"daz_room_state{{{room}}}"] == 4.0
    assert total(last, "daz_room_reconnects_total") > total(first, "daz_room_reconnects_total")
    assert last[f"daz_room_ready_seconds_count{{{room}}}"] > first[f"daz_room_ready_seconds_count{{{room}}}"]
    assert total(last, "daz_messages_received_total") > total(first, "daz_messages_received_total")
    assert total(last, "daz_messages_sent_total") > total(first, "daz_messages_sent_total")
    # health
    health_room = "daz_health_check_status{component=room:lobby}"
    assert (first[health_room], outage[health_room]) == (0.0, 2.0)
    assert last[health_room] in (0.0, 1.0)  # back; a warn remains while the lost session counts as a flap
    assert outage["daz_health_check_status{component=overall}"] == 2.0
    assert any(s["daz_event_loop_lag_seconds{}"] > 0 for s in scrapes)
    # retry queue
    assert total(last, "daz_retry_scheduled_total") >= total(first, "daz_retry_scheduled_total") + 2
    assert last["daz_retry_success_total{operation_type=flaky}"] >= 1
    assert last["daz_retry_failure_total{operation_type=poison}"] >= 1
    assert last["daz_retry_dead_letter_total{operation_type=poison}"] == 1
    # breakers
    assert last["daz_breaker_state{name=flaky-dependency}"] == 1.0
    assert last["daz_breaker_transitions_total{name=flaky-dependency,to=open}"] == 1
    assert last["daz_breaker_calls_total{name=flaky-dependency,outcome=failure}"] >= 2
