"""How chunks are stored in Chroma, and the tokens keyword search works on.

One chunk is one Chroma record:

* id: the chunk's ``chunk_id``;
* embedding: the chunk's embedding (sent base64-encoded float32 when the server supports it);
* document: the chunk's text normalised for keyword search: the casefolded word tokens joined by
  single spaces, with a space before and after (`` the cat sat ``), so that Chroma's full-text
  ``$contains`` of `` cat `` is a case-insensitive whole-word match served by its trigram index;
* metadata: the chunk's metadata flattened to Chroma's scalar values (nested keys joined with
  ``.``, lists and out-of-range numbers as JSON strings, ``None`` dropped) so it can be filtered
  in Chroma itself, plus the reserved key ``lamina:chunk`` holding the chunk (content, metadata and
  any extra fields, without the embedding) as JSON: that is what queries return, so a chunk
  round-trips exactly whatever its metadata.

Records written by Llama Stack's own Chroma provider (the chunk's JSON as the document, no
metadata) are read too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from lamina.apis.vector_io import Chunk

CHUNK_KEY = "lamina:chunk"
RESERVED_PREFIX = "lamina:"

_TOKEN = re.compile(r"\w+")
_NAME_OK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_I64 = (-(2**63), 2**63 - 1)

# Dropped from a keyword query when other terms remain (as full-text engines' English configs do):
# they match nearly every chunk, cost a large candidate fetch, and BM25 gives them ~no weight.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or that the this to was were "
    "will with what which who how".split()
)


def tokens(text: str) -> list[str]:
    """Casefolded word tokens (``\\w+``): what keyword search indexes and matches."""
    return _TOKEN.findall(text.casefold())


def query_terms(text: str, limit: int = 32) -> list[str]:
    """The distinct terms of a keyword query, stopwords dropped unless nothing else is left."""
    seen = list(dict.fromkeys(tokens(text)))
    kept = [t for t in seen if t not in STOPWORDS] or seen
    return kept[:limit]


def search_document(text: str) -> str:
    return " " + " ".join(tokens(text)) + " "


def collection_name(name: str) -> str:
    """A valid Chroma collection name for a vector DB: the name itself when Chroma accepts it.

    Otherwise (too short, ``/``, spaces, ...) a stable derived one: ``lamina-<sanitised>-<hash>``.
    """
    if _NAME_OK.match(name) and ".." not in name and not _IPV4.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    safe = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-_")[:64]
    return f"lamina-{safe}-{digest}" if safe else f"lamina-{digest}"


def content_text(content: Any) -> str:
    """The text of interleaved content (text items joined by spaces; images contribute nothing)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(content_text(item) for item in content)
    if isinstance(content, dict):
        return str(content.get("text") or "") if content.get("type") == "text" else ""
    text = getattr(content, "text", None)
    return text if isinstance(text, str) else ""


# -- chunk -> record ----------------------------------------------------------------------------


def chunk_blob(chunk: Chunk) -> dict[str, Any]:
    # Python mode + json.dumps: non-finite floats survive (as Infinity/NaN inside the JSON string).
    return chunk.model_dump(exclude={"embedding", "chunk_id"})


def record_metadata(blob: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    _flatten(blob.get("metadata") or {}, "", flat)
    flat[CHUNK_KEY] = json.dumps(blob, ensure_ascii=False, separators=(",", ":"), default=str)
    return flat


def _flatten(value: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if not name or name.startswith((RESERVED_PREFIX, "#", "$")):
            continue
        if isinstance(item, dict):
            _flatten(item, name + ".", out)
        elif item is None:
            continue
        elif isinstance(item, bool | str):
            out[name] = item
        elif isinstance(item, int):
            out[name] = item if _I64[0] <= item <= _I64[1] else str(item)
        elif isinstance(item, float):
            if math.isfinite(item):
                out[name] = item
        else:
            out[name] = json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str)


# -- record -> chunk ----------------------------------------------------------------------------


def record_chunk(record_id: str, metadata: dict[str, Any] | None, document: str | None) -> Chunk:
    raw = (metadata or {}).get(CHUNK_KEY)
    if isinstance(raw, str):
        try:
            blob = json.loads(raw)
        except ValueError:
            blob = None
        if isinstance(blob, dict):
            return Chunk(**blob, chunk_id=record_id)
    # Not written by Lamina: Llama Stack's provider stored the chunk's JSON as the document.
    if document:
        try:
            blob = json.loads(document)
        except ValueError:
            blob = None
        if isinstance(blob, dict) and "content" in blob:
            blob.pop("embedding", None)
            blob["chunk_id"] = record_id
            return Chunk(**blob)
    plain = {k: v for k, v in (metadata or {}).items() if not k.startswith(RESERVED_PREFIX)}
    return Chunk(content=(document or "").strip(), metadata=plain, chunk_id=record_id)
