"""Executors: where a job's handler runs. The manager keeps state, leases and limits; an executor only
runs one handler call to its end.

The default, ``inline``, awaits the handler in the server's own event loop (each job is an asyncio
task of the manager). A plugin contributes others through the ``lamina_job_executors`` hook (a Ray
executor fanning work out to a cluster, say); the run config's ``jobs.executor`` picks one by name and
``jobs.executor_config`` is handed to its factory. The contract is the hook's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from lamina.jobs.context import JobContext, JobHandler
from lamina.jobs.work import OnResult, WorkEnvironment, inline_map

INLINE = "inline"


@runtime_checkable
class JobExecutor(Protocol):
    """Runs job handlers; see ``lamina.hookspecs.lamina_job_executors`` for the contract (and the optional
    ``prepare(work)`` and ``map(...)``)."""

    async def start(self) -> None: ...

    async def run(self, handler: JobHandler, context: JobContext) -> Any: ...

    async def shutdown(self) -> None: ...


async def executor_map(
    executor: Any,
    function: str,
    items: Sequence[dict[str, Any]],
    *,
    work: WorkEnvironment,
    concurrency: int,
    on_result: OnResult | None = None,
    yield_to_clients: bool = False,
) -> None:
    """``executor.map(...)`` (lamina.jobs.work); in this event loop when there is no executor or it has
    no ``map``."""
    mapper = getattr(executor, "map", None) or inline_map
    await mapper(
        function,
        items,
        work=work,
        concurrency=concurrency,
        on_result=on_result,
        yield_to_clients=yield_to_clients,
    )


class InlineExecutor:
    """Runs each handler in this process's event loop: cancelling the manager's task cancels it."""

    name = INLINE

    async def start(self) -> None:
        return None

    async def run(self, handler: JobHandler, context: JobContext) -> Any:
        return await handler(context)

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
        await inline_map(
            function,
            items,
            work=work,
            concurrency=concurrency,
            on_result=on_result,
            yield_to_clients=yield_to_clients,
        )

    async def shutdown(self) -> None:
        return None


def create_inline_executor(config: dict[str, Any]) -> InlineExecutor:
    if config:
        raise ValueError(f"the inline executor takes no settings; remove {', '.join(sorted(config))}")
    return InlineExecutor()


def check_executor(name: str, pm: Any) -> None:
    """Raise ValueError unless ``name`` is ``inline`` or an executor an installed plugin offers."""
    if name == INLINE:
        return
    offered = pm.job_executors()
    if name not in offered:
        names = ", ".join([INLINE, *offered])
        raise ValueError(
            f"no installed plugin offers job executor {name!r} (available: {names}); install the plugin "
            f"that provides it, or use one of these"
        )


def create_executor(name: str, config: dict[str, Any], pm: Any) -> JobExecutor:
    """The executor ``name`` built from ``config`` (``jobs.executor_config``); ValueError on a bad one."""
    from lamina.specs import import_object

    if name == INLINE:
        return create_inline_executor(config)
    check_executor(name, pm)
    spec = pm.job_executors()[name]
    executor = import_object(spec.factory)(config)
    missing = [m for m in ("start", "run", "shutdown") if not callable(getattr(executor, m, None))]
    if missing:
        raise ValueError(
            f"job executor {name!r} ({spec.factory}) built an object without {', '.join(missing)}; "
            f"it must implement lamina.jobs.JobExecutor"
        )
    return executor
