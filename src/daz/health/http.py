"""The health HTTP server (aiohttp, 127.0.0.1 by default).

``/livez`` answers from the event loop alone; ``/readyz`` and ``/health`` read the monitor's last
report (no I/O per request, so they answer during any dependency outage); ``/metrics`` is the
Prometheus registry; ``/`` and ``/static/*`` the status page; ``/api/status`` its data. Admin
routes exist only when ``health.admin_token`` is configured and compare the
``X-Daz-Admin-Token`` header in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daz.config import HealthConfig
from daz.health.checks import describe_error
from daz.health.monitor import HealthMonitor
from daz.health.report import HEALTH_JSON, health_json
from daz.health.sources import ROOM_ACTIONS, resolve, room_row, state_name
from daz.health.status import StatusBoard
from daz.health.types import HealthStatus
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.health")

STATIC_DIR = Path(__file__).parent / "static"
ADMIN_HEADER = "X-Daz-Admin-Token"
BREAKER_ACTIONS = frozenset({"open", "close", "reset"})
_NO_STORE = {"Cache-Control": "no-store"}


def _json(data: Any, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status, content_type=content_type,
        headers=_NO_STORE,
    )


def build_app(monitor: HealthMonitor, board: StatusBoard, metrics: DazMetrics, config: HealthConfig,
              ) -> web.Application:
    """The aiohttp application (routes only; ``HealthServer`` binds it)."""
    routes = _Routes(monitor, board, metrics, config)
    app = web.Application()
    app.router.add_get("/livez", routes.livez)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/api/status", routes.status)
    app.router.add_get("/", routes.index)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    if config.admin_token is not None:
        app.router.add_get("/api/breakers", routes.breakers)
        app.router.add_post("/api/breakers/{name}/{action}", routes.breaker_action)
        app.router.add_post("/api/retry/{id}/replay", routes.replay)
        app.router.add_get("/api/rooms", routes.rooms)
        app.router.add_post("/api/rooms/{name}/{action}", routes.room_action)
    return app


class _Routes:
    def __init__(self, monitor: HealthMonitor, board: StatusBoard, metrics: DazMetrics,
                 config: HealthConfig) -> None:
        self.monitor = monitor
        self.board = board
        self.daz_metrics = metrics
        self.config = config

    async def livez(self, _request: web.Request) -> web.Response:
        # Only the process and its loop: never CyTube, never the database (no restart storms).
        lag = self.monitor.lag_probe.lag
        return _json({"status": "pass", "loop_lag_ms": None if lag is None else round(lag * 1000, 2),
                      "monitor_ticks": self.monitor.ticks})

    async def readyz(self, _request: web.Request) -> web.Response:
        report = self.monitor.latest()
        if report is None:
            return _json({"status": "fail", "output": "starting: no health check has completed yet"},
                         status=503)
        failing = report.failing()
        if failing:
            return _json({"status": "fail", "failing": [
                {"component": c.component, "output": c.output} for c in failing]}, status=503)
        return _json({"status": report.status.value})

    async def health(self, _request: web.Request) -> web.Response:
        report = self.monitor.latest()
        doc = health_json(report)
        code = 503 if report is None or report.status is HealthStatus.FAIL else 200
        return _json(doc, status=code, content_type=HEALTH_JSON)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = self.daz_metrics.exposition()
        resp = web.Response(body=body, headers=_NO_STORE)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def status(self, _request: web.Request) -> web.Response:
        return _json(await self.board.snapshot())

    async def index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    # admin ------------------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        token = self.config.admin_token
        given = request.headers.get(ADMIN_HEADER, "")
        if token is None:
            return False
        ok = hmac.compare_digest(given.encode(), token.get_secret_value().encode())
        if not ok:
            log.warning("health.admin_denied", path=request.path, remote=request.remote)
        return ok

    async def breakers(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"error": f"missing or wrong {ADMIN_HEADER} header"}, status=401)
        source = self.board.sources.breakers
        if source is None:
            raise web.HTTPNotFound
        rows = await resolve(source())
        return _json([{k: state_name(v) if k == "state" else v for k, v in dict(r).items()
                       if v is None or isinstance(v, bool | int | float | str) or k == "state"}
                      for r in rows])

    async def breaker_action(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"error": f"missing or wrong {ADMIN_HEADER} header"}, status=401)
        name, action = request.match_info["name"], request.match_info["action"]
        act, source = self.board.sources.breaker_action, self.board.sources.breakers
        if action not in BREAKER_ACTIONS or act is None:
            raise web.HTTPNotFound
        if source is not None and name not in {str(r.get("name")) for r in await resolve(source())}:
            return _json({"error": f"no breaker named {name!r}"}, status=404)
        try:
            await resolve(act(name, action))
        except Exception as exc:  # noqa: BLE001 - reported to the operator who asked
            return _json({"error": describe_error(exc)}, status=500)
        log.warning("health.admin_breaker", breaker=name, action=action, remote=request.remote)
        return _json({"breaker": name, "action": action, "ok": True})

    async def rooms(self, request: web.Request) -> web.Response:
        """Every room: state, reason, attempt, server (``daz rooms``)."""
        if not self._authorised(request):
            return _json({"error": f"missing or wrong {ADMIN_HEADER} header"}, status=401)
        source = self.board.sources.rooms
        if source is None:
            raise web.HTTPNotFound
        return _json([room_row(r) for r in source()])

    async def room_action(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"error": f"missing or wrong {ADMIN_HEADER} header"}, status=401)
        name, action = request.match_info["name"], request.match_info["action"]
        act = self.board.sources.room_action
        if act is None or action not in ROOM_ACTIONS:
            return _json({"error": f"unknown action {action!r}; expected one of {', '.join(ROOM_ACTIONS)}"},
                         status=404)
        try:
            await resolve(act(name, action))
        except KeyError:
            return _json({"error": f"no room named {name!r} is configured"}, status=404)
        except Exception as exc:  # noqa: BLE001 - reported to the operator who asked
            return _json({"error": describe_error(exc)}, status=500)
        log.warning("health.admin_room", room=name, action=action, remote=request.remote)
        return _json({"room": name, "action": action, "ok": True})

    async def replay(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"error": f"missing or wrong {ADMIN_HEADER} header"}, status=401)
        act = self.board.sources.replay
        if act is None:
            raise web.HTTPNotFound
        try:
            item_id = int(request.match_info["id"])
        except ValueError:
            return _json({"error": "id must be an integer"}, status=400)
        try:
            found = await resolve(act(item_id))
        except Exception as exc:  # noqa: BLE001
            return _json({"error": describe_error(exc)}, status=500)
        if not found:
            return _json({"error": f"no dead letter with id {item_id}"}, status=404)
        log.warning("health.admin_replay", item_id=item_id, remote=request.remote)
        return _json({"id": item_id, "replayed": True})


class HealthServer:
    """A ``Service`` serving ``build_app`` on ``config.host:config.port`` (port 0: any free port,
    see ``port`` once ``started`` is set)."""

    name = "health.http"

    def __init__(self, monitor: HealthMonitor, board: StatusBoard, metrics: DazMetrics,
                 config: HealthConfig) -> None:
        self.app = build_app(monitor, board, metrics, config)
        self.board = board
        self.config = config
        self.port: int | None = None
        self.started = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def run(self, stopping: asyncio.Event) -> None:
        # The page's throughput samples belong to the page: sampled while it is served.
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.board.throughput.run(stopping), name="health.throughput")
            await self._serve(stopping)

    async def _serve(self, stopping: asyncio.Event) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            addresses = runner.addresses
            self.port = int(addresses[0][1]) if addresses else self.config.port
            log.info("health.http_listening", host=self.config.host, port=self.port)
            self.started.set()
            await stopping.wait()
        finally:
            await runner.cleanup()
