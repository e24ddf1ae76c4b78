"""One auth surface for everything the worker's web server answers.

faust-streaming registers web routes of its own (`/table/<name>/<key>/` serves any table's value,
`/router/` the cluster layout, `/` a status page); the project's views add theirs. Rather than
guarding each view and hoping no route is forgotten, an aiohttp middleware sits in front of every
route: with a token configured, only `/metrics` and `/health` answer without it. Faust's table and
router routes are switched off as well (see streams/app.py), so table values are served only
through the project's views.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging

from aiohttp import web

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/metrics", "/health"})  # Prometheus and liveness probes; no personal data


def token_matches(header: str, token: str) -> bool:
    """Constant-time comparison of an Authorization header with `Bearer <token>`."""
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def auth_middleware(token: str | None):
    """An aiohttp middleware answering 401 to any request without the bearer token (None: all open)."""

    @web.middleware
    async def require_token(request: web.Request, handler):
        if token and request.path not in OPEN_PATHS and not token_matches(request.headers.get("Authorization", ""), token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        return await handler(request)

    return require_token


def is_loopback(host: str) -> bool:
    """True when `host` binds only the local machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def open_http_refusal(web_host: str, api_token: str | None, allow_open_http: bool) -> str | None:
    """Why the worker must not start with these HTTP settings, or None.

    Views without a token on a non-loopback address would serve customer data to the network."""
    if api_token or allow_open_http or is_loopback(web_host):
        return None
    return (f"refusing to serve the HTTP views on {web_host} without a token: set POSVENDA_API_TOKEN "
            "(clients send 'Authorization: Bearer <token>'), bind POSVENDA_WEB_HOST=127.0.0.1, or set "
            "POSVENDA_ALLOW_OPEN_HTTP=1 to serve them open on purpose")


def registered_routes(web_app: web.Application) -> list[dict]:
    """Every (method, path) the aiohttp application answers, as registered (not a hand-kept list)."""
    routes = []
    for route in web_app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path and route.method != "OPTIONS":  # OPTIONS: CORS pre-flight, answered by aiohttp_cors
            routes.append({"method": route.method, "path": path})
    return sorted(routes, key=lambda r: (r["path"], r["method"]))


def log_routes(web_app: web.Application) -> None:
    """Logs the routes once at start, so an operator (and the auth test) sees the whole surface."""
    log.info("HTTP routes: %s", json.dumps(registered_routes(web_app)))
