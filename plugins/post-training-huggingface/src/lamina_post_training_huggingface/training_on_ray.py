"""Training on the Ray cluster: when the run config's ``jobs.executor`` is ``ray``, a job's training runs in
a Ray actor (``TrainingActor``, ``ray_num_cpus`` CPUs reserved), wherever Ray places it.

The job's handler stays in the server (as every handler does on the ``ray`` executor), so the job's state,
progress, checkpoint, cancel and resume are the job system's as with ``runs_in``. The actor trains in a
thread of its own and queues the trainer's events; the server polls them (``poll`` waits up to a second
for the next), hands them to the job (``training_process.relay``), acknowledges each saved checkpoint,
and asks the actor to stop on cancel; the actor is killed when the job ends either way.

The nodes must see the model and the output directory at the same paths (one machine, or a shared
file system) and have this package installed, as for any work Lamina sends to Ray (docs/ray.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from typing import Any

import structlog

from lamina_post_training_huggingface.config import HuggingFacePostTrainingConfig
from lamina_post_training_huggingface.training_process import job_spec, rebuilt, relay

log = structlog.get_logger(__name__)

_STOP_WAIT = 120.0
_ACK_WAIT = 60.0


class TrainingActor:
    """One job's training (a Ray actor: ``ray.remote(TrainingActor)``; threaded, so ``poll`` does not hold
    back ``ack`` and ``stop``)."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stop_flag = threading.Event()
        self.acked = threading.Event()
        self.thread: threading.Thread | None = None

    # TrainingEvents, called by the trainer in the actor's training thread
    def stop_requested(self) -> bool:
        return self.stop_flag.is_set()

    def logged(self, step: int, total: int, metrics: dict[str, float]) -> None:
        self.events.put({"event": "logged", "step": step, "total": total, "metrics": metrics})

    def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict[str, float]) -> None:
        self.acked.clear()
        self.events.put(
            {"event": "saved", "step": step, "total": total, "path": path, "epoch": epoch, "metrics": metrics}
        )
        self.acked.wait(_ACK_WAIT)

    # what the server calls
    def start(self, spec: dict[str, Any]) -> dict[str, Any]:
        import os
        import socket

        import ray

        from lamina_post_training_huggingface.training_process import run_spec

        self.thread = threading.Thread(target=lambda: self.events.put(run_spec(spec, self)), daemon=True)
        self.thread.start()
        context = ray.get_runtime_context()
        return {
            "ray_node_id": context.get_node_id(),
            "ray_actor_id": context.get_actor_id(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """The events queued so far (waiting up to ``timeout`` for the first)."""
        out = []
        try:
            out.append(self.events.get(timeout=timeout))
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            return out

    def ack(self) -> None:
        self.acked.set()

    def stop(self) -> None:
        self.stop_flag.set()
        self.acked.set()


async def train_on_ray(
    plan: Any,
    rows: list[dict],
    validation: list[dict] | None,
    config: HuggingFacePostTrainingConfig,
    report: Any,
    resume_from: str | None,
) -> dict[str, Any]:
    """Train ``plan`` in a Ray actor; as ``train_in_subprocess`` otherwise, and the summary says where it ran
    (``ran_on``: Ray node and actor, pid, host). The server is connected to the cluster already (the ``ray``
    executor's start)."""
    import ray

    actor_class = ray.remote(num_cpus=config.ray_num_cpus, max_concurrency=4, max_restarts=0)(TrainingActor)
    actor = actor_class.remote()
    last: dict[str, Any] | None = None
    try:
        where = await _started(actor, job_spec(plan, rows, validation, config, resume_from), config)
    except BaseException:  # never placed or not started: nothing trains yet, nothing to stop first
        with contextlib.suppress(Exception):
            ray.kill(actor)
        raise
    try:
        log.info("post_training_on_ray", **where)
        while last is None:
            for message in await actor.poll.remote(1.0):
                if await relay(message, report):
                    await actor.ack.remote()
                if message["event"] in ("done", "error"):
                    last = message
    except BaseException:  # cancelled, the job lost, the actor died: stop the training first
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(_stopped(actor)), _STOP_WAIT)
        raise
    finally:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    if last["event"] == "error":
        raise rebuilt(last)
    return {**last["summary"], "ran_on": where}


async def _started(actor: Any, spec: Any, config: HuggingFacePostTrainingConfig) -> dict[str, Any]:
    """The actor's start answer, within ``ray_start_timeout`` seconds: an actor no node can place (too few
    free CPUs) would otherwise keep the job waiting for as long as the CPUs stay taken."""
    import ray

    try:
        async with asyncio.timeout(config.ray_start_timeout):
            return await actor.start.remote(spec)
    except TimeoutError:
        free, total = await asyncio.to_thread(
            lambda: (ray.available_resources().get("CPU", 0), ray.cluster_resources().get("CPU", 0))
        )
        timeout, cpus = config.ray_start_timeout, config.ray_num_cpus
        raise RuntimeError(
            f"post training on Ray: the training actor did not start within {timeout:g} s "
            f"(ray_start_timeout); it needs a node with {cpus:g} free CPU(s) (ray_num_cpus) and the "
            f"cluster has {free:g} of {total:g} free (the ray executor's actor pool keeps its actors' "
            f"CPUs): lower ray_num_cpus, add a node, or give the pool fewer (jobs.executor_config "
            f"num_actors, num_cpus)"
        ) from None


async def _stopped(actor: Any) -> None:
    """Ask the actor to stop training and wait until it has (its training thread let go of the files)."""
    await actor.stop.remote()
    while True:
        for message in await actor.poll.remote(1.0):
            if message["event"] in ("done", "error"):
                return
