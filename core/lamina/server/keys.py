"""Typed app and request state: everything the app or a request holds lives under one of these keys."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from lamina.access.guard import AccessGuard
    from lamina.auth.middleware import Authenticator
    from lamina.stack import Stack

STACK: web.AppKey[Stack] = web.AppKey("stack")
ACTIVE_STREAMS: web.AppKey[set[asyncio.Task]] = web.AppKey("active_streams")
SHUTTING_DOWN: web.AppKey[asyncio.Event] = web.AppKey("shutting_down")
IN_FLIGHT: web.AppKey[set[asyncio.Task]] = web.AppKey("in_flight")  # request tasks (lamina.server.shutdown)
CUT_REQUESTS: web.AppKey[set[asyncio.Task]] = web.AppKey("cut_requests")  # cancelled by the drain
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")  # only when server.auth is set
ACCESS_GUARD: web.AppKey[AccessGuard] = web.AppKey("access_guard")  # only when server.auth is set
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("lamina_request_id", str)
