"""The breaker admin API as aiohttp routes, for a server that does not route it itself.

Same shapes as ``daz.health.http``: ``GET /api/breakers`` → ``[snapshot, ...]``;
``POST /api/breakers/{name}/{open|close|reset|disable}`` → ``{"breaker", "action", "ok", "state"}``.
Both need the header ``X-Daz-Admin-Token``; without a configured token the admin API is off (403).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from daz.errors import UnknownBreaker
from daz.resilience.registry import ACTIONS, BreakerRegistry

ADMIN_TOKEN_HEADER = "X-Daz-Admin-Token"  # noqa: S105 - a header name, not a token


def breaker_routes(registry: BreakerRegistry, *, admin_token: str | None) -> list[web.RouteDef]:
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
        return web.json_response(registry.snapshot())

    async def act(request: web.Request) -> web.Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            return web.json_response(
                {"error": f"unknown action '{action}'; expected one of {', '.join(ACTIONS)}"}, status=404
            )
        try:
            registry.act(name, action)
        except UnknownBreaker as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(
            {"breaker": name, "action": action, "ok": True, "state": registry.get(name).state.value}
        )

    return [
        web.get("/api/breakers", list_breakers),
        web.post("/api/breakers/{name}/{action}", act),
    ]
