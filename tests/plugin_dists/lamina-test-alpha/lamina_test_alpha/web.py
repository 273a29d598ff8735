"""aiohttp handlers served through lamina_routes: a ping, notes whose access the server's policy decides
(lamina.access.checks), an admin-only route and an open one."""

from __future__ import annotations

import uuid

from aiohttp import web

from lamina.access.checks import authorize, not_found, record_owner, visible
from lamina.request_context import PRINCIPAL

NOTE = "alpha_note"
NOTES: dict[str, str] = {}  # id -> text (in memory: a test plugin)


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"pong": "alpha"})


async def create_note(request: web.Request) -> web.Response:
    await authorize(request, "create", NOTE)
    note_id = f"note-{uuid.uuid4().hex[:12]}"
    NOTES[note_id] = (await request.json())["text"]
    await record_owner(NOTE, note_id)
    return web.json_response({"id": note_id})


async def get_note(request: web.Request) -> web.Response:
    note_id = request.match_info["note_id"]
    await authorize(request, "read", NOTE, note_id)
    if note_id not in NOTES:
        raise not_found(NOTE, note_id)
    return web.json_response({"id": note_id, "text": NOTES[note_id]})


async def list_notes(request: web.Request) -> web.Response:
    return web.json_response({"data": await visible(request, NOTE, list(NOTES))})


async def admin_status(request: web.Request) -> web.Response:
    return web.json_response({"notes": len(NOTES)})


async def webhook(request: web.Request) -> web.Response:
    return web.json_response({"anonymous": PRINCIPAL.get() is None})
