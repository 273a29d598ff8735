"""Documents to text, and text to overlapping token chunks: the plumbing of RAG ingestion.

Three steps, one module each: ``loading`` (where a document's bytes come from: inline, ``data:`` URI, URL
or local file, and the limits on each), ``parsing`` (bytes to text by mime type) and ``chunking`` (text to
overlapping token chunks). The names below are re-exported because plugins import them from here.
"""

from lamina.providers.documents.chunking import (
    HFTokenizer,
    RegexTokenizer,
    Tokenizer,
    chunk_id_for,
    count_tokens,
    load_tokenizer,
    make_overlapped_chunks,
)
from lamina.providers.documents.loading import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DocumentSourceConfig,
    LoadedDocument,
    load_document,
    parse_data_uri,
)
from lamina.providers.documents.parsing import SUPPORTED_TYPES, guess_type, parse_bytes

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "SUPPORTED_TYPES",
    "DocumentSourceConfig",
    "HFTokenizer",
    "LoadedDocument",
    "RegexTokenizer",
    "Tokenizer",
    "chunk_id_for",
    "count_tokens",
    "guess_type",
    "load_document",
    "load_tokenizer",
    "make_overlapped_chunks",
    "parse_bytes",
    "parse_data_uri",
]
