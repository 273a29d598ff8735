"""The pool of Ray actors an executor sends items to: at most ``max_in_flight`` items per actor
(backpressure), the least busy live actor first, and a replacement started for an actor that died.

Every Ray call here is either non-blocking (``.remote()``, ``ray.kill``, ``ray.cancel`` only send a
message) or awaited as an ObjectRef in the event loop: the server's loop never waits on Ray.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import ray
import structlog

from lamina_ray.actor import StackActor
from lamina_ray.config import RayExecutorConfig

log = structlog.get_logger(__name__)

RemoteStackActor = ray.remote(StackActor)


class RayWorkError(RuntimeError):
    """The pool cannot run an item: its actors (or their nodes) died, or none could start."""


@dataclass(eq=False)
class PoolActor:
    handle: Any
    number: int
    where: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    dead: str | None = None  # why it is out of the pool

    def describe(self) -> str:
        node = self.where.get("node_ip") or "?"
        node_id = (self.where.get("node_id") or "")[:12]
        return f"actor #{self.number} on node {node} ({node_id}), pid {self.where.get('pid', '?')}"


class ActorPool:
    """Actors holding worker stacks of one run config; built by ``start``, killed by ``close``."""

    def __init__(self, settings: RayExecutorConfig, run_config: dict[str, Any], state_dir: str) -> None:
        self.settings = settings
        self.run_config = run_config
        self.state_dir = state_dir
        self.actors: list[PoolActor] = []
        self.replacing: set[asyncio.Task[None]] = set()
        self.started = 0  # actors ever started (numbers them)
        self._changed = asyncio.Condition()
        self.closed = False

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ``num_actors`` actors and wait for every worker stack (RayWorkError naming a failure)."""
        fresh = [self._spawn() for _ in range(self.settings.num_actors)]
        try:
            results = await asyncio.gather(*(self._started(a) for a in fresh), return_exceptions=True)
        except asyncio.CancelledError:  # the server stopped while they started: none is left behind
            for actor in fresh:
                self._kill(actor)
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for actor in fresh:
                self._kill(actor)
            first = failures[0]
            raise RayWorkError(
                f"ray executor: {len(failures)} of {len(fresh)} actors could not start their worker stack: "
                f"{_describe(first)}"
            ) from None
        self.actors.extend(fresh)
        log.info("ray_pool_started", actors=[a.describe() for a in fresh])

    def _spawn(self) -> PoolActor:
        self.started += 1
        s = self.settings
        options: dict[str, Any] = {
            "num_cpus": s.num_cpus,
            "max_concurrency": s.max_in_flight + 2,  # start/stop calls beside the items
            "max_restarts": 0,  # a dead actor is replaced by a fresh one (ActorPool.died)
            "namespace": s.namespace,
        }
        if s.runtime_env:
            options["runtime_env"] = s.runtime_env
        handle = RemoteStackActor.options(**options).remote(self.run_config, self.state_dir, s.apis)
        return PoolActor(handle, self.started)

    async def _started(self, actor: PoolActor) -> PoolActor:
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                actor.where = await actor.handle.start.remote()
        except TimeoutError:
            raise RayWorkError(
                f"actor #{actor.number} did not start its worker stack within "
                f"{self.settings.start_timeout:g}s "
                f"(jobs.executor_config.start_timeout); the cluster may lack the CPUs asked for "
                f"(num_cpus={self.settings.num_cpus:g} per actor)"
            ) from None
        return actor

    async def close(self) -> None:
        self.closed = True
        for task in list(self.replacing):
            task.cancel()
        await asyncio.gather(*self.replacing, return_exceptions=True)
        stopping = [a for a in self.actors if a.dead is None]
        # Let each stack close its providers (files, connections); then kill the process regardless.
        if stopping:
            refs = [a.handle.stop.remote() for a in stopping]
            try:
                async with asyncio.timeout(10):
                    await asyncio.gather(*refs, return_exceptions=True)
            except TimeoutError:
                log.warning("ray_actors_stop_timed_out", actors=len(stopping))
        for actor in self.actors:
            self._kill(actor)
        self.actors.clear()

    @staticmethod
    def _kill(actor: PoolActor) -> None:
        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception as exc:  # already gone
            log.debug("ray_actor_kill_failed", actor=actor.number, error=str(exc))

    # -- items ---------------------------------------------------------------------------------

    def live(self) -> list[PoolActor]:
        return [a for a in self.actors if a.dead is None]

    async def acquire(self) -> PoolActor:
        """The least busy live actor with room for one more item (waits for room); RayWorkError when no
        actor is alive and none is being started."""
        async with self._changed:
            while True:
                live = self.live()
                if not live and not self.replacing:
                    raise RayWorkError(
                        "ray executor: no actor is alive and none could be started; "
                        + "; ".join(f"{a.describe()}: {a.dead}" for a in self.actors[-4:])
                    )
                free = [a for a in live if a.in_flight < self.settings.max_in_flight]
                if free:
                    actor = min(free, key=lambda a: a.in_flight)
                    actor.in_flight += 1
                    return actor
                await self._changed.wait()

    async def release(self, actor: PoolActor) -> None:
        actor.in_flight -= 1
        async with self._changed:
            self._changed.notify()

    async def died(self, actor: PoolActor, error: BaseException) -> None:
        """``actor`` (or its node) died: out of the pool, and a fresh one is started in the background
        (Ray places it on a node with room; it may wait for one)."""
        if actor.dead is not None:
            return
        actor.dead = _describe(error)
        log.warning("ray_actor_died", actor=actor.describe(), error=actor.dead)
        self._kill(actor)
        if not self.closed:
            task = asyncio.create_task(self._replace(), name=f"lamina-ray-replace-{actor.number}")
            self.replacing.add(task)
            task.add_done_callback(self.replacing.discard)
        async with self._changed:
            self._changed.notify_all()

    async def _replace(self) -> None:
        fresh = self._spawn()
        try:
            await self._started(fresh)
        except (Exception, asyncio.CancelledError) as exc:
            self._kill(fresh)
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("ray_actor_not_replaced", actor=fresh.number, error=_describe(exc))
        else:
            self.actors.append(fresh)
            log.info("ray_actor_replaced", actor=fresh.describe())
        finally:
            # Out of ``replacing`` before waking the waiters: one that finds no live actor and none
            # starting then fails instead of waiting for ever.
            self.replacing.discard(asyncio.current_task())  # type: ignore[arg-type]
            async with self._changed:
                self._changed.notify_all()


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError: what the actor raised, without Ray's traceback
    if isinstance(cause, BaseException):
        exc = cause
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}"[:600]
