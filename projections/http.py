"""Shared HTTP plumbing of the projection views: bearer-token check, paging, /metrics, /health."""
from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import app, settings

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def unauthorized(web, request):
    """A 401 response when a token is configured and the request does not carry it, else None."""
    if not settings.api_token:
        return None
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {settings.api_token}".encode()):
        return None
    return web.json({"error": "missing or wrong bearer token"}, status=401)


def page_of(request, items: list) -> dict:
    """One page of a sorted list: ?offset=&limit= (limit at most MAX_PAGE_SIZE)."""
    try:
        offset = max(0, int(request.query.get("offset", 0)))
        limit = min(MAX_PAGE_SIZE, max(1, int(request.query.get("limit", DEFAULT_PAGE_SIZE))))
    except ValueError:
        offset, limit = 0, DEFAULT_PAGE_SIZE
    return {"total": len(items), "offset": offset, "limit": limit, "items": items[offset:offset + limit]}


@app.page("/metrics")
async def metrics_view(web, request):
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/health")
async def health_view(web, request):
    return web.json({"status": "ok", "app": settings.app_id})
