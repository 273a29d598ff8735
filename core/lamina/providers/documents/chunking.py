"""Text to overlapping token chunks, with the tokenizer that counts them.

How bytes become text (``parse_bytes``), by mime type, else by file extension, else by sniffing:
text/plain and markdown as they are; HTML and XHTML stripped of tags, scripts and styles with the
standard library's ``html.parser`` (block elements end lines); JSON pretty-printed (JSON Lines one
value per line); CSV and TSV as one ``header: value; ...`` line per row; PDF with ``pypdf``, pages
separated by a blank line. Text is decoded with the declared charset, else UTF-8, else Windows-1252.
Anything else (images, Word files, ...) is a 400 naming the field and the supported types. Parsing
runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any, Protocol

from lamina.apis.vector_io import Chunk
from lamina.errors import BadRequestError

MAX_PIECE_CHARS = 8  # a longer pre-token piece counts one token per this many characters


Span = tuple[int, int]


class Tokenizer(Protocol):
    """Splits text into token spans (start, end) in order; what lies between spans is whitespace."""

    name: str

    def spans(self, text: str) -> list[Span]: ...


# cl100k_base's pre-tokenisation pattern, with \p{L} as [^\W\d_] and \p{N} as \d.
_PRETOKEN = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|(?:[^\r\n\w]|_)?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)


class RegexTokenizer:
    """cl100k's pre-tokenisation pieces, one token each (per ``max_piece_chars`` for longer pieces)."""

    name = "regex-cl100k-approx"

    def __init__(self, max_piece_chars: int = MAX_PIECE_CHARS) -> None:
        self.max_piece_chars = max_piece_chars

    def spans(self, text: str) -> list[Span]:
        out: list[Span] = []
        step = self.max_piece_chars
        for m in _PRETOKEN.finditer(text):
            start, end = m.span()
            if m.group().isspace():
                # Whitespace is a token to cl100k too, but a chunk boundary there would be invisible:
                # count it, anchored to the characters it precedes.
                out.append((start, end))
                continue
            for s in range(start, end, step):
                out.append((s, min(s + step, end)))
        return out


class HFTokenizer:
    """Exact counts from a Hugging Face ``tokenizer.json`` (needs the ``tokenizers`` package)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer as _Tok

        self._tok = _Tok.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.name = f"tokenizer.json:{Path(path).name}"

    def spans(self, text: str) -> list[Span]:
        enc = self._tok.encode(text, add_special_tokens=False)
        return [(s, e) for s, e in enc.offsets if e > s]


_DEFAULT_TOKENIZER = RegexTokenizer()


def count_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    return len((tokenizer or _DEFAULT_TOKENIZER).spans(text))


def chunk_id_for(document_id: str, index: int) -> str:
    """A stable chunk id: inserting a document again replaces its chunks instead of doubling them."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"lamina-chunk:{document_id}:{index}").hex


def make_overlapped_chunks(
    document_id: str,
    text: str,
    chunk_size_in_tokens: int,
    chunk_overlap_in_tokens: int,
    metadata: dict[str, Any] | None = None,
    *,
    tokenizer: Tokenizer | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> list[Chunk]:
    """Windows of ``chunk_size_in_tokens`` tokens, each starting ``size - overlap`` after the last.

    Chunk metadata is the document's ``metadata`` plus ``extra_metadata`` (source, filename, ...),
    ``document_id``, ``chunk_index``, ``token_count`` (the chunk's) and ``metadata_token_count`` (of the
    metadata as text, as Llama Stack counts it for the context budget). Whitespace-only windows are
    skipped; the last window ends at the text's end (no window lies wholly inside the previous one).
    """
    if chunk_size_in_tokens < 1:
        raise BadRequestError("chunk_size_in_tokens must be at least 1", param="chunk_size_in_tokens")
    if not 0 <= chunk_overlap_in_tokens < chunk_size_in_tokens:
        raise BadRequestError(
            f"chunk_overlap_in_tokens must be at least 0 and less than chunk_size_in_tokens "
            f"({chunk_size_in_tokens}), got {chunk_overlap_in_tokens}",
            param="chunk_overlap_in_tokens",
        )
    tokenizer = tokenizer or _DEFAULT_TOKENIZER
    spans = tokenizer.spans(text)
    base = {**(metadata or {}), **(extra_metadata or {}), "document_id": document_id}
    metadata_token_count = len(tokenizer.spans(str(base)))
    step = chunk_size_in_tokens - chunk_overlap_in_tokens
    chunks: list[Chunk] = []
    for start in range(0, len(spans), step):
        window = spans[start : start + chunk_size_in_tokens]
        piece = text[window[0][0] : window[-1][1]].strip()
        if piece:
            index = len(chunks)
            chunk_metadata = {
                **base,
                "chunk_index": index,
                "token_count": len(window),
                "metadata_token_count": metadata_token_count,
            }
            chunks.append(
                Chunk(content=piece, metadata=chunk_metadata, chunk_id=chunk_id_for(document_id, index))
            )
        if start + chunk_size_in_tokens >= len(spans):
            break
    return chunks


def load_tokenizer(spec: str | None) -> Tokenizer:
    """``None``/``"regex"``: the default; otherwise the path of a ``tokenizer.json``."""
    if not spec or spec == "regex":
        return _DEFAULT_TOKENIZER
    return HFTokenizer(os.path.expanduser(spec))
