"""Hook implementations: the remote::model-context-protocol tool_runtime provider.

Imported whenever plugins load: it imports nothing heavy (the mcp package loads with the provider).
It registers no default tool group: each MCP tool group names its server (``mcp_endpoint``).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "remote::model-context-protocol"


@hookimpl
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_mcp.config:MCPProviderConfig",
            factory="lamina_mcp.provider:create_provider",
            provider_data_validator="lamina_mcp.config:MCPProviderDataValidator",
            description=(
                "Tool groups served by Model Context Protocol servers (mcp_endpoint), over streamable HTTP "
                "or SSE, with per-request headers from provider data (mcp_headers)."
            ),
        )
    ]
