"""Hook implementations: the inline::rag-runtime provider and its default tool group, builtin::rag.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

PROVIDER_TYPE = "inline::rag-runtime"
TOOL_GROUP = "builtin::rag"


@hookimpl
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_rag_runtime.config:RagToolRuntimeConfig",
            factory="lamina_rag_runtime.provider:create_provider",
            api_dependencies=[Api.vector_io, Api.inference],
            description=(
                "The RAG tool (builtin::rag): documents (text, Markdown, HTML, JSON, CSV, PDF; inline, data: "
                "URIs, URLs) chunked by tokens into vector DBs, and knowledge_search over them."
            ),
        )
    ]


@hookimpl
def lamina_tool_groups() -> list[DefaultResource]:
    return [DefaultResource(type=ResourceType.tool_group, provider_type=PROVIDER_TYPE, identifier=TOOL_GROUP)]
