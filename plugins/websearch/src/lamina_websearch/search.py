"""What the two web search providers share: the ``web_search`` tool, its argument, the API key (config,
else the request's provider data), the upstream client, and the result the model reads.

A search's result is JSON text, ``{"query": ..., "top_k": [{"title", "url", "content", ...}]}``, the
shape Llama Stack's Tavily tool returns, for both providers (Llama Stack's Brave tool returns Python
reprs of dicts instead: not JSON, so this is the one shape a prompt or a client can rely on). The
same results are in ``metadata.results``, with ``metadata.provider`` naming where they came from.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel

from lamina.apis.tools import ToolDef, ToolGroup, ToolInvocationResult, ToolParameter
from lamina.errors import BadRequestError
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers.http_upstream import Timeouts, UpstreamClient
from lamina.request_context import request_provider_data
from lamina_websearch.config import SearchConfig

WEB_SEARCH = "web_search"
WEB_SEARCH_DEF = ToolDef(
    name=WEB_SEARCH,
    description="Search the web for information",
    parameters=[ToolParameter(name="query", parameter_type="string", description="The query to search for")],
)


class WebSearchProvider(ProviderBase, ABC):
    """A search API behind ``web_search``; subclasses say where the key goes and how results read."""

    #: the provider-data key a request's own API key comes in (Llama Stack's name), and its model
    data_key: str = ""
    provider_data_model: type[BaseModel] = BaseModel

    def __init__(self, config: SearchConfig, context: ProviderContext, base_url: str) -> None:
        super().__init__(context)
        self.config = config
        self.client = UpstreamClient(
            context.provider_id,
            base_url,
            timeouts=Timeouts(connect=min(10.0, config.timeout), read=config.timeout),
        )

    async def initialize(self) -> None:
        await self.client.start()

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        # The API answers only with a key and every call costs quota: no probe. Say what is known.
        if self.config.api_key:
            return {"status": "OK"}
        return {"status": "OK", "message": f"no api_key configured: each request passes {self.data_key}"}

    async def register_toolgroup(self, tool_group: ToolGroup) -> None:
        if tool_group.mcp_endpoint is not None:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}': {self.context.provider_type} serves web_search, "
                f"not MCP endpoints; register MCP tool groups with a remote::model-context-protocol provider",
                param="mcp_endpoint",
            )

    async def list_runtime_tools(self, tool_group: ToolGroup) -> list[ToolDef]:
        return [WEB_SEARCH_DEF]

    async def invoke_tool(
        self, tool_group: ToolGroup, tool_name: str, kwargs: dict[str, Any]
    ) -> ToolInvocationResult:
        if tool_name != WEB_SEARCH:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}' has no tool '{tool_name}'; it has {WEB_SEARCH}",
                param="tool_name",
            )
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError(
                f"kwargs.query must be the text to search the web for (a non-empty string), not {query!r}",
                param="kwargs.query",
            )
        results = await self.search(query.strip(), self.api_key())
        results = results[: self.config.max_results]
        return ToolInvocationResult(
            content=json.dumps({"query": query, "top_k": results}, ensure_ascii=False),
            metadata={"provider": self.context.provider_type, "results": results},
        )

    def api_key(self) -> str:
        if self.config.api_key:
            return self.config.api_key
        # validated by the server against the provider's model before the request got here
        data = request_provider_data(self.provider_data_model)
        key = getattr(data, self.data_key, None) if data is not None else None
        if not key:
            raise BadRequestError(
                f"provider '{self.provider_id}' ({self.context.provider_type}) has no API key: set api_key "
                f"in its config, or pass one per request in the X-LlamaStack-Provider-Data header as "
                f'{{"{self.data_key}": "<your key>"}}',
                param=f"X-LlamaStack-Provider-Data.{self.data_key}",
            )
        return key

    @abstractmethod
    async def search(self, query: str, api_key: str) -> list[dict[str, Any]]:
        """The API's results for ``query``, best first, as dicts of the fields a model should read."""
