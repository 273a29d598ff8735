"""Registering the run config's resources at start-up: a part of ``lamina.stack.Stack`` (a mixin).

Plugins' default resources (for the first configured provider of their type), then the run config's
models, vector DBs, tool groups, shields, datasets, scoring functions and benchmarks, in that order (a
benchmark names a dataset and scoring functions). A run-config entry a remote provider refuses
because its upstream is down is retried in the background (``lamina.provider_health``); any other
failure stops start-up naming the entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from lamina.apis.datasets import RegisterDatasetRequest
from lamina.apis.eval import RegisterBenchmarkRequest
from lamina.apis.models import RegisterModelRequest
from lamina.apis.safety import RegisterShieldRequest
from lamina.apis.scoring import RegisterScoringFunctionRequest
from lamina.apis.tools import RegisterToolGroupRequest
from lamina.apis.vector_io import RegisterVectorDBRequest
from lamina.config import validation_message
from lamina.errors import ConfigError, LaminaError, UpstreamError
from lamina.provider_health import Pending
from lamina.specs import Api, DefaultResource, ResourceType

if TYPE_CHECKING:
    from lamina.stack import ProviderRecord

log = structlog.get_logger("lamina.stack")


class RunConfigResources:
    """Start-up registrations; mixed into ``Stack``, whose attributes (config, registry, tables,
    providers, health, pm) these methods use."""

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

    async def _reopen_resources(self) -> None:
        """Hand the persisted vector DBs, shields, datasets and benchmarks to their providers, registering
        nothing (a worker's stack: lamina.worker_stack)."""
        for api, resource_type in (
            (Api.vector_io, ResourceType.vector_db),
            (Api.safety, ResourceType.shield),
            (Api.datasetio, ResourceType.dataset),
            (Api.eval, ResourceType.benchmark),
        ):
            if api in self.providers:
                await self.tables[resource_type].reopen()

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
