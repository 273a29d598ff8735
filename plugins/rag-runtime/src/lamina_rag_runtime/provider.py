"""The inline::rag-runtime provider: Llama Stack 0.2.12's ``MemoryToolRuntimeImpl`` on Lamina's APIs.

``insert`` loads each document (``lamina.providers.documents``: inline, data: URI, URL or allowed
local file; text, Markdown, HTML, JSON, CSV or PDF), cuts it into windows of ``chunk_size_in_tokens``
tokens overlapping by ``chunk_overlap_in_tokens`` (default a quarter, as Llama Stack) and inserts the
chunks through the Vector IO router, which embeds them with the vector DB's embedding model. Chunk
ids are derived from ``document_id`` and the chunk's index, so inserting a document again replaces
its chunks.

``query`` (and the ``knowledge_search`` tool) does what Llama Stack's does: the query text from the
content (``query_generator_config``: ``default`` joins its texts with ``separator``; ``llm`` asks a
model with a sandboxed Jinja ``template``), one Vector IO query per vector DB at once with ``mode``,
``max_chunks``, ``ranker`` and ``score_threshold`` 0.0, the results merged best first and cut to
``max_chunks``, then formatted with ``chunk_template`` while the tokens counted (each chunk's
``token_count`` plus ``metadata_token_count``) stay within ``max_tokens_in_context``, between the
"knowledge_search tool found N chunks" and "END of knowledge_search tool results" items. One
difference: ``metadata`` lists the chunks that made it into the content (Llama Stack's lists up to
three more, an off-by-the-header-and-footer count).
"""

from __future__ import annotations

import asyncio
import string
from types import SimpleNamespace
from typing import Any

import structlog
from pydantic import ValidationError

from lamina.apis.common import ImageContentItem, TextContentItem, content_to_text
from lamina.apis.inference import ChatCompletionRequest, UserMessage
from lamina.apis.tools import (
    InsertDocumentsRequest,
    LLMRAGQueryGeneratorConfig,
    RAGQueryConfig,
    RAGQueryRequest,
    RAGQueryResult,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
    ToolParameter,
)
from lamina.apis.vector_io import Chunk, InsertChunksRequest, QueryChunksRequest, QueryChunksResponse
from lamina.errors import BadRequestError, validation_error
from lamina.providers import ProviderBase, ProviderContext
from lamina.providers.documents import load_document, load_tokenizer, make_overlapped_chunks
from lamina.specs import Api
from lamina_rag_runtime.config import RagToolRuntimeConfig

log = structlog.get_logger(__name__)

KNOWLEDGE_SEARCH = "knowledge_search"
KNOWLEDGE_SEARCH_DEF = ToolDef(
    name=KNOWLEDGE_SEARCH,
    description="Search for information in a database.",
    parameters=[
        ToolParameter(
            name="query",
            parameter_type="string",
            description="The query to search for. Can be a natural language sentence or keywords.",
        )
    ],
)


async def create_provider(
    config: RagToolRuntimeConfig, deps: dict[Any, Any], context: ProviderContext
) -> RagToolRuntimeProvider:
    return RagToolRuntimeProvider(config, context, deps[Api.vector_io], deps.get(Api.inference))


