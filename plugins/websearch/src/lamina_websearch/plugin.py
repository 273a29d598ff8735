"""Hook implementations: remote::brave-search and remote::tavily-search, and their default tool group
builtin::websearch (registered for the first of them that is configured).

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

BRAVE = "remote::brave-search"
TAVILY = "remote::tavily-search"
TOOL_GROUP = "builtin::websearch"
_PKG = "lamina_websearch"


@hookimpl
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=BRAVE,
            config_class=f"{_PKG}.config:BraveSearchToolConfig",
            factory=f"{_PKG}.brave:create_provider",
            provider_data_validator=f"{_PKG}.config:BraveSearchProviderData",
            description=(
                "Web search through the Brave Search API (builtin::websearch, tool web_search). The API key "
                "comes from the config or per request (provider data brave_search_api_key)."
            ),
        ),
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=TAVILY,
            config_class=f"{_PKG}.config:TavilySearchToolConfig",
            factory=f"{_PKG}.tavily:create_provider",
            provider_data_validator=f"{_PKG}.config:TavilySearchProviderData",
            description=(
                "Web search through the Tavily Search API (builtin::websearch, tool web_search). The API key "
                "comes from the config or per request (provider data tavily_search_api_key)."
            ),
        ),
    ]


@hookimpl
def lamina_tool_groups() -> list[DefaultResource]:
    return [
        DefaultResource(type=ResourceType.tool_group, provider_type=provider_type, identifier=TOOL_GROUP)
        for provider_type in (BRAVE, TAVILY)
    ]
