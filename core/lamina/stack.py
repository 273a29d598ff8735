"""The Stack: providers, routing tables and routers built from a run config.

``Stack.build`` does everything that needs no I/O (pick provider specs, validate each provider's
config, order providers by their API dependencies) so that a bad config fails before anything
starts. ``start`` opens storage, creates and initialises providers and registers resources.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from lamina import __version__, api_table
from lamina.apis.datasets import RegisterDatasetRequest
from lamina.apis.eval import RegisterBenchmarkRequest
from lamina.apis.inspect import Inspect, Providers
from lamina.apis.jobs import Jobs
from lamina.apis.models import Model, RegisterModelRequest
from lamina.apis.safety import RegisterShieldRequest
from lamina.apis.scoring import RegisterScoringFunctionRequest
from lamina.apis.tools import RegisterToolGroupRequest
from lamina.apis.vector_io import RegisterVectorDBRequest
from lamina.apis.vector_stores import VectorStores
from lamina.config import RunConfig, validation_message
from lamina.errors import ConfigError, LaminaError, UpstreamError, validation_error
from lamina.jobs.executor import check_executor, create_executor
from lamina.jobs.manager import JobManager
from lamina.jobs.store import jobs_store_config, open_jobs_store
from lamina.plugins import PluginManager
from lamina.provider_health import HealthMonitor, Pending
from lamina.providers.base import ProviderContext
from lamina.request_context import PROVIDER_DATA_HEADER
from lamina.resources.datasets import DatasetsRoutingTable
from lamina.resources.models import ModelsRoutingTable
from lamina.resources.registry import ResourceRegistry
from lamina.resources.shields import ShieldsRoutingTable
from lamina.resources.tool_groups import ToolGroupsRoutingTable
from lamina.resources.vector_dbs import VectorDBsRoutingTable
from lamina.routers.inspect import InspectImpl, ProvidersImpl
from lamina.routers.jobs import JobsImpl
from lamina.routers.vector_stores import VectorStoresRouter
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType, import_object
from lamina.storage import KVStore, KVStoreConfig, open_kvstore
from lamina.storage.inference_store import (
    CompletionWriter,
    InferenceStore,
    inference_store_config,
    open_inference_store,
)

log = structlog.get_logger(__name__)

# Run-config resource sections served by one API's providers: (key, API, provider types to suggest).
# Listing resources with no provider of their API fails start-up (they would never be registered).
_RESOURCE_SECTIONS = (
    ("datasets", Api.datasetio, "inline::localfs, remote::huggingface"),
    ("scoring_fns", Api.scoring, "inline::basic, inline::llm-as-judge, ..."),
    ("benchmarks", Api.eval, "inline::meta-reference"),
)

# Seconds between two listings of a provider that wants its models refreshed and names no interval.
DEFAULT_REFRESH_INTERVAL = 60.0
# Seconds one provider's list_models() may take (a backend that stops answering must not hold start-up).
LISTING_SECONDS = 15.0


@dataclass
class ProviderRecord:
    api: Api
    provider_id: str
    spec: ProviderSpec
    config: BaseModel
    where: str  # key path in the run config, for messages
    impl: Any = None
    provider_data_validator: type[BaseModel] | None = None  # ProviderSpec.provider_data_validator, imported
    # Names it in the health monitor and its state directory: the provider_id, or ``<provider_id>@<api>``
    # when an earlier API's provider in the run config has that id (Llama Stack's templates name the
    # agents, eval and telemetry providers all ``meta-reference``).
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.provider_id


@dataclass
class Stack:
    config: RunConfig
    pm: PluginManager
    providers: dict[Api, dict[str, ProviderRecord]]
    order: list[ProviderRecord]
    impls: dict[Api, dict[str, Any]] = field(default_factory=lambda: {api: {} for api in Api})
    store: KVStore | None = None
    registry: ResourceRegistry = field(default_factory=ResourceRegistry)
    routers: dict[Api, Any] = field(default_factory=dict)
    inference_store: InferenceStore | None = None
    completion_writer: CompletionWriter | None = None
    refreshers: dict[str, asyncio.Task] = field(default_factory=dict)  # provider_id -> model refresh loop
    # Where this server answers (set by lamina.server.app.run_server before start): providers that call
    # the server's own OpenAI-compatible routes (inline::braintrust) read it as context.extra["server_url"].
    server_url: str | None = None
    jobs: JobManager | None = None  # open from start() to shutdown(); providers get it as context.jobs

    def __post_init__(self) -> None:
        # Which providers are down, and their background retries (lamina.provider_health).
        self.health = HealthMonitor(self._provider_recovered)
        # Every API of the table gets its routing table and router now, so the server can bind routes
        # to them; the provider dicts they hold are filled as providers start.
        self.tables: dict[ResourceType, Any] = {}
        self.protocol_impls: dict[type, Any] = {}  # served Protocol -> what implements it
        for entry in api_table.API_TABLE:
            built = entry.build(self)
            self.routers[entry.api] = built.router
            if entry.resource_type is not None:
                self.tables[entry.resource_type] = built.table
            for protocol in (*entry.always_served, *entry.protocols):
                self.protocol_impls[protocol] = built.impls.get(protocol, built.router)

    # The routing tables (and the vector stores router) the stack registers resources with.
    @property
    def models(self) -> ModelsRoutingTable:
        return self.tables[ResourceType.model]

    @property
    def vector_dbs(self) -> VectorDBsRoutingTable:
        return self.tables[ResourceType.vector_db]

    @property
    def tool_groups(self) -> ToolGroupsRoutingTable:
        return self.tables[ResourceType.tool_group]

    @property
    def shields(self) -> ShieldsRoutingTable:
        return self.tables[ResourceType.shield]

    @property
    def datasets(self) -> DatasetsRoutingTable:
        return self.tables[ResourceType.dataset]

    @property
    def vector_stores(self) -> VectorStoresRouter:
        return self.protocol_impls[VectorStores]

    # -- build: validation only ----------------------------------------------------------------

    @classmethod
    def build(cls, config: RunConfig, pm: PluginManager) -> Stack:
        source = config.source
        providers: dict[Api, dict[str, ProviderRecord]] = {}
        seen_ids: dict[tuple[str, str], str] = {}  # (api, provider_id) -> where: unique within an API
        for api_name, entries in config.providers.items():
            try:
                api = Api(api_name)
            except ValueError:
                raise ConfigError(
                    f"{source}: providers.{api_name}: unknown API; expected one of "
                    f"{', '.join(a.value for a in Api)}"
                ) from None
            specs = pm.provider_specs(api)
            for i, entry in enumerate(entries):
                where = f"providers.{api_name}[{i}]"
                if not entry.provider_id:
                    log.info("provider_disabled", where=where, provider_type=entry.provider_type)
                    continue
                spec = specs.get(entry.provider_type)
                if spec is None:
                    raise ConfigError(
                        f"{source}: {where}.provider_type: no installed plugin offers "
                        f"{entry.provider_type!r}. "
                        f"Installed {api_name} provider types: {', '.join(specs) or 'none'}. "
                        f"Install the plugin that provides it, or pick one of these."
                    )
                if (api_name, entry.provider_id) in seen_ids:
                    raise ConfigError(
                        f"{source}: {where}.provider_id: {entry.provider_id!r} is already used by "
                        f"{seen_ids[(api_name, entry.provider_id)]}; provider ids must be unique within an "
                        f"API"
                    )
                seen_ids[(api_name, entry.provider_id)] = where
                if api_table.entry_for(api) is None:
                    served = ", ".join(a.value for a in api_table.served_apis())
                    raise ConfigError(
                        f"{source}: {where}: {entry.provider_type} is a {api_name} provider, but Lamina does "
                        f"not serve the {api_name} API (it serves: {served}), so nothing would reach it. "
                        f"Remove the provider, or disable it with an empty provider_id."
                    )
                if spec.deprecation_warning:
                    log.warning(
                        "provider_deprecated",
                        provider_type=spec.provider_type,
                        warning=spec.deprecation_warning,
                    )
                try:
                    config_class = import_object(spec.config_class)
                    provider_config = config_class.model_validate(entry.config or {})
                    validator = _provider_data_validator(spec)
                except ValidationError as exc:
                    raise ConfigError(validation_message(source, exc, (*_path(where), "config"))) from None
                except (ImportError, AttributeError, TypeError) as exc:
                    raise ConfigError(
                        f"{source}: {where}: the plugin offering {entry.provider_type!r} is broken: {exc}"
                    ) from None
                _warn_unknown_keys(source, where, entry.config or {}, config_class)
                providers.setdefault(api, {})[entry.provider_id] = ProviderRecord(
                    api, entry.provider_id, spec, provider_config, where, provider_data_validator=validator
                )
        # An id reused by a later API's provider is qualified with its API (the first keeps its state dir).
        claimed: set[str] = set()
        for records in providers.values():
            for record in records.values():
                if record.provider_id in claimed:
                    record.key = f"{record.provider_id}@{record.api.value}"
                claimed.add(record.provider_id)
        if Api.vector_io in providers and Api.inference not in providers:
            raise ConfigError(
                f"{source}: providers.vector_io: vector DBs need embeddings, which come from an inference "
                f"provider; add one that serves an embedding model under providers.inference (for example "
                f"inline::sentence-transformers)"
            )
        if config.safety.default_shield_id and Api.safety not in providers:
            raise ConfigError(
                f"{source}: safety.default_shield_id: {config.safety.default_shield_id!r} names a shield, "
                f"but no safety provider is configured; add one under providers.safety (and the shield "
                f"under shields:), or remove the setting"
            )
        try:
            check_executor(config.jobs.executor, pm)
        except ValueError as exc:
            raise ConfigError(f"{source}: jobs.executor: {exc}") from None
        served = api_table.served_apis()
        for key, api, examples in _RESOURCE_SECTIONS:
            listed = getattr(config, key)
            if listed and api in served and api not in providers:
                raise ConfigError(
                    f"{source}: {key}: {len(listed)} entries are listed, but no {api.value} provider is "
                    f"configured to serve them; add one under providers.{api.value} ({examples}), or "
                    f"remove them"
                )
        order = _dependency_order(providers, source)
        return cls(config=config, pm=pm, providers=providers, order=order)

    # -- start / stop --------------------------------------------------------------------------

    async def start(self) -> None:
        state_dir = self.config.state_dir()
        store_cfg = self.config.metadata_store or {
            "type": "sqlite",
            "db_path": str(state_dir / "registry.db"),
        }
        try:
            kv_config = TypeAdapter(KVStoreConfig).validate_python(store_cfg)
        except ValidationError as exc:
            raise ConfigError(validation_message(self.config.source, exc, ("metadata_store",))) from None
        self.store = await open_kvstore(kv_config)
        await self.registry.attach(self.store)
        if Api.inference in self.providers:
            await self._open_inference_store(state_dir)
        await self._open_jobs(state_dir)

        for record in self.order:
            deps = {dep: self.routers.get(dep) for dep in record.spec.api_dependencies}
            deps.update(
                {
                    dep: self.routers.get(dep)
                    for dep in record.spec.optional_api_dependencies
                    if dep in self.providers
                }
            )
            context = ProviderContext(
                api=record.api,
                provider_id=record.provider_id,
                provider_type=record.spec.provider_type,
                state_dir=state_dir / "providers" / record.key,
                metadata_store=store_cfg,
                extra={"server_url": self.server_url} if self.server_url else {},
                jobs=self.jobs,
            )
            factory = import_object(record.spec.factory)
            impl = await factory(record.config, deps, context)
            if hasattr(impl, "initialize"):
                await impl.initialize()
            record.impl = impl
            self.impls[record.api][record.provider_id] = impl
            self.health.add(record.key, record.api.value, impl)
            log.info(
                "provider_started",
                api=record.api.value,
                provider_id=record.provider_id,
                provider_type=record.spec.provider_type,
            )
        # Before registering resources, so a remote provider already knows its upstream is down and
        # takes the run config's models without waiting on it.
        await self.health.probe_all()
        await self._register_resources()
        await self._start_model_refresh()
        if Api.vector_io in self.providers and self.store is not None:
            await self.vector_stores.start(self.store)  # resumes files left in_progress
        # Last: providers registered their job kinds in initialize(), so what a stopped server left
        # is resumed (or failed, naming its kind) by the handlers that are there now.
        assert self.jobs is not None
        await self.jobs.start()

    async def _open_jobs(self, state_dir: Path) -> None:
        """Open the jobs store (``jobs.store``; default SQLite in the state dir) and its manager."""
        settings = self.config.jobs
        try:
            config = jobs_store_config(settings.store, state_dir / "jobs.db")
        except ValidationError as exc:
            raise ConfigError(validation_message(self.config.source, exc, ("jobs", "store"))) from None
        try:
            executor = create_executor(settings.executor, settings.executor_config, self.pm)
        except ValueError as exc:
            raise ConfigError(f"{self.config.source}: jobs.executor_config: {exc}") from None
        store = await open_jobs_store(config)
        self.jobs = JobManager(
            store,
            executor=executor,
            max_concurrent=settings.max_concurrent,
            lease_seconds=settings.lease_seconds,
            progress_interval=settings.progress_interval,
            poll_seconds=settings.poll_seconds,
        )
        log.info("jobs_store_opened", store=store.where, executor=settings.executor)

    async def _close_jobs(self) -> None:
        if self.jobs is None:
            return
        manager, self.jobs = self.jobs, None
        try:
            await manager.shutdown()
        finally:
            await manager.store.close()

    async def _open_inference_store(self, state_dir: Path) -> None:
        """Open the chat completions store (``inference_store``; default SQLite in the state dir)."""
        try:
            config = inference_store_config(self.config.inference_store, state_dir)
        except ValidationError as exc:
            raise ConfigError(validation_message(self.config.source, exc, ("inference_store",))) from None
        self.inference_store = await open_inference_store(config)
        self.completion_writer = CompletionWriter(self.inference_store).start()
        self.routers[Api.inference].completions = self.completion_writer
        log.info("inference_store_opened", store=self.inference_store.where)

    async def _close_inference_store(self) -> None:
        """Flush the background writer (every queued completion is written), then close the store."""
        self.routers[Api.inference].completions = None
        if self.completion_writer is not None:
            writer, self.completion_writer = self.completion_writer, None
            await writer.close()
            stats = writer.stats
            log.info(
                "inference_store_closed", written=stats.written, dropped=stats.dropped, failed=stats.failed
            )
        if self.inference_store is not None:
            store, self.inference_store = self.inference_store, None
            await store.close()

    async def shutdown(self) -> None:
        # Jobs first: their handlers use the providers closed below.
        jobs = self.jobs
        if jobs is not None:
            try:
                await jobs.shutdown()
            except Exception as exc:  # keep closing the rest
                log.warning("jobs_shutdown_failed", error=str(exc))
        await self.health.stop()
        await self.vector_stores.shutdown()
        await self._stop_model_refresh()
        try:
            await self._close_inference_store()
        except Exception as exc:  # keep closing the rest
            log.warning("inference_store_close_failed", error=str(exc))
        for record in reversed(self.order):
            if record.impl is not None and hasattr(record.impl, "shutdown"):
                try:
                    await record.impl.shutdown()
                except Exception as exc:  # keep closing the others
                    log.warning("provider_shutdown_failed", provider_id=record.provider_id, error=str(exc))
        try:
            await self._close_jobs()
        except Exception as exc:
            log.warning("jobs_store_close_failed", error=str(exc))
        if self.store is not None:
            await self.store.close()

    async def _register_resources(self) -> None:
        # Defaults from plugins first: for the first configured provider of the named type.
        await self._register_defaults(
            Api.inference,
            ResourceType.model,
            lambda res, record: self.models.register_model(
                RegisterModelRequest(
                    model_id=res.identifier,
                    provider_id=record.provider_id,
                    provider_model_id=res.provider_resource_id,
                    **res.params,
                )
            ),
        )
        await self._register_configured(
            "models",
            self.config.models,
            "model_id",
            defer_to=self._remote_inference_provider,
            register=lambda model: self.models.register_model(
                RegisterModelRequest(
                    model_id=model.model_id,
                    provider_id=model.provider_id,
                    provider_model_id=model.provider_model_id,
                    model_type=model.model_type,
                    metadata=model.metadata,
                ),
                replace=True,
            ),
        )
        await self._sync_listed_models()
        await self._register_vector_dbs()
        await self._register_tool_groups()
        await self._register_shields()
        await self._register_datasets()
        await self._register_scoring_functions()
        await self._register_benchmarks()  # last: a benchmark names a dataset and scoring functions

    async def _register_vector_dbs(self) -> None:
        """Reopen the persisted vector DBs at their providers, then register the run config's."""
        if Api.vector_io not in self.providers:
            return
        await self.vector_dbs.reopen()
        await self._register_configured(
            "vector_dbs",
            self.config.vector_dbs,
            "vector_db_id",
            defer_to=lambda entry, exc: self._refusing_remote_provider(Api.vector_io, exc),
            register=lambda entry: self.vector_dbs.register_vector_db(
                RegisterVectorDBRequest(
                    vector_db_id=entry.vector_db_id,
                    embedding_model=entry.embedding_model,
                    embedding_dimension=entry.embedding_dimension,
                    provider_id=entry.provider_id,
                    provider_vector_db_id=entry.provider_vector_db_id,
                )
            ),
        )

    async def _register_tool_groups(self) -> None:
        """Plugins' default tool groups (for the first provider of their type), then the run config's."""
        if Api.tool_runtime not in self.providers:
            return
        await self._register_defaults(
            Api.tool_runtime,
            ResourceType.tool_group,
            lambda res, record: self.tool_groups.register_tool_group(
                RegisterToolGroupRequest(
                    toolgroup_id=res.identifier, provider_id=record.provider_id, **res.params
                )
            ),
        )
        await self._register_configured(
            "tool_groups",
            self.config.tool_groups,
            "toolgroup_id",
            lambda entry: self.tool_groups.register_tool_group(
                RegisterToolGroupRequest(
                    toolgroup_id=entry.toolgroup_id,
                    provider_id=entry.provider_id,
                    args=entry.args,
                    mcp_endpoint=entry.mcp_endpoint,
                ),
                replace=True,
            ),
        )

    async def _register_shields(self) -> None:
        """Reopen persisted shields, then plugins' default shields (for the first provider of their
        type), then the run config's."""
        if Api.safety not in self.providers:
            return
        await self.shields.reopen()
        await self._register_defaults(
            Api.safety,
            ResourceType.shield,
            lambda res, record: self.shields.register_shield(
                RegisterShieldRequest(
                    shield_id=res.identifier,
                    provider_id=record.provider_id,
                    provider_shield_id=res.provider_resource_id,
                    **res.params,
                )
            ),
        )
        await self._register_configured(
            "shields",
            self.config.shields,
            "shield_id",
            defer_to=lambda entry, exc: self._refusing_remote_provider(Api.safety, exc),
            register=lambda entry: self.shields.register_shield(
                RegisterShieldRequest(
                    shield_id=entry.shield_id,
                    provider_id=entry.provider_id,
                    provider_shield_id=entry.provider_shield_id,
                    params=entry.params,
                ),
                replace=True,
            ),
        )
        await self._check_default_shield()

    async def _register_scoring_functions(self) -> None:
        """Plugins' built-in scoring functions (for the first provider of their type), then the run
        config's."""
        if Api.scoring not in self.providers:
            return
        table = self.tables[ResourceType.scoring_function]
        await self._register_defaults(
            Api.scoring,
            ResourceType.scoring_function,
            lambda res, record: table.register_scoring_function(
                RegisterScoringFunctionRequest(
                    scoring_fn_id=res.identifier,
                    provider_id=record.provider_id,
                    provider_scoring_fn_id=res.provider_resource_id,
                    **res.params,
                )
            ),
        )
        await self._register_configured(
            "scoring_fns",
            self.config.scoring_fns,
            "scoring_fn_id",
            lambda entry: table.register_scoring_function(
                RegisterScoringFunctionRequest(
                    scoring_fn_id=entry.scoring_fn_id,
                    provider_id=entry.provider_id,
                    provider_scoring_fn_id=entry.provider_scoring_fn_id,
                    description=entry.description,
                    return_type=entry.return_type or {"type": "number"},
                    params=entry.params,
                ),
                replace=True,
            ),
        )

    async def _register_datasets(self) -> None:
        """Reopen persisted datasets, then plugins' default datasets, then the run config's."""
        if Api.datasetio not in self.providers:
            return
        await self.datasets.reopen()
        await self._register_defaults(
            Api.datasetio,
            ResourceType.dataset,
            lambda res, record: self.datasets.register_dataset(
                RegisterDatasetRequest(
                    dataset_id=res.identifier, provider_id=record.provider_id, **res.params
                )
            ),
        )
        await self._register_configured(
            "datasets",
            self.config.datasets,
            "dataset_id",
            defer_to=lambda entry, exc: self._refusing_remote_provider(Api.datasetio, exc),
            register=lambda entry: self.datasets.register_dataset(
                RegisterDatasetRequest(
                    dataset_id=entry.dataset_id,
                    purpose=entry.purpose,
                    source=entry.source,
                    metadata=entry.metadata,
                    provider_id=entry.provider_id,
                ),
                replace=True,
            ),
        )

    async def _register_benchmarks(self) -> None:
        """Reopen persisted benchmarks at their providers, then register the run config's."""
        if Api.eval not in self.providers:
            return
        table = self.tables[ResourceType.benchmark]
        await table.reopen()
        await self._register_configured(
            "benchmarks",
            self.config.benchmarks,
            "benchmark_id",
            lambda entry: table.register_benchmark(
                RegisterBenchmarkRequest(
                    benchmark_id=entry.benchmark_id,
                    dataset_id=entry.dataset_id,
                    scoring_functions=entry.scoring_functions,
                    provider_id=entry.provider_id,
                    provider_benchmark_id=entry.provider_benchmark_id,
                    metadata=entry.metadata,
                ),
                replace=True,
            ),
        )

    async def _check_default_shield(self) -> None:
        """``safety.default_shield_id`` must name a shield once the run config's are registered (or
        waiting for their remote provider): a typo would otherwise surface as a 404 on a moderation
        request that never named a shield."""
        shield_id = self.config.safety.default_shield_id
        if not shield_id or await self.registry.get(ResourceType.shield.value, shield_id) is not None:
            return
        if self.health.pending("shields", shield_id) is not None:
            return
        known = ", ".join(s.identifier for s in await self.shields.list()) or "none"
        raise ConfigError(
            f"{self.config.source}: safety.default_shield_id: {shield_id!r} is not a registered shield "
            f"(registered: {known}); list it under shields: or name one of those"
        )

    async def _register_defaults(
        self,
        api: Api,
        resource_type: ResourceType,
        register: Callable[[DefaultResource, ProviderRecord], Awaitable[Any]],
    ) -> None:
        """Plugins' default resources of one type, each for the first configured provider of its
        provider type, unless the identifier is registered already. A default that fails is logged:
        a plugin's default must not stop start-up."""
        for res in self.pm.default_resources(resource_type):
            records = self.providers.get(api, {}).values()
            record = next((r for r in records if r.spec.provider_type == res.provider_type), None)
            if record is None or await self.registry.get(resource_type.value, res.identifier) is not None:
                continue
            try:
                await register(res, record)
            except (ValidationError, LaminaError) as exc:
                log.warning(
                    "default_resource_not_registered",
                    type=resource_type.value,
                    identifier=res.identifier,
                    error=str(exc),
                )

    async def _register_configured(
        self,
        kind: str,
        entries: list[Any],
        id_field: str,
        register: Callable[[Any], Awaitable[Any]],
        defer_to: Callable[[Any, LaminaError], str | None] | None = None,
    ) -> None:
        """Register the run config's ``kind`` entries (those with an id) in order; a failure is a
        ConfigError naming ``kind[i]``, unless ``defer_to(entry, error)`` names the (remote) provider that
        refused it: then the provider is marked down and the registration retried in the background."""
        for i, entry in enumerate(entries):
            identifier = getattr(entry, id_field)
            if not identifier:
                continue
            where = f"{kind}[{i}]"
            try:
                await register(entry)
            except ValidationError as exc:
                raise ConfigError(validation_message(self.config.source, exc, (where,))) from None
            except LaminaError as exc:
                provider_id = defer_to(entry, exc) if defer_to is not None else None
                if provider_id is None:
                    raise ConfigError(f"{self.config.source}: {where}: {exc.message}") from None
                pending = Pending(where, identifier, exc.message, partial(register, entry))
                self.health.defer(provider_id, pending)

    def _remote_inference_provider(self, model: Any, error: LaminaError) -> str | None:
        """The remote provider that refused a run-config model because of its upstream's state (the
        upstream failed, or does not serve the model now: ``param`` provider_model_id); None for
        anything else (an inline provider, a provider_id not configured, a plugin's veto), which
        stays a configuration error."""
        if not (isinstance(error, UpstreamError) or error.param == "provider_model_id"):
            return None
        try:
            provider_id = self.models.pick_provider(model.provider_id, model.model_id)
        except LaminaError:
            return None
        record = self.providers.get(Api.inference, {}).get(provider_id)
        remote = record is not None and record.spec.provider_type.startswith("remote::")
        return record.key if remote else None

    def _refusing_remote_provider(self, api: Api, error: LaminaError) -> str | None:
        """The remote ``api`` provider whose upstream failed a run-config registration (a vector DB
        on a Chroma or pgvector server that is down, say); None for any other error, which stays a
        configuration error."""
        if not isinstance(error, UpstreamError):
            return None
        record = self.providers.get(api, {}).get(error.provider_id)
        remote = record is not None and record.spec.provider_type.startswith("remote::")
        return record.key if remote else None

    async def _provider_recovered(self, provider_id: str) -> None:
        """A provider that was down answers again: register what its backend lists now."""
        impl = self.impls[Api.inference].get(provider_id)
        if impl is not None and callable(getattr(impl, "list_models", None)):
            models = await _listed_models(provider_id, impl)
            if models is not None:
                await self._apply_listing(provider_id, models)

    # -- models the providers list -------------------------------------------------------------

    def _listing_providers(self) -> list[tuple[str, Any]]:
        """(provider_id, impl) of the inference providers that can list their backend's models."""
        return [
            (provider_id, impl)
            for provider_id, impl in self.impls[Api.inference].items()
            if callable(getattr(impl, "list_models", None))
        ]

    async def _sync_listed_models(self) -> None:
        """Register what each provider's ``list_models`` lists (after the config's models, which win).

        The providers are asked at once; their listings are applied one provider at a time, in
        provider order. A provider that fails to list is logged and skipped: start-up goes on. A
        provider whose health check failed at start-up is not asked: it is listed once it recovers.
        """
        unreachable = self.health.failing()
        providers = [(pid, impl) for pid, impl in self._listing_providers() if pid not in unreachable]
        listings = await asyncio.gather(*(_listed_models(pid, impl) for pid, impl in providers))
        for (provider_id, _), models in zip(providers, listings, strict=True):
            if models is not None:
                await self._apply_listing(provider_id, models)

    async def _apply_listing(self, provider_id: str, models: list[Model]) -> None:
        try:
            await self.models.sync_listed(provider_id, models)
        except Exception as exc:  # a registry or provider failure must not stop start-up or the loop
            log.warning("listed_models_sync_failed", provider_id=provider_id, error=_describe(exc))

    async def _start_model_refresh(self) -> None:
        """One background loop per provider whose ``should_refresh_models()`` is true."""
        for provider_id, impl in self._listing_providers():
            if not await _wants_refresh(provider_id, impl):
                continue
            interval = _refresh_interval(impl)
            self.refreshers[provider_id] = asyncio.create_task(
                self._refresh_models(provider_id, impl, interval), name=f"lamina-model-refresh-{provider_id}"
            )
            log.info("model_refresh_started", provider_id=provider_id, interval=interval)

    async def _refresh_models(self, provider_id: str, impl: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not await _wants_refresh(provider_id, impl):
                continue
            models = await _listed_models(provider_id, impl)
            if models is not None:
                await self._apply_listing(provider_id, models)

    async def _stop_model_refresh(self) -> None:
        tasks, self.refreshers = list(self.refreshers.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- what the server serves ----------------------------------------------------------------

    def api_impls(self) -> list[tuple[type, Any, list[str]]]:
        """(API Protocol, implementation, provider types behind it) for every served API."""
        out: list[tuple[type, Any, list[str]]] = [
            (Inspect, InspectImpl(self), []),
            (Providers, ProvidersImpl(self), []),
            (Jobs, JobsImpl(self), []),
        ]
        for entry in api_table.API_TABLE:
            served = (*entry.always_served, *(entry.protocols if entry.api in self.providers else ()))
            types = self.provider_types(entry.api)
            out.extend((protocol, self.protocol_impls[protocol], types) for protocol in served)
        return out

    def validate_provider_data(self, data: dict[str, Any]) -> dict[type, BaseModel]:
        """The ``X-LlamaStack-Provider-Data`` object validated by each configured provider's model
        (validator class -> instance, for ``lamina.request_context.request_provider_data``); a 400
        naming the header, the field and the provider that reads it when one refuses it."""
        out: dict[type, BaseModel] = {}
        for record in self.order:
            validator = record.provider_data_validator
            if validator is None or validator in out:
                continue
            try:
                out[validator] = validator.model_validate(data)
            except ValidationError as exc:
                where = (
                    f"{PROVIDER_DATA_HEADER} header (as provider '{record.provider_id}', "
                    f"{record.spec.provider_type}, reads it)"
                )
                raise validation_error(exc, where, (PROVIDER_DATA_HEADER,)) from None
        return out

    def provider_types(self, api: Api) -> list[str]:
        return sorted({r.spec.provider_type for r in self.providers.get(api, {}).values()})

    @property
    def version(self) -> str:
        return __version__


async def _listed_models(provider_id: str, impl: Any) -> list[Model] | None:
    """``impl.list_models()`` validated; None when it lists nothing (None), fails or takes longer than
    LISTING_SECONDS (logged)."""
    try:
        listed = await asyncio.wait_for(impl.list_models(), LISTING_SECONDS)
        if listed is None:
            return None
        return [m if isinstance(m, Model) else Model.model_validate(m) for m in listed]
    except TimeoutError:
        reason = f"no answer within {LISTING_SECONDS:g}s"
        log.warning("provider_models_not_listed", provider_id=provider_id, error=reason)
        return None
    except Exception as exc:  # the backend is down or answers nonsense: keep what is registered
        log.warning("provider_models_not_listed", provider_id=provider_id, error=_describe(exc))
        return None


async def _wants_refresh(provider_id: str, impl: Any) -> bool:
    method = getattr(impl, "should_refresh_models", None)
    if not callable(method):
        return False
    try:
        return bool(await method())
    except Exception as exc:
        log.warning("provider_refresh_check_failed", provider_id=provider_id, error=_describe(exc))
        return False


def _refresh_interval(impl: Any) -> float:
    """The provider's ``refresh_interval`` (seconds) when it has a positive one, else the default."""
    value = getattr(impl, "refresh_interval", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_REFRESH_INTERVAL


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, LaminaError) else f"{type(exc).__name__}: {exc}"


def _provider_data_validator(spec: ProviderSpec) -> type[BaseModel] | None:
    """The pydantic model ``spec.provider_data_validator`` names, imported (TypeError if it is not one)."""
    if not spec.provider_data_validator:
        return None
    validator = import_object(spec.provider_data_validator)
    if not (isinstance(validator, type) and issubclass(validator, BaseModel)):
        raise TypeError(f"provider_data_validator {spec.provider_data_validator!r} is not a pydantic model")
    return validator


def _path(where: str) -> tuple[Any, ...]:
    api_part, _, index = where.partition("[")
    return (*api_part.split("."), int(index.rstrip("]")))


def _warn_unknown_keys(source: str, where: str, raw: dict[str, Any], config_class: type[BaseModel]) -> None:
    known = set(config_class.model_fields)
    known |= {f.alias for f in config_class.model_fields.values() if f.alias}
    for key in sorted(set(raw) - known):
        log.warning(
            "config_key_ignored", source=source, key=f"{where}.config.{key}", known=", ".join(sorted(known))
        )


def _dependency_order(providers: dict[Api, dict[str, ProviderRecord]], source: str) -> list[ProviderRecord]:
    """Providers sorted so every API's providers start after the APIs they depend on."""
    deps: dict[Api, set[Api]] = {}
    for api, records in providers.items():
        needed: set[Api] = set()
        for record in records.values():
            for dep in record.spec.api_dependencies:
                if dep not in providers:
                    raise ConfigError(
                        f"{source}: {record.where}: {record.spec.provider_type} needs the {dep.value} "
                        f"API; add a provider under providers.{dep.value}"
                    )
                needed.add(dep)
            needed |= {d for d in record.spec.optional_api_dependencies if d in providers}
        deps[api] = needed - {api}
    order: list[Api] = []
    visiting: set[Api] = set()

    def visit(api: Api) -> None:
        if api in order:
            return
        if api in visiting:
            raise ConfigError(f"{source}: providers: circular API dependency involving {api.value}")
        visiting.add(api)
        for dep in sorted(deps.get(api, ())):
            visit(dep)
        visiting.discard(api)
        order.append(api)

    for api in sorted(providers):
        visit(api)
    return [providers[api][pid] for api in order for pid in sorted(providers[api])]
