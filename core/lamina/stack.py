"""The Stack: providers, routing tables and routers built from a run config.

``Stack.build`` does everything that needs no I/O (pick provider specs, validate each provider's
config, order providers by their API dependencies) so that a bad config fails before anything
starts. ``start`` opens storage, creates and initialises providers and registers resources.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from lamina import __version__, api_table, telemetry
from lamina.apis.inspect import Inspect, Providers
from lamina.apis.jobs import Jobs
from lamina.apis.models import Model
from lamina.apis.vector_stores import VectorStores
from lamina.config import RunConfig, validation_message
from lamina.errors import ConfigError, LaminaError, validation_error
from lamina.jobs.executor import check_executor, create_executor
from lamina.jobs.manager import JobManager
from lamina.jobs.store import jobs_store_config, open_jobs_store
from lamina.jobs.work import WorkApis, WorkEnvironment
from lamina.limits import proxy as limits_proxy
from lamina.limits.gate import ProviderLimiter
from lamina.limits.settings import ProviderLimits
from lamina.plugins import PluginManager
from lamina.provider_health import HealthMonitor
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
from lamina.specs import Api, ProviderSpec, ResourceType, import_object
from lamina.stack_resources import RunConfigResources
from lamina.storage import KVStore, KVStoreConfig, open_kvstore
from lamina.storage.inference_store import (
    CompletionWriter,
    InferenceStore,
    inference_store_config,
    open_inference_store,
)
from lamina.telemetry import provider_proxy

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
    limits: ProviderLimits | None = None  # the entry's `limits` (lamina.limits), None: calls go straight in
    # Names it in the health monitor and its state directory: the provider_id, or ``<provider_id>@<api>``
    # when an earlier API's provider in the run config has that id (Llama Stack's templates name the
    # agents, eval and telemetry providers all ``meta-reference``).
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.provider_id


@dataclass
class Stack(RunConfigResources):
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
    # Where state lives: the run config's state dir (LAMINA_HOME/<image_name>) unless set; a worker of a
    # server elsewhere (lamina.worker_stack) is given the server's.
    state_dir: Path | None = None

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
                _check_limits(source, where, api, entry.limits)
                providers.setdefault(api, {})[entry.provider_id] = ProviderRecord(
                    api,
                    entry.provider_id,
                    spec,
                    provider_config,
                    where,
                    provider_data_validator=validator,
                    limits=entry.limits if entry.limits is not None and _has_limits(entry.limits) else None,
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

    async def start(self, *, worker: bool = False) -> None:
        """Open the stores, start the providers and register the run config's resources.

        ``worker=True`` starts a worker's stack instead (``lamina.worker_stack``, which callers use): the
        same stores and providers, but no job manager (providers get ``context.jobs = None``), no model
        listing or refresh loops, no health probes, no vector store resume, and nothing written to the
        registry: the persisted resources are handed to their providers again, as after a restart."""
        state_dir = self.state_dir or self.config.state_dir()
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
        if not worker:
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
        self._trace_providers()
        self._limit_providers()
        if worker:
            await self._reopen_resources()
            return
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

    def _trace_providers(self) -> None:
        """With telemetry on (a telemetry provider activated it while starting), the routers call every
        provider through the span wrapper (lamina.telemetry.provider_proxy); records, the health
        monitor and shutdown keep the provider itself. Off: nothing is wrapped, nothing costs."""
        if telemetry.active() is None:
            return
        for record in self.order:
            if record.api is not Api.telemetry and record.impl is not None:
                self.impls[record.api][record.provider_id] = provider_proxy.wrap(
                    record.impl, record.api.value, record.provider_id, record.spec.provider_type
                )

    def _limit_providers(self) -> None:
        """Routers call a provider that has ``limits`` through its limiter (lamina.limits), around the
        span wrapper, so a span times the provider's work and not the wait. The others: nothing."""
        for record in self.order:
            if record.limits is not None and record.impl is not None:
                where = f"{record.where}.limits"
                limiter = ProviderLimiter(record.api.value, record.provider_id, record.limits, where)
                impls = self.impls[record.api]
                impls[record.provider_id] = limits_proxy.wrap(impls[record.provider_id], limiter)
                log.info(
                    "provider_limits",
                    api=record.api.value,
                    provider_id=record.provider_id,
                    limits=record.limits.model_dump(exclude_none=True, exclude_defaults=True),
                )

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
            # The routers fill as providers start; a worker elsewhere builds its stack from the config.
            work=WorkEnvironment(WorkApis(self.routers, tuple(self.providers)), self.config),
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
        async with asyncio.timeout(LISTING_SECONDS):  # not wait_for: it can lose a cancel (lamina.tasks)
            listed = await impl.list_models()
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


def _has_limits(limits: ProviderLimits) -> bool:
    return limits.is_set() or any(m.is_set() for m in limits.models.values())


def _check_limits(source: str, where: str, api: Api, limits: ProviderLimits | None) -> None:
    """Refuse limits that would never act: tokens are counted only for inference calls."""
    if limits is None or api is Api.inference:
        return
    scopes = [("", limits), *((f".models.{m}", limit) for m, limit in limits.models.items())]
    for suffix, limit in scopes:
        if limit.tokens_per_minute is not None:
            raise ConfigError(
                f"{source}: {where}.limits{suffix}.tokens_per_minute: tokens are counted for inference "
                f"providers only, and this is a {api.value} provider; use requests_per_minute or "
                f"max_concurrent, or remove it"
            )


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
