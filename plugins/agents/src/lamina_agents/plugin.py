"""Hook implementations: the inline::meta-reference agents provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::meta-reference"


@hookimpl
def lamina_agents_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.agents,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_agents.config:MetaReferenceAgentsImplConfig",
            factory="lamina_agents.provider:create_provider",
            api_dependencies=[Api.inference],
            # DatasetIO and Files: batch agent runs read their rows and write their results through them.
            optional_api_dependencies=[Api.safety, Api.tool_runtime, Api.vector_io, Api.datasetio, Api.files],
            description=(
                "Agents (Llama Stack's Agents API): an agent loop over inference, tools, shields and "
                "RAG; agents, sessions, turns and steps kept in a KV store (SQLite or Postgres); batch agent "
                "runs over a dataset or a JSONL file as resumable jobs."
            ),
        )
    ]
