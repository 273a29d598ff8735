"""The ``ray`` job executor: handlers run in the server (as ``inline``); their work items
(``context.map``: a batch's lines, ...) run on a pool of Ray actors (``lamina_ray.pool``), each holding a
worker stack built from the server's run config.

``map`` keeps ``lamina.jobs.work.inline_map``'s rules, by running ``lamina.routers.batch_lines.run_lines``
with a call that sends the item to an actor: at most ``concurrency`` items in flight in all (and at most
``max_in_flight`` per actor); the first item whose function raises stops the map and its exception (its
own type and message) is raised here; cancelling the awaiting task cancels the Ray tasks in flight
(``ray.cancel``) and raises CancelledError; an item whose actor or node died is tried again on another
actor, at most ``max_attempts`` times, then the map fails naming the failures.

The pool starts with the first map (or at start-up: ``start_actors``) and is stopped after
``idle_timeout`` seconds without a map, freeing its cluster CPUs; the next map starts a new one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import structlog

from lamina.jobs.context import JobContext, JobHandler
from lamina.jobs.work import OnResult, WorkEnvironment
from lamina.request_context import PROVIDER_DATA
from lamina.routers.batch_lines import run_lines
from lamina.telemetry.propagation import carrier
from lamina_ray.config import RayExecutorConfig, parse_config

log = structlog.get_logger(__name__)


class RayExecutor:
    name = "ray"

    def __init__(self, settings: RayExecutorConfig) -> None:
        self.settings = settings
        self._pool: Any = None  # lamina_ray.pool.ActorPool, started by the first map
        self._pool_key: str | None = None
        self._pool_lock = asyncio.Lock()
        self._connected_here = False  # this executor called ray.init (so it calls ray.shutdown)
        self._pool_config: Any = None  # the run config object the pool was built from
        self._warming: asyncio.Task[None] | None = None  # the pool's start with the server (prepare)
        self._maps = 0  # maps in flight: the pool is idle when none is
        self._idle_timer: asyncio.TimerHandle | None = None  # stops the pool after idle_timeout
        self._idle_stop: asyncio.Task[None] | None = None

    # -- JobExecutor ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the cluster (in a thread: ``ray.init`` blocks for a while)."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.settings.address,
                namespace=self.settings.namespace,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        except Exception as exc:  # ConnectionError, ValueError, ...: say which setting to check
            raise RuntimeError(
                f"ray executor: cannot connect to the Ray cluster at {self.settings.address!r} "
                f"(jobs.executor_config.address): {type(exc).__name__}: {exc}; start one with `ray start "
                f"--head` and give its address, or 'auto' on a machine that joined one"
            ) from None
        self._connected_here = True
        log.info("ray_connected", address=self.settings.address, namespace=self.settings.namespace)

    async def prepare(self, work: WorkEnvironment) -> None:
        """With ``start_actors: with_server``, start the actor pool now, in the background: the server
        does not wait for it, the first map does (it takes the pool's lock). A pool that cannot start is
        logged; the first map then tries again and fails naming why."""
        if self.settings.start_actors != "with_server" or work.run_config is None:
            return
        self._warming = asyncio.create_task(self._start_pool(work), name="ray-pool-start")

    async def _start_pool(self, work: WorkEnvironment) -> None:
        try:
            await self._pool_for(work)
        except Exception as exc:
            log.warning("ray_pool_start_failed", error=str(exc), when="with_server")

    async def run(self, handler: JobHandler, context: JobContext) -> Any:
        return await handler(context)

    async def shutdown(self) -> None:
        self._cancel_idle_timer()
        warming, stopping = self._warming, self._idle_stop
        self._warming = self._idle_stop = None
        if warming is not None and not warming.done():
            warming.cancel()
        # an idle pool being stopped finishes stopping (its actors are killed either way)
        await asyncio.gather(*(t for t in (warming, stopping) if t is not None), return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        if self._connected_here:
            import ray

            self._connected_here = False
            await asyncio.to_thread(ray.shutdown)

    # -- work items ----------------------------------------------------------------------------

    async def map(
        self,
        function: str,
        items: Sequence[dict[str, Any]],
        *,
        work: WorkEnvironment,
        concurrency: int,
        on_result: OnResult | None = None,
        yield_to_clients: bool = False,
    ) -> None:
        if not items:
            return
        self._maps += 1
        self._cancel_idle_timer()
        try:
            await self._map(function, items, work, concurrency, on_result, yield_to_clients)
        finally:
            self._maps -= 1
            if self._maps == 0 and self.settings.idle_timeout is not None:
                self._idle_timer = asyncio.get_running_loop().call_later(
                    self.settings.idle_timeout, self._on_idle
                )

    async def _map(
        self,
        function: str,
        items: Sequence[dict[str, Any]],
        work: WorkEnvironment,
        concurrency: int,
        on_result: OnResult | None,
        yield_to_clients: bool,
    ) -> None:
        import ray
        from ray.exceptions import RayTaskError

        from lamina_ray.pool import RayWorkError

        pool = await self._pool_for(work)
        provider_data = PROVIDER_DATA.get() or None
        trace = carrier() or None
        attempts_allowed = self.settings.max_attempts

        async def one(index: int, item: dict[str, Any]) -> None:
            failures: list[str] = []
            while True:
                actor = await pool.acquire()
                ref = actor.handle.run.remote(function, item, provider_data, trace)
                try:
                    result = await ref
                except asyncio.CancelledError:
                    ray.cancel(ref)  # sends the cancel; the actor's coroutine is cancelled there
                    raise
                except RayTaskError as exc:
                    raise _original(exc) from None
                except _ACTOR_LOST as exc:
                    await pool.died(actor, exc)
                    failures.append(f"{actor.describe()}: {actor.dead}")
                    if len(failures) >= attempts_allowed:
                        raise RayWorkError(
                            f"ray executor: item {index} was tried {len(failures)} times "
                            f"(jobs.executor_config.max_attempts) and each time its actor or node died: "
                            + " | ".join(failures)
                        ) from None
                    log.warning("ray_item_retried", index=index, attempt=len(failures) + 1)
                    continue
                finally:
                    await pool.release(actor)
                break
            if on_result is not None:
                await on_result(index, result)

        await run_lines(items, one, concurrency=concurrency, yield_to_clients=yield_to_clients)

    # -- the idle pool ---------------------------------------------------------------------------

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self._maps == 0 and self._pool is not None:
            self._idle_stop = asyncio.create_task(self._stop_idle_pool(), name="ray-pool-idle-stop")

    async def _stop_idle_pool(self) -> None:
        """Stop the actors of a pool no map used for idle_timeout seconds (a map that started meanwhile
        keeps it)."""
        async with self._pool_lock:
            if self._maps or self._pool is None:
                return
            pool, self._pool, self._pool_key, self._pool_config = self._pool, None, None, None
        log.info("ray_pool_stopped_idle", idle_seconds=self.settings.idle_timeout, actors=len(pool.actors))
        await pool.close()

    async def _pool_for(self, work: WorkEnvironment) -> Any:
        """The actor pool for this run config (started once, kept for the next maps)."""
        from lamina_ray.pool import ActorPool

        config = work.run_config
        if config is None:
            raise RuntimeError("ray executor: the work environment has no run config to build workers from")
        if self._pool is not None and self._pool_config is config:
            return self._pool  # the server's own config object: no dump per map (an eval maps each row)
        shipped = config.model_dump(mode="json")
        state_dir = str(config.state_dir())
        key = json.dumps([shipped, state_dir], sort_keys=True)
        async with self._pool_lock:
            if self._pool is not None and self._pool_key != key:
                old, self._pool = self._pool, None
                await old.close()
            if self._pool is None:
                pool = ActorPool(self.settings, shipped, state_dir)
                await pool.start()
                self._pool, self._pool_key = pool, key
            self._pool_config = config
            return self._pool


def _original(exc: Any) -> BaseException:
    """The exception the work function raised in the actor (its own type and message), else Ray's."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    try:
        return exc.as_instanceof_cause()
    except Exception:
        return exc


def _actor_lost_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as e

    names = (
        "RayActorError",
        "ActorUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
        "ObjectLostError",
    )
    return tuple(getattr(e, n) for n in names if isinstance(getattr(e, n, None), type))


try:
    _ACTOR_LOST: tuple[type[BaseException], ...] = _actor_lost_errors()
except ImportError:  # ray missing: create_executor says so
    _ACTOR_LOST = ()


def create_executor(config: dict[str, Any]) -> RayExecutor:
    settings = parse_config(config)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError("the ray executor needs the ray package: pip install lamina-ray") from None
    return RayExecutor(settings)
