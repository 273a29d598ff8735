"""Plain aiohttp routes: submit a test job through the server's job manager; read the executor's record."""

from __future__ import annotations

from aiohttp import web

from lamina.server.keys import STACK


async def submit(request: web.Request) -> web.Response:
    body = await request.json()
    manager = request.app[STACK].jobs
    job = await manager.submit(body["kind"], body.get("params") or {}, total=body.get("total"))
    return web.json_response(job.model_dump(mode="json"))


async def executor_runs(request: web.Request) -> web.Response:
    executor = request.app[STACK].jobs.executor
    return web.json_response(
        {"runs": getattr(executor, "runs", None), "events": getattr(executor, "events", None)}
    )
