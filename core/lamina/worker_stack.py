"""A worker's stack: the providers of a server's run config, started in another process (a Ray actor,
plugins/ray) to run that server's work items (``lamina.jobs.work``) there.

``start_worker_stack(config, apis=..., state_dir=...)`` builds and starts a ``Stack`` from the server's
run config (``WorkEnvironment.run_config``) in worker mode (``Stack.start(worker=True)``):

- it starts the providers of ``apis`` (the APIs the work calls) and of the APIs they depend on, or every
  configured provider when ``apis`` is None; a local model loads once per worker (that is the scale-out);
- it opens the same stores (metadata, inference, each provider's own), so they must be reachable from
  the worker: on one machine SQLite files are shared, across machines use PostgreSQL stores;
- it reads the registry the server wrote and registers nothing: the persisted vector DBs, shields,
  datasets and benchmarks are handed to their providers again, as after a restart;
- it runs no job manager (providers get ``context.jobs = None``: it never resumes or runs jobs), no model
  listing or refresh loops, no health probes and no vector store resume.

``worker_apis(stack)`` gives the work functions' ``apis``; ``stack.shutdown()`` stops it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from lamina.config import RunConfig
from lamina.errors import ConfigError
from lamina.jobs.work import WorkApis
from lamina.plugins import PluginManager, load_plugin_manager
from lamina.specs import Api
from lamina.stack import Stack


def needed_apis(stack: Stack, apis: Collection[Api]) -> set[Api]:
    """``apis`` and every API their configured providers depend on (optional ones when configured)."""
    needed: set[Api] = set()
    todo = [api for api in apis if api in stack.providers]
    while todo:
        api = todo.pop()
        if api in needed:
            continue
        needed.add(api)
        for record in stack.providers[api].values():
            todo.extend(record.spec.api_dependencies)
            todo.extend(d for d in record.spec.optional_api_dependencies if d in stack.providers)
    return needed


def build_worker_stack(
    config: RunConfig | dict[str, Any],
    *,
    apis: Collection[Api | str] | None = None,
    state_dir: str | Path | None = None,
    pm: PluginManager | None = None,
) -> Stack:
    """The worker's stack, built (validated) but not started; ConfigError naming an API nobody serves."""
    if not isinstance(config, RunConfig):
        config = RunConfig.model_validate(config)
    stack = Stack.build(config, pm or load_plugin_manager())
    if state_dir is not None:
        stack.state_dir = Path(state_dir)
    if apis is not None:
        wanted = [Api(a) for a in apis]
        missing = [a.value for a in wanted if a not in stack.providers]
        if missing:
            configured = ", ".join(sorted(a.value for a in stack.providers)) or "none"
            raise ConfigError(
                f"{config.source}: a worker was asked for the {', '.join(missing)} API, which no provider of "
                f"the run config serves (configured: {configured}); configure one, or ask for these"
            )
        keep = needed_apis(stack, wanted)
        stack.providers = {api: records for api, records in stack.providers.items() if api in keep}
        stack.order = [record for record in stack.order if record.api in keep]
    return stack


async def start_worker_stack(
    config: RunConfig | dict[str, Any],
    *,
    apis: Collection[Api | str] | None = None,
    state_dir: str | Path | None = None,
    pm: PluginManager | None = None,
) -> Stack:
    """Build and start a worker's stack from a server's run config (a RunConfig or its JSON dump);
    ``state_dir``: the server's (``Stack.state_dir``), where its default SQLite stores are."""
    stack = build_worker_stack(config, apis=apis, state_dir=state_dir, pm=pm)
    try:
        await stack.start(worker=True)
    except BaseException:
        await stack.shutdown()
        raise
    return stack


def worker_apis(stack: Stack) -> WorkApis:
    """The routers a work function gets in this worker: those of the APIs it started providers for."""
    return WorkApis(stack.routers, tuple(stack.providers))