class RagToolRuntimeProvider(ProviderBase):
    def __init__(
        self, config: RagToolRuntimeConfig, context: ProviderContext, vector_io: Any, inference: Any
    ) -> None:
        super().__init__(context)
        self.config = config
        self.vector_io = vector_io
        self.inference = inference
        self.tokenizer = load_tokenizer(config.tokenizer)

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    # -- tool groups ---------------------------------------------------------------------------

    async def register_toolgroup(self, tool_group: ToolGroup) -> None:
        if tool_group.mcp_endpoint is not None:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}': {self.context.provider_type} serves the RAG tool, "
                f"not MCP endpoints",
                param="mcp_endpoint",
            )
        ids = (tool_group.args or {}).get("vector_db_ids")
        if ids is not None:
            _vector_db_ids(ids, "args.vector_db_ids")

    async def list_runtime_tools(self, tool_group: ToolGroup) -> list[ToolDef]:
        return [KNOWLEDGE_SEARCH_DEF]

    async def invoke_tool(
        self, tool_group: ToolGroup, tool_name: str, kwargs: dict[str, Any]
    ) -> ToolInvocationResult:
        if tool_name != KNOWLEDGE_SEARCH:
            raise BadRequestError(
                f"tool group '{tool_group.identifier}' has no tool '{tool_name}'; it has {KNOWLEDGE_SEARCH}",
                param="tool_name",
            )
        args = tool_group.args or {}
        if kwargs.get("vector_db_ids") is not None:
            ids = _vector_db_ids(kwargs["vector_db_ids"], "kwargs.vector_db_ids")
        else:
            ids = _vector_db_ids(args.get("vector_db_ids") or [], "kwargs.vector_db_ids")
        if not ids:
            raise BadRequestError(
                f"kwargs.vector_db_ids: no vector DBs to search: pass vector_db_ids in kwargs, or register "
                f"the tool group '{tool_group.identifier}' with args.vector_db_ids",
                param="kwargs.vector_db_ids",
            )
        raw_config = kwargs.get("query_config") or args.get("query_config")
        try:
            query_config = RAGQueryConfig.model_validate(raw_config) if raw_config else RAGQueryConfig()
        except ValidationError as exc:
            raise validation_error(exc, "kwargs.query_config") from None
        result = await self.query(
            RAGQueryRequest(content=kwargs["query"], vector_db_ids=ids, query_config=query_config)
        )
        return ToolInvocationResult(content=result.content, metadata=result.metadata)

    # -- the RAG tool --------------------------------------------------------------------------

    async def insert(self, request: InsertDocumentsRequest) -> None:
        size = request.chunk_size_in_tokens
        overlap = request.chunk_overlap_in_tokens
        overlap = size // 4 if overlap is None else overlap
        if overlap >= size:
            raise BadRequestError(
                f"chunk_overlap_in_tokens ({overlap}) must be less than chunk_size_in_tokens ({size})",
                param="chunk_overlap_in_tokens",
            )
        chunks: list[Chunk] = []
        for i, doc in enumerate(request.documents):
            where = f"documents[{i}].content"
            loaded = await load_document(doc.content, doc.mime_type, config=self.config, param=where)
            if not loaded.text.strip():
                raise BadRequestError(
                    f"{where}: document '{doc.document_id}' has no text to index (a scanned PDF needs OCR "
                    f"first)",
                    param=where,
                )
            extra = {k: v for k, v in (("source", loaded.source), ("filename", loaded.filename)) if v}
            chunks.extend(
                await asyncio.to_thread(
                    make_overlapped_chunks,
                    doc.document_id,
                    loaded.text,
                    size,
                    overlap,
                    doc.metadata,
                    tokenizer=self.tokenizer,
                    extra_metadata=extra,
                )
            )
        step = self.config.insert_batch_size
        for start in range(0, len(chunks), step):
            await self.vector_io.insert_chunks(
                InsertChunksRequest(vector_db_id=request.vector_db_id, chunks=chunks[start : start + step])
            )
        log.info(
            "rag_documents_inserted",
            vector_db_id=request.vector_db_id,
            documents=len(request.documents),
            chunks=len(chunks),
        )

    async def query(self, request: RAGQueryRequest) -> RAGQueryResult:
        config = request.query_config or RAGQueryConfig()
        query = await self._generate_query(config, request.content)
        if not query.strip():
            raise BadRequestError("content: the query has no text", param="content")
        params: dict[str, Any] = {"max_chunks": config.max_chunks, "score_threshold": 0.0}
        if config.mode is not None:
            params["mode"] = config.mode
        if config.ranker is not None:
            params["ranker"] = config.ranker.model_dump()
        results: list[QueryChunksResponse] = await asyncio.gather(
            *(
                self.vector_io.query_chunks(QueryChunksRequest(vector_db_id=db, query=query, params=params))
                for db in request.vector_db_ids
            )
        )
        scored = [(c, s) for r in results for c, s in zip(r.chunks, r.scores, strict=True)]
        if not scored:
            return RAGQueryResult(content=None)
        scored.sort(key=lambda pair: pair[1], reverse=True)
        scored = scored[: config.max_chunks]

        tokens = 0
        picked: list[TextContentItem] = [
            TextContentItem(
                text=f"knowledge_search tool found {len(scored)} chunks:\n"
                "BEGIN of knowledge_search tool results.\n"
            )
        ]
        used: list[tuple[Chunk, float]] = []
        for i, (chunk, score) in enumerate(scored):
            metadata = chunk.metadata
            tokens += int(metadata.get("token_count", 0) or 0) + int(
                metadata.get("metadata_token_count", 0) or 0
            )
            if tokens > config.max_tokens_in_context:
                log.warning("rag_context_budget_reached", chunks=len(used), tokens=tokens)
                break
            subset = {k: v for k, v in metadata.items() if k not in ("token_count", "metadata_token_count")}
            picked.append(TextContentItem(text=_format_chunk(config.chunk_template, i + 1, chunk, subset)))
            used.append((chunk, score))
        picked.append(TextContentItem(text="END of knowledge_search tool results.\n"))
        asked = _as_text(request.content)
        picked.append(
            TextContentItem(
                text=f'The above results were retrieved to help answer the user\'s query: "{asked}". '
                "Use them as supporting information only in answering this query.\n"
            )
        )
        return RAGQueryResult(
            content=picked,
            metadata={
                "document_ids": [c.metadata.get("document_id") for c, _ in used],
                "chunks": [content_to_text(c.content) for c, _ in used],
                "scores": [s for _, s in used],
            },
        )

    async def _generate_query(self, config: RAGQueryConfig, content: Any) -> str:
        generator = config.query_generator_config
        if isinstance(generator, LLMRAGQueryGeneratorConfig):
            return await self._llm_query(generator, content)
        return _as_text(content, generator.separator)

    async def _llm_query(self, generator: LLMRAGQueryGeneratorConfig, content: Any) -> str:
        from jinja2 import TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        if self.inference is None:
            raise BadRequestError(
                "query_config.query_generator_config: type 'llm' needs an inference provider"
            )
        items = content if isinstance(content, list) else [content]
        messages = [_as_text(m) for m in items]
        try:
            prompt = SandboxedEnvironment().from_string(generator.template).render(messages=messages)
        except TemplateError as exc:
            raise BadRequestError(
                f"query_config.query_generator_config.template: {exc}",
                param="query_config.query_generator_config.template",
            ) from None
        response = await self.inference.chat_completion(
            ChatCompletionRequest(
                model_id=generator.model, messages=[UserMessage(content=prompt)], stream=False
            )
        )
        return content_to_text(response.completion_message.content)


