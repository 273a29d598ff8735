"""The Ray actor of the pool: a worker stack (``lamina.worker_stack``) built from the server's run config,
running work items (``lamina.jobs.work``) with that stack's routers.

The class is plain Python; ``lamina_ray.pool`` makes it a Ray actor (``ray.remote(StackActor)``) with its
options. Its methods are coroutines, so Ray runs it as an asyncio actor: up to ``max_concurrency`` items
run at once in its event loop, as they would in the server's.
"""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from typing import Any

from lamina.jobs.work import work_function
from lamina.request_context import PROVIDER_DATA, VALIDATED_PROVIDER_DATA, batch_work


class StackActor:
    """Holds one worker stack; ``start`` builds it, ``run`` runs one item, ``stop`` shuts it down."""

    def __init__(self, run_config: dict[str, Any], state_dir: str, apis: list[str] | None) -> None:
        self._config = run_config
        self._state_dir = state_dir
        self._apis = apis
        self._stack: Any = None
        self._work_apis: Any = None

    async def start(self) -> dict[str, Any]:
        """Build and start the worker stack; where it runs (for logs and messages)."""
        from lamina.worker_stack import start_worker_stack, worker_apis

        if self._stack is None:
            self._stack = await start_worker_stack(self._config, apis=self._apis, state_dir=self._state_dir)
            self._work_apis = worker_apis(self._stack)
        return self.where()

    def where(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "actor_id": context.get_actor_id(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "apis": sorted(a.value for a in self._work_apis) if self._work_apis is not None else [],
        }

    async def run(
        self,
        function: str,
        item: dict[str, Any],
        provider_data: dict[str, Any] | None,
        trace: dict[str, Any] | None,
    ) -> Any:
        """``function(apis, item)`` with the caller's provider data (validated by this stack's providers,
        as the server's middleware does) and trace context; its result, or its exception."""
        if self._stack is None:
            raise RuntimeError("the worker stack is not started (StackActor.start was not called)")
        call = work_function(function)
        with ExitStack() as scope:
            if provider_data:
                validated = self._stack.validate_provider_data(provider_data)
                data_token = PROVIDER_DATA.set(provider_data)
                validated_token = VALIDATED_PROVIDER_DATA.set(validated)
                scope.callback(PROVIDER_DATA.reset, data_token)
                scope.callback(VALIDATED_PROVIDER_DATA.reset, validated_token)
            if trace:
                from opentelemetry import context as otel_context

                from lamina.telemetry.propagation import context_from

                parent = context_from(trace)
                if parent is not None:
                    scope.callback(otel_context.detach, otel_context.attach(parent))
            scope.enter_context(batch_work())
            return await call(self._work_apis, item)

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.shutdown()
