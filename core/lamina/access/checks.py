"""Access checks for the handlers the guard does not wrap: a plugin's own routes (``lamina_routes``).

The declared API routes are checked by ``lamina.access.guard`` from their declarations. A plain aiohttp
handler that acts on resources (a kind of its own, or the core's) asks here instead, so the server's
``access_policy`` decides for it as it does for every other route::

    from lamina.access.checks import authorize, not_found, record_owner, visible

    async def create_note(request):
        await authorize(request, "create", "acme_note")        # 403 when the policy forbids it
        note = await notes.create(...)
        await record_owner("acme_note", note.id)               # the caller owns it
        ...

    async def get_note(request):
        note_id = request.match_info["note_id"]
        await authorize(request, "read", "acme_note", note_id)  # another's note: 404, as a missing one
        note = await notes.get(note_id)
        if note is None:
            raise not_found("acme_note", note_id)              # the same 404: nothing leaks
        ...

Without ``server.auth``, or on an ``open`` route, each does nothing (``visible`` keeps every id).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiohttp import web

from lamina.access.owners import record_for_caller
from lamina.access.policy import Action, Resource
from lamina.errors import ForbiddenError, NotFoundError
from lamina.request_context import PRINCIPAL
from lamina.server.keys import ACCESS_GUARD

log = structlog.get_logger("lamina.access")


def not_found(kind: str, resource_id: str) -> NotFoundError:
    """The 404 of a missing resource, the same one ``authorize`` raises for a denied one."""
    return NotFoundError(f"{kind} {resource_id!r} not found")


async def authorize(request: web.Request, action: str, kind: str, resource_id: str = "*") -> None:
    """Raise unless the caller may ``action`` (create, read, update, delete) ``kind::resource_id``: a
    denied create is a 403 naming the policy, any other denial the 404 of a missing resource."""
    guard, user = request.app.get(ACCESS_GUARD), PRINCIPAL.get()
    wanted = Action(action)
    if guard is None or user is None:
        return
    if wanted is Action.create:
        resource = Resource(kind, "*")
    else:
        resource = await guard.resource(kind, resource_id)
    if guard.allowed(wanted, resource, user):
        return
    log.info("access_denied", action=wanted.value, resource=f"{kind}::{resource_id}")
    if wanted is Action.create:
        raise ForbiddenError(
            f"principal {user.id!r} may not create a {kind} (server.auth.access_policy has no rule "
            f"permitting create on {kind}::*); ask an administrator for access"
        )
    raise not_found(kind, resource_id)


async def record_owner(kind: str, resource_id: str) -> None:
    """Record the caller as the owner of ``kind::resource_id``, a resource the handler just made."""
    await record_for_caller(kind, resource_id)


async def visible(request: web.Request, kind: str, ids: Iterable[str]) -> list[str]:
    """The ids among ``ids`` the caller may read, in their order: what a listing shows."""
    guard = request.app.get(ACCESS_GUARD)
    if guard is None:
        return list(ids)
    return [i for i in ids if await guard.caller_may_read(kind, i)]
