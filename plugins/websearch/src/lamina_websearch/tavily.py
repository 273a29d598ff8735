"""remote::tavily-search: ``POST {base_url}/search`` with ``Authorization: Bearer <key>``.

Tavily answers ``{"query", "results": [{"title", "url", "content", "score", ...}], ...}``; the results
are passed on with those fields (plus ``answer`` when Tavily includes one).
"""

from __future__ import annotations

from typing import Any

from lamina.errors import UpstreamError
from lamina.providers import ProviderContext
from lamina_websearch.config import TavilySearchProviderData, TavilySearchToolConfig
from lamina_websearch.search import WebSearchProvider

_FIELDS = ("title", "url", "content", "score", "published_date")


async def create_provider(
    config: TavilySearchToolConfig, deps: dict[Any, Any], context: ProviderContext
) -> TavilySearchProvider:
    return TavilySearchProvider(config, context)


class TavilySearchProvider(WebSearchProvider):
    data_key = "tavily_search_api_key"
    provider_data_model = TavilySearchProviderData

    def __init__(self, config: TavilySearchToolConfig, context: ProviderContext) -> None:
        super().__init__(config, context, config.base_url)

    async def search(self, query: str, api_key: str) -> list[dict[str, Any]]:
        answer = await self.client.request_json(
            "POST",
            "search",
            {"query": query, "max_results": self.config.max_results},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise UpstreamError(self.provider_id, "Tavily answered without a results list")
        return [
            {field: item[field] for field in _FIELDS if item.get(field) not in (None, "")}
            for item in results
            if isinstance(item, dict)
        ]
