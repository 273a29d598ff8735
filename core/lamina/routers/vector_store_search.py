"""Searching a vector store: which chunks it holds, how they are filtered, ranked and paged.

A vector store's vector DB holds two kinds of chunks:

- **file chunks**, written by ingestion (``lamina.routers.vector_store_ingest``): their metadata names
  the store (``vector_store_id``), the file (``file_id``) and their ``chunk_index``, and their id is
  ``chunk_id_for(file_id, chunk_index)``. One counts only while its file is attached and
  ``completed`` (and its index is below the file's chunk count: a shorter re-ingestion leaves none
  behind); filters see, and results show, the file's *current* attributes, id and filename.
- **native chunks**, inserted with ``POST /v1/vector-io/insert`` into the store's id (Llama Stack's
  tests do this): filters see, and results show, the chunk's metadata as ``attributes``, as Llama
  Stack 0.2.12 does. With no file behind it, ``file_id`` is the metadata's ``file_id``, else its
  ``document_id``, else the chunk's id; ``filename`` is the metadata's ``filename``, else that same id.

The Vector IO router is asked for ``CANDIDATES`` chunks per result wanted; when filters (or
detached files) leave too few and the store may hold more, it is asked again for ``GROWTH`` times as
many, up to ``MAX_QUERY_CHUNKS``. Results are best first; ``score`` is the search mode's own (cosine
similarity for ``vector``), always finite (the router refuses a provider's NaN or infinity).

Paging: an answer holds at most ``max_num_results`` results; ``has_more`` says whether more passed
the filters and the threshold, and ``next_page`` is an opaque token to send back as ``page`` with the
same search (query, filters, mode, threshold) for the results after them. The token holds the
offset and a digest of the search, so it works on every replica and a token sent with another search
is a 400 naming ``page``. A page reaches at most ``MAX_QUERY_CHUNKS`` results deep.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import MAX_QUERY_CHUNKS, Chunk, QueryChunksRequest
from lamina.apis.vector_stores import (
    SearchVectorStoreRequest,
    VectorStoreContent,
    VectorStoreSearchResponsePage,
    VectorStoreSearchResult,
)
from lamina.errors import BadRequestError
from lamina.providers.documents.chunking import chunk_id_for

CANDIDATES = 5  # chunks asked per result wanted (Llama Stack's CHUNK_MULTIPLIER)
GROWTH = 4  # how much more to ask for when filters leave too few


async def search_store(
    vector_io: Any, files: dict[str, dict[str, Any]], request: SearchVectorStoreRequest
) -> VectorStoreSearchResponsePage:
    """One page of a search of vector store ``request.vector_store_id``; ``files`` are its file records."""
    vs_id = request.vector_store_id
    query = " ".join(request.query) if isinstance(request.query, list) else request.query
    if request.rewrite_query:
        query = re.sub(r"\s+", " ", query).strip()
    if not query.strip():
        raise BadRequestError("query has no text to search for", param="query")
    ranking = request.ranking_options
    threshold = ranking.score_threshold if ranking and ranking.score_threshold is not None else 0.0
    digest = _digest(query, request.filters, request.search_mode, threshold)
    offset = _page_offset(request.page, digest)
    wanted = request.max_num_results
    need = min(offset + wanted + 1, MAX_QUERY_CHUNKS)  # one more than the page: is there more?
    k = min(need * CANDIDATES, MAX_QUERY_CHUNKS)
    while True:
        params = {"max_chunks": k, "mode": request.search_mode, "score_threshold": threshold}
        response = await vector_io.query_chunks(
            QueryChunksRequest(vector_db_id=vs_id, query=query, params=params)
        )
        results = []
        for chunk, score in zip(response.chunks, response.scores, strict=True):
            result = _result(vs_id, files, chunk, score, request.filters)
            if result is not None:
                results.append(result)
        if len(results) >= need or len(response.chunks) < k or k >= MAX_QUERY_CHUNKS:
            break
        k = min(k * GROWTH, MAX_QUERY_CHUNKS)
    end = offset + wanted
    has_more = len(results) > end and end < MAX_QUERY_CHUNKS
    return VectorStoreSearchResponsePage(
        search_query=query,
        data=results[offset:end],
        has_more=has_more,
        next_page=_page_token(end, digest) if has_more else None,
    )


def _result(
    vs_id: str,
    files: dict[str, dict[str, Any]],
    chunk: Chunk,
    score: float,
    filters: dict[str, Any] | None,
) -> VectorStoreSearchResult | None:
    """The chunk as a search result, or None when it does not count or does not pass the filters."""
    metadata = chunk.metadata
    text = [VectorStoreContent(text=content_to_text(chunk.content))]
    file_id = _ingested_file(vs_id, chunk)
    if file_id is not None:
        record = files.get(file_id)
        if (
            record is None
            or record["status"] != "completed"
            or metadata["chunk_index"] >= record.get("chunk_count", 0)
        ):
            return None
        attributes = record.get("attributes") or {}
        if filters is not None and not matches(attributes, filters):
            return None
        return VectorStoreSearchResult(
            file_id=file_id,
            filename=record.get("filename") or "",
            score=score,
            attributes=attributes,
            content=text,
        )
    if filters is not None and not matches(metadata, filters):
        return None
    name = _text(metadata.get("file_id")) or _text(metadata.get("document_id")) or chunk.chunk_id or ""
    return VectorStoreSearchResult(
        file_id=name,
        filename=_text(metadata.get("filename")) or name,
        score=score,
        attributes=dict(metadata),
        content=text,
    )


def _ingested_file(vs_id: str, chunk: Chunk) -> str | None:
    """The file whose ingestion into this store wrote ``chunk``, or None for a native chunk."""
    metadata = chunk.metadata
    file_id, index = metadata.get("file_id"), metadata.get("chunk_index")
    if (
        metadata.get("vector_store_id") == vs_id
        and isinstance(file_id, str)
        and isinstance(index, int)
        and chunk.chunk_id == chunk_id_for(file_id, index)
    ):
        return file_id
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- page tokens -----------------------------------------------------------------------------------


def _digest(query: str, filters: dict[str, Any] | None, mode: str, threshold: float) -> str:
    doc = json.dumps([query, filters, mode, threshold], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _page_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "d": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(token: str | None, digest: str) -> int:
    if token is None:
        return 0
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, made_for = doc["o"], doc["d"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise BadRequestError(
            f"page {token[:40]!r} is not a page token; send the next_page of an earlier answer", param="page"
        ) from None
    if made_for != digest:
        raise BadRequestError(
            "page belongs to another search; send it with the same query, filters, search_mode and "
            "ranking_options.score_threshold as the search that answered it",
            param="page",
        )
    if not isinstance(offset, int) or not 0 <= offset < MAX_QUERY_CHUNKS:
        raise BadRequestError(f"page points {offset!r} results deep, beyond what is searched", param="page")
    return offset


# -- filters ---------------------------------------------------------------------------------------


def matches(attributes: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether attributes pass an OpenAI filter (already checked by ``check_filter``).

    A missing key never matches (``ne`` and ``nin`` included). ``gt``/``gte``/``lt``/``lte`` compare
    numbers with numbers and strings with strings; other pairs do not match. Booleans are not numbers.
    """
    kind = flt["type"]
    if kind == "and":
        return all(matches(attributes, f) for f in flt["filters"])
    if kind == "or":
        return any(matches(attributes, f) for f in flt["filters"])
    key, value = flt["key"], flt["value"]
    if key not in attributes:
        return False
    have = attributes[key]
    if kind == "eq":
        return _same(have, value)
    if kind == "ne":
        return not _same(have, value)
    if kind == "in":
        return any(_same(have, v) for v in value)
    if kind == "nin":
        return not any(_same(have, v) for v in value)
    if (_is_number(have) and _is_number(value)) or (isinstance(have, str) and isinstance(value, str)):
        return {"gt": have > value, "gte": have >= value, "lt": have < value, "lte": have <= value}[kind]
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b
