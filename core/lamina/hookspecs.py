"""Every hook a Lamina plugin can implement.

Hooks are synchronous and cheap: they return records (see ``lamina.specs``) and never do I/O.
A hook's argument names are its contract; its docstring's first sentence is its documentation
(``docs/hooks.md`` is generated from this module). Adding an argument is free; removing one needs
a deprecation cycle.

Lifecycle: plugins load -> API hooks name provider types -> the run config picks providers ->
providers start (their own async ``initialize``) -> resource hooks add default resources ->
server and CLI hooks add routes, middlewares and commands.
"""

from __future__ import annotations

import pluggy

from lamina.specs import DefaultResource, DistributionSpec, MiddlewareSpec, ProviderSpec, ResourceVeto, RouteSpec

hookspec = pluggy.HookspecMarker("lamina")
hookimpl = pluggy.HookimplMarker("lamina")

# ---------------------------------------------------------------------------------------------
# APIs: which provider types does this plugin offer?
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_inference_providers() -> list[ProviderSpec]:
    """Return the Inference providers (chat, completion, embeddings) this plugin offers."""


@hookspec
def lamina_safety_providers() -> list[ProviderSpec]:
    """Return the Safety providers (shields, moderations) this plugin offers."""


@hookspec
def lamina_agents_providers() -> list[ProviderSpec]:
    """Return the Agents providers (agent turns, OpenAI Responses) this plugin offers."""


@hookspec
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    """Return the ToolRuntime providers (RAG search, web search, MCP, code) this plugin offers."""


@hookspec
def lamina_vector_io_providers() -> list[ProviderSpec]:
    """Return the VectorIO providers (vector databases and vector stores) this plugin offers."""


@hookspec
def lamina_files_providers() -> list[ProviderSpec]:
    """Return the Files providers (OpenAI files storage) this plugin offers."""


@hookspec
def lamina_datasetio_providers() -> list[ProviderSpec]:
    """Return the DatasetIO providers (read and append dataset rows) this plugin offers."""


@hookspec
def lamina_scoring_providers() -> list[ProviderSpec]:
    """Return the Scoring providers (scoring functions over rows) this plugin offers."""


@hookspec
def lamina_eval_providers() -> list[ProviderSpec]:
    """Return the Eval providers (benchmark jobs) this plugin offers."""


@hookspec
def lamina_telemetry_providers() -> list[ProviderSpec]:
    """Return the Telemetry providers (traces, spans, metrics sinks) this plugin offers."""


@hookspec
def lamina_batch_inference_providers() -> list[ProviderSpec]:
    """Return the BatchInference providers (inference and agents over datasets as jobs) this plugin offers."""


@hookspec
def lamina_post_training_providers() -> list[ProviderSpec]:
    """Return the PostTraining providers (fine-tuning and preference optimisation jobs) this plugin offers."""


@hookspec
def lamina_synthetic_data_generation_providers() -> list[ProviderSpec]:
    """Return the SyntheticDataGeneration providers this plugin offers."""


# ---------------------------------------------------------------------------------------------
# Resources: default resources a plugin brings, and vetoes on registrations.
# A default resource names a provider_type; the stack registers it once for every configured
# provider of that type. Identifiers already registered (by the user or the config) win.
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_models() -> list[DefaultResource]:
    """Return Model resources to register by default (for example a bundled local model)."""


@hookspec
def lamina_shields() -> list[DefaultResource]:
    """Return Shield resources to register by default."""


@hookspec
def lamina_vector_dbs() -> list[DefaultResource]:
    """Return VectorDB resources to register by default."""


@hookspec
def lamina_datasets() -> list[DefaultResource]:
    """Return Dataset resources to register by default."""


@hookspec
def lamina_scoring_functions() -> list[DefaultResource]:
    """Return ScoringFunction resources to register by default (for example ``basic::equality``)."""


@hookspec
def lamina_benchmarks() -> list[DefaultResource]:
    """Return Benchmark resources to register by default."""


@hookspec
def lamina_tool_groups() -> list[DefaultResource]:
    """Return ToolGroup resources to register by default (for example ``builtin::rag``)."""


@hookspec
def lamina_validate_resource(resource_type: str, resource: dict) -> ResourceVeto | None:
    """Return a ResourceVeto to refuse registering ``resource`` (a resource's JSON fields), else None."""


# ---------------------------------------------------------------------------------------------
# Server, CLI and distributions.
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_routes() -> list[RouteSpec]:
    """Return extra HTTP routes to serve beside the API routes."""


@hookspec
def lamina_middlewares() -> list[MiddlewareSpec]:
    """Return aiohttp middlewares to wrap every request in."""


@hookspec
def lamina_cli_commands() -> list:
    """Return click commands to add to the ``lamina`` command line."""


@hookspec
def lamina_distributions() -> list[DistributionSpec]:
    """Return the distributions (named run configs) this plugin ships."""


API_HOOKS: dict[str, str] = {
    "inference": "lamina_inference_providers",
    "safety": "lamina_safety_providers",
    "agents": "lamina_agents_providers",
    "tool_runtime": "lamina_tool_runtime_providers",
    "vector_io": "lamina_vector_io_providers",
    "files": "lamina_files_providers",
    "datasetio": "lamina_datasetio_providers",
    "scoring": "lamina_scoring_providers",
    "eval": "lamina_eval_providers",
    "telemetry": "lamina_telemetry_providers",
    "batch_inference": "lamina_batch_inference_providers",
    "post_training": "lamina_post_training_providers",
    "synthetic_data_generation": "lamina_synthetic_data_generation_providers",
}

RESOURCE_HOOKS: dict[str, str] = {
    "model": "lamina_models",
    "shield": "lamina_shields",
    "vector_db": "lamina_vector_dbs",
    "dataset": "lamina_datasets",
    "scoring_function": "lamina_scoring_functions",
    "benchmark": "lamina_benchmarks",
    "tool_group": "lamina_tool_groups",
}
