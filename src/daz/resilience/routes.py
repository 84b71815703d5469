"""The breaker admin API as aiohttp routes, for ``daz.health.http`` to mount.

``GET /api/breakers`` → ``{"breakers": [snapshot, ...]}``;
``POST /api/breakers/{name}/{open|close|reset|disable}`` → ``{"breaker": snapshot}``.
Both need the header ``X-Daz-Admin-Token``; without a configured token the admin API is off (403).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from daz.errors import UnknownBreaker
from daz.resilience.breaker import CircuitBreaker
from daz.resilience.registry import BreakerRegistry

ADMIN_TOKEN_HEADER = "X-Daz-Admin-Token"  # noqa: S105 - a header name, not a token


def breaker_routes(registry: BreakerRegistry, *, admin_token: str | None) -> list[web.RouteDef]:
    actions: dict[str, Callable[[str], CircuitBreaker]] = {
        "open": registry.force_open,
        "close": registry.force_close,
        "reset": registry.reset,
        "disable": registry.disable,
    }

    def refuse(request: web.Request) -> web.Response | None:
        if admin_token is None:
            return web.json_response({"error": "admin API disabled: set health.admin_token"}, status=403)
        given = request.headers.get(ADMIN_TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            return web.json_response({"error": f"missing or wrong {ADMIN_TOKEN_HEADER}"}, status=401)
        return None

    async def list_breakers(request: web.Request) -> web.Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        return web.json_response({"breakers": registry.snapshot()})

    async def act(request: web.Request) -> web.Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        name, action = request.match_info["name"], request.match_info["action"]
        operate = actions.get(action)
        if operate is None:
            return web.json_response(
                {"error": f"unknown action '{action}'; expected one of {', '.join(actions)}"}, status=404
            )
        try:
            breaker = operate(name)
        except UnknownBreaker as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({"breaker": breaker.snapshot()})

    return [
        web.get("/api/breakers", list_breakers),
        web.post("/api/breakers/{name}/{action}", act),
    ]
