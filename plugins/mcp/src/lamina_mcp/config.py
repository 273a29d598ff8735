"""The provider config (Llama Stack 0.2.x's ``MCPProviderConfig`` has no fields; these are Lamina's,
each with a default so ``config: {}`` validates) and the provider data it reads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MCPProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["auto", "streamable_http", "sse"] = Field(
        default="auto",
        description="'auto': SSE for an endpoint whose path ends with /sse, else streamable HTTP, falling "
        "back to SSE when the server refuses a streamable HTTP POST (400, 404 or 405), as the MCP "
        "specification's backwards-compatibility rule says. Or force one transport for every group.",
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Connecting and initializing a session, and each list-tools, must finish within this.",
    )
    tool_timeout_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="Longest a tool call may take (504 beyond)."
    )
    session_idle_seconds: float = Field(
        default=300.0,
        ge=0,
        description="An MCP session unused this long is closed. 0: a new session for every call.",
    )
    max_sessions: int = Field(
        default=64, ge=1, le=10_000, description="Open sessions kept (one per endpoint and headers)."
    )
    tools_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a server's tool list (per endpoint and headers) is reused before it is asked "
        "again. 0: ask on every listing and invocation.",
    )
    failure_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a tool listing that failed because the server is unreachable, hung or broken "
        "(a 502/504) is answered with the same error without trying again: resolving a bare tool name "
        "lists every group, and must not wait for a hung server on every call. 0: always try.",
    )


class MCPProviderDataValidator(BaseModel):
    """``X-LlamaStack-Provider-Data``: ``{"mcp_headers": {"<endpoint uri>": {"<header>": "<value>"}}}``.

    As in Llama Stack, a URI matches an endpoint when host, port and path match (scheme and query
    ignored)."""

    mcp_headers: dict[str, dict[str, str]] | None = None
