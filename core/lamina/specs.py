"""The records that hooks return. Records are data: building one does no I/O.

Import paths (``"package.module:attr"``) stand in for classes and factories so that
listing plugins never imports a provider's heavy dependencies.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Api(StrEnum):
    """The APIs a provider can serve (the keys of run.yaml's ``providers``)."""

    inference = "inference"
    safety = "safety"
    agents = "agents"
    tool_runtime = "tool_runtime"
    vector_io = "vector_io"
    files = "files"
    datasetio = "datasetio"
    scoring = "scoring"
    eval = "eval"
    telemetry = "telemetry"
    batch_inference = "batch_inference"
    batches = "batches"
    post_training = "post_training"
    synthetic_data_generation = "synthetic_data_generation"


class ResourceType(StrEnum):
    """Resource kinds, as the ``type`` field of a resource reads on the wire."""

    model = "model"
    shield = "shield"
    vector_db = "vector_db"
    dataset = "dataset"
    scoring_function = "scoring_function"
    benchmark = "benchmark"
    tool_group = "tool_group"


def import_object(path: str) -> Any:
    """Resolve ``"package.module:attr"``; errors name the path."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"import path {path!r} must look like 'package.module:attr'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ImportError(f"{module_name} has no attribute {attr!r} (from import path {path!r})") from exc


class ProviderSpec(BaseModel):
    """One provider type a plugin offers for one API.

    Llama Stack's ``pip_packages`` is not a field here: a provider's dependencies are its package's own
    (pyproject) dependencies, which pip installs with it; a spec that still passes it has it ignored.
    """

    model_config = ConfigDict(frozen=True)

    api: Api
    provider_type: str = Field(description="'inline::<name>' or 'remote::<name>', as in Llama Stack.")
    config_class: str = Field(description="Import path of the pydantic model of this provider's config.")
    factory: str = Field(description="Import path of `async def factory(config, deps, context) -> provider`.")
    api_dependencies: list[Api] = Field(default_factory=list)
    optional_api_dependencies: list[Api] = Field(default_factory=list)
    provider_data_validator: str | None = Field(
        default=None,
        description=(
            "Import path of a pydantic model of the per-request settings this provider reads from the "
            "X-LlamaStack-Provider-Data header (e.g. `openai_api_key`). The server validates every request's "
            "header with it (a 400 naming the field when it fails); the provider reads the result with "
            "`lamina.request_context.request_provider_data(Model)`. Ignore unknown fields (pydantic's "
            "default): one header carries the settings of every provider."
        ),
    )
    description: str = ""
    deprecation_warning: str | None = None

    @field_validator("provider_type")
    @classmethod
    def _kind_prefix(cls, value: str) -> str:
        kind, sep, name = value.partition("::")
        if not sep or kind not in ("inline", "remote") or not name:
            raise ValueError(f"provider_type {value!r} must be 'inline::<name>' or 'remote::<name>'")
        return value


class DefaultResource(BaseModel):
    """A resource a plugin contributes, registered for every configured provider of ``provider_type``."""

    model_config = ConfigDict(frozen=True)

    type: ResourceType
    provider_type: str
    identifier: str
    provider_resource_id: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="The resource's own fields (model_type, metadata, ...)."
    )


class ResourceVeto(BaseModel):
    """A plugin's refusal of a resource registration, with the reason shown to the user."""

    plugin: str = ""
    reason: str


class RouteSpec(BaseModel):
    """An extra HTTP route a plugin adds to the server."""

    model_config = ConfigDict(frozen=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    handler: str = Field(description="Import path of an aiohttp handler `async def (request) -> Response`.")
    description: str = ""
    access: Literal["caller", "admin", "open"] = Field(
        default="caller",
        description=(
            "Who may call it when the server has `server.auth`: `caller`, any authenticated caller (a "
            "handler acting on resources checks them with `lamina.access.checks`); `admin`, callers with "
            "the role `server.auth.admin_role`; `open`, anyone, without a token (a webhook that checks "
            "its own signature)."
        ),
    )


class MiddlewareSpec(BaseModel):
    """An aiohttp middleware a plugin adds; applied in (order, name) order after the core's own."""

    model_config = ConfigDict(frozen=True)

    name: str
    middleware: str = Field(description="Import path of a new-style aiohttp middleware.")
    order: int = 100


class JobExecutorSpec(BaseModel):
    """A job executor a plugin offers: where job handlers run (``lamina.jobs.executor``)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_-]*$", description="What the run config's `jobs.executor` names it by."
    )
    factory: str = Field(
        description=(
            "Import path of `def factory(config: dict) -> JobExecutor` (config: `jobs.executor_config`)."
        )
    )
    description: str = ""


class DistributionSpec(BaseModel):
    """A named, pre-packaged run config."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    run_config: str = Field(description="The run.yaml text (may use ${env.X:=default}).")
    default: bool = Field(default=False, description="Served by `lamina run` with no argument.")

    def providers(self) -> dict[str, list[str]]:
        """``{api: [provider_type, ...]}`` read from the run config (no env substitution needed)."""
        import yaml

        doc = yaml.safe_load(self.run_config) or {}
        out: dict[str, list[str]] = {}
        for api, entries in (doc.get("providers") or {}).items():
            out[api] = [str(e.get("provider_type")) for e in entries or []]
        return out
