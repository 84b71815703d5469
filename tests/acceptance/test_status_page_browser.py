"""The status page in a real headless Chromium against a running health server, a real room and the
fake CyTube server: the room shows READY, the server stops, the page shows the room leave READY.
Saves the screenshot the README shows (docs/status-page.png).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from pathlib import Path

import pytest
from tests.conftest import require

from daz.clock import SystemClock
from daz.config import CytubeConfig, DazConfig, HealthConfig, ProbeConfig, RoomConfig
from daz.cytube.rooms import RoomManager
from daz.events.bus import EventBus
from daz.health.checks import RoomLimits, RoomsCheck
from daz.health.external import ExternalCheck
from daz.health.http import HealthServer
from daz.health.monitor import HealthMonitor
from daz.health.process import LoopLagProbe, ProcessCheck
from daz.health.sources import StatusSources
from daz.health.status import StatusBoard
from daz.health.types import Check
from daz.metrics import DazMetrics
from daz.resilience.registry import BreakerRegistry
from daz.testing.fake_cytube import FakeCytubeServer, PlaybackTiming
from daz.transport.socketio import socketio_transport_factory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"


async def test_status_page_follows_the_room_through_a_server_outage() -> None:
    chromium = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    require(chromium is not None, "Debian chromium is not installed (run scripts/ensure-chromium.sh)")
    assert chromium is not None
    try:
        import playwright.async_api as playwright_api
    except ImportError:  # a test extra: missing only when the suite was installed without [test]
        require(False, "playwright is not installed (pip install '.[test]')")
        raise

    clock = SystemClock()
    metrics = DazMetrics()
    playback = PlaybackTiming(tick_seconds=0.2)
    # A registered account: a guest would wait out CyTube's 60 s guest-login window after the
    # outage (state WAITING, a warning), and this test is about the page showing the failure.
    async with FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0, playback=playback,
                                accounts={"dazbot": "pw"}) as server:
        config = DazConfig(
            rooms=[RoomConfig(channel="lobby", username="dazbot", password="pw",  # type: ignore[arg-type]
                              server_url=server.url)],
            cytube=CytubeConfig(
                base_url=server.url, liveness_margin_seconds=0.2, connect_timeout_seconds=2,
                join_timeout_seconds=2, login_timeout_seconds=2, probe=ProbeConfig(enabled=False),
                backoff={"base_seconds": 0.5, "max_seconds": 2.0},
            ),
            health=HealthConfig(port=0, interval_seconds=0.5, check_timeout_seconds=1.0,
                                external_interval_seconds=1.0),
        )
        async with EventBus(clock=clock, metrics=metrics) as bus:
            manager = RoomManager(config, bus, metrics, clock, random.Random(3), socketio_transport_factory)
            breakers = BreakerRegistry(config, bus, metrics, clock, random.Random(4))
            for name in ("database", "cytube:lobby"):
                breakers.get(name)
            probe = LoopLagProbe(clock, config.health.loop_lag_interval_seconds, metrics)
            checks: list[Check] = [
                RoomsCheck(lambda: [manager.room(n) for n in manager.rooms()], manager.reconnect, clock,
                           RoomLimits.from_config(config.cytube)),
                ProcessCheck(clock, config.health.thresholds, probe),
                ExternalCheck(server.url, "lobby", clock, interval=1.0, timeout=1.0),
            ]
            monitor = HealthMonitor(checks, bus, metrics, clock, config.health, lag_probe=probe)
            sources = StatusSources(
                rooms=lambda: [manager.room(n) for n in manager.rooms()],
                breakers=breakers.snapshot,
                channels=manager.channel_summary,
            )
            board = StatusBoard(monitor, sources, metrics, clock, config.health)
            board.timeline.attach(bus)
            http = HealthServer(monitor, board, metrics, config.health)
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                for service in (manager, monitor, http):
                    tg.create_task(service.run(stopping), name=f"test.{service.name}")
                try:
                    async with asyncio.timeout(10):
                        await http.started.wait()
                    async with playwright_api.async_playwright() as pw:
                        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                        try:
                            page = await browser.new_page(viewport={"width": 900, "height": 1100})
                            await page.goto(http.url + "/")
                            state = page.locator('[data-room="lobby"] .room-state .badge')
                            await playwright_api.expect(state).to_have_text("ready", timeout=15_000)
                            await playwright_api.expect(page.locator("#overall")).to_have_text(
                                "pass", timeout=10_000)
                            # The room card shows the channel replica: who is there, what plays.
                            await server.play("lobby", media_id="bbb", title="Big Buck <Bunny>",
                                              seconds=596)
                            card = page.locator('[data-room="lobby"]')
                            playing = card.locator(".now-playing")
                            await playwright_api.expect(playing).to_contain_text("Big Buck <Bunny>",
                                                                                 timeout=10_000)
                            await playwright_api.expect(playing).to_contain_text("/ 9:56")
                            await playwright_api.expect(card.locator(".users")).to_contain_text("dazbot")
                            await playwright_api.expect(card.locator(".playlist-length")).to_be_visible()
                            await server.stop()
                            await playwright_api.expect(state).not_to_have_text("ready", timeout=15_000)
                            left_ready = page.locator('[data-room="lobby"] .timeline li',
                                                      has_text="ready →")
                            await playwright_api.expect(left_ready.first).to_be_visible()
                            await playwright_api.expect(page.locator("#overall")).to_have_text(
                                "fail", timeout=10_000)
                            await page.wait_for_timeout(1200)  # let the chart gather a few samples
                            SCREENSHOT.parent.mkdir(exist_ok=True)
                            await page.screenshot(path=str(SCREENSHOT), full_page=True)
                        finally:
                            await browser.close()
                finally:
                    stopping.set()
    assert SCREENSHOT.stat().st_size > 10_000
