"""Shared HTTP plumbing of the projection views: bearer-token check, paging, /metrics, /health."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import app, settings

log = logging.getLogger(__name__)
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


def keyed_view(web, request, table, key: str, render, noun: str):
    """GET of one record by key: 401 without the token, 404 naming the key, else `render(state)`."""
    denied = unauthorized(web, request)
    if denied:
        return denied
    state = table.get(key)
    if state is None:
        return web.json({"error": f"no {noun} {key!r}"}, status=404)
    return web.json(render(state))


@app.page("/metrics")
async def metrics_view(web, request):
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/health")
async def health_view(web, request):
    return web.json({"status": "ok", "app": settings.app_id})


def peer_urls(table) -> list[str]:
    """Base URLs of the other workers holding partitions of `table` (from the partition assignor)."""
    own = str(app.conf.canonical_url).rstrip("/")
    try:
        hosts = app.router.table_metadata(table.name)
    except Exception:  # no assignment yet (worker starting): only local data
        return []
    return sorted({str(url).rstrip("/") for url in hosts} - {own})


async def gather_partials(request, table, path: str, local: list) -> list:
    """Local partial rows plus those of every peer worker (`?scope=local` on the peers' `path`).

    Read models keep per-partition partials; a worker holds only its partitions, so a complete
    answer asks the others. A peer that does not answer makes the view fail loudly, not silently
    short.
    """
    if request.query.get("scope") == "local":
        return local
    peers = peer_urls(table)
    if not peers:
        return local
    import aiohttp

    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}

    async def fetch(session, base):
        async with session.get(f"{base}{path}", params={"scope": "local"}, headers=headers) as response:
            response.raise_for_status()
            return json.loads(await response.text())["partials"]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        remote = await asyncio.gather(*(fetch(session, base) for base in peers))
    return local + [row for rows in remote for row in rows]
