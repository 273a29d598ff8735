"""Configs (Llama Stack 0.2.12's fields, plus where the API lives and how long to wait for it) and the
per-request provider data each provider reads from ``X-LlamaStack-Provider-Data``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str | None = Field(
        default=None,
        description="The search API's key. Empty: each request must pass its own in the provider data.",
    )
    max_results: int = Field(default=3, ge=1, le=20, description="The most results a search returns.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the search API's answer.")


class BraveSearchToolConfig(SearchConfig):
    base_url: str = Field(
        default="https://api.search.brave.com/res/v1",
        description="The Brave Search API's base URL (its web search is GET {base_url}/web/search).",
    )


class TavilySearchToolConfig(SearchConfig):
    base_url: str = Field(
        default="https://api.tavily.com",
        description="The Tavily API's base URL (its search is POST {base_url}/search).",
    )


class BraveSearchProviderData(BaseModel):
    """``X-LlamaStack-Provider-Data: {"brave_search_api_key": "..."}`` (Llama Stack's key)."""

    brave_search_api_key: str | None = None


class TavilySearchProviderData(BaseModel):
    """``X-LlamaStack-Provider-Data: {"tavily_search_api_key": "..."}`` (Llama Stack's key)."""

    tavily_search_api_key: str | None = None
