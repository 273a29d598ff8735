"""remote::brave-search: ``GET {base_url}/web/search?q=...&count=N`` with ``X-Subscription-Token``.

Brave answers its result lists by type (``web``, ``news``, ``videos``, ``faq``, ...) and, in ``mixed``,
the order it ranks them in across types. The results are read in that order (``mixed.main``: each
entry a type and, for one result of a list, its index), falling back to the plain web results when
an answer has no ``mixed`` block.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from lamina.errors import UpstreamError
from lamina.providers import ProviderContext
from lamina_websearch.config import BraveSearchProviderData, BraveSearchToolConfig
from lamina_websearch.search import WebSearchProvider

#: per result type, the fields worth a model's context (Brave's own names)
_FIELDS = {
    "web": ("title", "url", "description", "age", "extra_snippets"),
    "news": ("title", "url", "description", "age"),
    "videos": ("title", "url", "description", "age"),
    "faq": ("question", "answer", "title", "url"),
    "discussions": ("title", "url", "description"),
    "locations": ("title", "url", "description", "postal_address", "rating"),
    "infobox": ("title", "url", "description", "long_desc"),
}


async def create_provider(
    config: BraveSearchToolConfig, deps: dict[Any, Any], context: ProviderContext
) -> BraveSearchProvider:
    return BraveSearchProvider(config, context)


class BraveSearchProvider(WebSearchProvider):
    data_key = "brave_search_api_key"
    provider_data_model = BraveSearchProviderData

    def __init__(self, config: BraveSearchToolConfig, context: ProviderContext) -> None:
        super().__init__(config, context, config.base_url)

    async def search(self, query: str, api_key: str) -> list[dict[str, Any]]:
        params = urlencode({"q": query, "count": self.config.max_results})
        answer = await self.client.request_json(
            "GET",
            f"web/search?{params}",
            headers={"X-Subscription-Token": api_key, "Accept": "application/json"},
        )
        if not isinstance(answer, dict):
            raise UpstreamError(self.provider_id, "Brave Search answered something other than a JSON object")
        return list(_results(answer))


def _results(answer: dict[str, Any]):
    main = (answer.get("mixed") or {}).get("main")
    if not isinstance(main, list):
        main = [{"type": "web", "all": True}]
    for entry in main:
        kind = entry.get("type")
        block = answer.get(kind)
        items = block.get("results") if isinstance(block, dict) else None
        if kind not in _FIELDS or not isinstance(items, list):
            continue
        if entry.get("all") or entry.get("index") is None:
            chosen = items
        elif isinstance(entry["index"], int) and 0 <= entry["index"] < len(items):
            chosen = [items[entry["index"]]]
        else:
            continue
        for item in chosen:
            if isinstance(item, dict):
                yield _clean(kind, item)


def _clean(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind}
    for field in _FIELDS[kind]:
        if item.get(field) not in (None, "", []):
            out[field] = item[field]
    # one name for the text across both providers (Tavily's): a result's description or answer
    text = item.get("description") or item.get("answer")
    if text:
        out["content"] = text
    return out