class _ChunkFormatter(string.Formatter):
    """``str.format`` without access to private attributes (``{chunk.__class__...}`` is refused)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if field_name.startswith("_") or "._" in field_name or "[_" in field_name:
            raise KeyError(field_name)
        return super().get_field(field_name, args, kwargs)


def _format_chunk(template: str, index: int, chunk: Chunk, metadata: dict[str, Any]) -> str:
    view = SimpleNamespace(content=content_to_text(chunk.content), metadata=metadata, chunk_id=chunk.chunk_id)
    try:
        return _ChunkFormatter().format(template, index=index, chunk=view, metadata=metadata)
    except (KeyError, AttributeError, IndexError, ValueError) as exc:
        raise BadRequestError(
            f"query_config.chunk_template: cannot be filled ({type(exc).__name__}: {exc}); it may use "
            f"{{index}}, {{chunk.content}} and {{metadata}}",
            param="query_config.chunk_template",
        ) from None


def _as_text(content: Any, sep: str = " ") -> str:
    """Llama Stack's ``interleaved_content_as_str``: items' texts joined by ``sep``, images as <image>."""
    if isinstance(content, list):
        return sep.join(_as_text(c, sep) for c in content)
    if isinstance(content, ImageContentItem) or (
        isinstance(content, dict) and content.get("type") == "image"
    ):
        return "<image>"
    return content_to_text(content)


def _vector_db_ids(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequestError(
            f"{field}: expected a list of vector DB ids (strings), got {value!r:.80}", param=field
        )
    return value
