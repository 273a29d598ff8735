"""Work items: the independent parts of a job (a batch's lines, a batch agent run's rows, an eval's rows)
that an executor may run in parallel, in this process or elsewhere (a Ray cluster: plugins/ray).

A handler hands them over with ``context.map(function, items, on_result=...)``:

- ``function`` is the import path (``"package.module:name"``) of
  ``async def name(apis: WorkApis, item: dict) -> JSON``. It reaches the stack only through ``apis``
  (the routers of the stack where it runs, by API) and returns what the handler records; it must be
  importable wherever the work runs (a worker process has the same plugins installed).
- ``items`` are JSON objects (each is copied to where it runs); the caller's provider data
  (``lamina.request_context.PROVIDER_DATA``) goes with them.
- ``on_result(index, result)`` runs here, in the server, as each item finishes (in completion order):
  the handler stores the result and reports progress there.

The first item whose function raises stops the map (items not started never start) and its exception
is raised from ``map``: a function that must let the job go on past a failed item returns the failure
as its result (a batch line's error line does). The inline executor calls the function in this event
loop with this server's routers (``inline_map``); another executor may call it in a worker holding a
stack of its own, built from ``WorkEnvironment.run_config``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lamina.specs import Api, import_object

if TYPE_CHECKING:
    from lamina.config import RunConfig

WorkFunction = Callable[["WorkApis", dict[str, Any]], Awaitable[Any]]
OnResult = Callable[[int, Any], Awaitable[None]]


class WorkApis(Mapping[Api, Any]):
    """The routers of the stack where a work function runs, for the APIs it serves (has providers for)."""

    def __init__(self, routers: Mapping[Api, Any], served: Sequence[Api] | frozenset[Api] | set[Api]) -> None:
        self._routers = routers
        self._served = frozenset(served)

    def __getitem__(self, api: Api) -> Any:
        if api not in self._served or api not in self._routers:
            served = ", ".join(sorted(a.value for a in self._served)) or "none"
            raise KeyError(f"the {api.value} API is not served by this stack (it serves: {served})")
        return self._routers[api]

    def __iter__(self) -> Iterator[Api]:
        return iter(a for a in self._routers if a in self._served)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class WorkEnvironment:
    """What an executor needs to run work items: the local routers, and the run config a remote worker
    builds its own stack from (same providers, same stores)."""

    apis: WorkApis
    run_config: RunConfig | None = None


@functools.cache
def work_function(path: str) -> WorkFunction:
    """The work function at import path ``path``; ValueError naming it when it is not one."""
    try:
        function = import_object(path)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"work function {path!r} cannot be imported: {exc}") from None
    if not callable(function):
        raise ValueError(f"work function {path!r} is not callable")
    return function


async def inline_map(
    function: str,
    items: Sequence[dict[str, Any]],
    *,
    work: WorkEnvironment,
    concurrency: int,
    on_result: OnResult | None = None,
    yield_to_clients: bool = False,
) -> None:
    """Run ``function`` on every item in this event loop, at most ``concurrency`` at once (the rules of
    ``lamina.routers.batch_lines.run_lines``: input order, batch work, clients first when asked)."""
    from lamina.routers.batch_lines import run_lines

    call = work_function(function)

    async def one(index: int, item: dict[str, Any]) -> None:
        result = await call(work.apis, item)
        if on_result is not None:
            await on_result(index, result)

    await run_lines(items, one, concurrency=concurrency, yield_to_clients=yield_to_clients)
