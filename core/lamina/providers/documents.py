"""Documents to text, and text to overlapping token chunks: the plumbing of RAG ingestion.

Shared by the RAG tool runtime (``POST /v1/tool-runtime/rag-tool/insert``) and, later, the OpenAI
vector stores' file ingestion.

Where a document comes from (``load_document``):

- inline text (``str`` or interleaved content; images are dropped), parsed by its ``mime_type`` when one
  is given (``text/html`` content is stripped to its text, for example);
- a ``data:`` URI, base64 (``;base64``) or percent-encoded, with its own mime type and charset;
- an ``http(s)://`` URL, fetched by ``lamina.providers.url_fetch.GuardedFetcher`` only when
  ``allow_remote_urls`` is true (false by default), then only from public addresses (unless listed in
  ``allowed_private_networks``) and hosts in ``allowed_hosts`` when it is set, each redirect checked
  again (at most ``max_redirects``), at most ``max_document_bytes`` bytes within
  ``fetch_timeout_seconds``;
- a local file (``file://`` URI, or an absolute path given as a URL's ``uri``): refused unless the
  provider's config lists ``local_path_roots``, and then only for files inside one of them once symlinks
  are resolved (a client could otherwise read any file the server can, such as its own run config).

How bytes become text (``parse_bytes``), by mime type, else by file extension, else by sniffing:
text/plain and markdown as they are; HTML and XHTML stripped of tags, scripts and styles with the
standard library's ``html.parser`` (block elements end lines); JSON pretty-printed (JSON Lines one
value per line); CSV and TSV as one ``header: value; ...`` line per row; PDF with ``pypdf``, pages
separated by a blank line. Text is decoded with the declared charset, else UTF-8, else Windows-1252.
Anything else (images, Word files, ...) is a 400 naming the field and the supported types. Parsing
runs in a worker thread, off the event loop.

Tokens (``RegexTokenizer``, the default): Llama Stack counts cl100k BPE tokens with tiktoken, which
downloads its vocabulary on first use and so fails on an offline server. Lamina splits text with
cl100k's own pre-tokenisation pattern (contractions, letter runs with one leading non-letter, digit
groups of at most 3, punctuation runs, whitespace), the pieces BPE then encodes, and counts one token
per piece, or one per ``MAX_PIECE_CHARS`` characters of a longer piece (long words, URLs, base64). For
English prose cl100k encodes nearly every such piece as one token, so counts land within a few percent
of tiktoken's, with no vocabulary file, no dependency and no I/O. Every token is a span of the
original text, so a chunk is an exact slice of the document (its whitespace and case kept) rather
than a lossy decode. ``HFTokenizer`` uses an exact ``tokenizer.json`` (the ``tokenizers`` package)
when a deployment wants counts in its embedding model's own tokens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import csv
import html.parser
import io
import json
import mimetypes
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, unquote_to_bytes, urlparse
from urllib.request import url2pathname

from pydantic import BaseModel, Field, model_validator

from lamina.apis.common import URL, content_to_text
from lamina.apis.vector_io import Chunk
from lamina.errors import BadRequestError, PayloadTooLargeError
from lamina.providers.url_fetch import GuardedFetcher, UrlFetchConfig

DEFAULT_MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_PIECE_CHARS = 8  # a longer pre-token piece counts one token per this many characters

TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "text/x-rst"}
HTML_TYPES = {"text/html", "application/xhtml+xml"}
JSON_TYPES = {"application/json", "text/json"}
JSONL_TYPES = {
    "application/jsonl",
    "application/x-ndjson",
    "application/x-jsonlines",
    "application/jsonlines",
}
CSV_TYPES = {"text/csv", "application/csv", "text/tab-separated-values"}
PDF_TYPES = {"application/pdf"}
SUPPORTED_TYPES = [
    *sorted(TEXT_TYPES | HTML_TYPES | JSON_TYPES | JSONL_TYPES | CSV_TYPES | PDF_TYPES),
    "text/*",
]
_EXTENSIONS = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".txt": "text/plain",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/x-ndjson",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".htm": "text/html",
    ".html": "text/html",
    ".json": "application/json",
    ".pdf": "application/pdf",
}
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
_FETCH_FIELDS = {name: copy.copy(info) for name, info in UrlFetchConfig.model_fields.items()}


class DocumentSourceConfig(BaseModel):
    """Where documents may come from (a provider config embeds these fields)."""

    allow_remote_urls: bool = Field(
        default=False,
        description="Fetch http(s) URLs that documents name. Off by default: a server that fetches any "
        "URL is a proxy into its own network. When on, only public addresses are fetched (see "
        "allowed_hosts and allowed_private_networks).",
    )
    allowed_hosts: list[str] = _FETCH_FIELDS["allowed_hosts"]
    allowed_private_networks: list[str] = _FETCH_FIELDS["allowed_private_networks"]
    max_redirects: int = _FETCH_FIELDS["max_redirects"]
    local_path_roots: list[str] = Field(
        default_factory=list,
        description="Directories whose files documents may name (file:// URIs or absolute paths); "
        "empty (the default) refuses local paths.",
    )
    max_document_bytes: int = Field(default=DEFAULT_MAX_DOCUMENT_BYTES, gt=0)
    fetch_timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _valid_fetch_config(self) -> DocumentSourceConfig:
        self.url_fetch_config()  # allowed_hosts and allowed_private_networks are checked there
        return self

    def url_fetch_config(self) -> UrlFetchConfig:
        return UrlFetchConfig(
            allow_remote_urls=self.allow_remote_urls,
            allowed_hosts=self.allowed_hosts,
            allowed_private_networks=self.allowed_private_networks,
            max_redirects=self.max_redirects,
            max_bytes=self.max_document_bytes,
            timeout_seconds=self.fetch_timeout_seconds,
        )


@dataclass
class LoadedDocument:
    text: str
    mime_type: str
    source: str | None = None  # the URL or path it came from; None for inline content
    filename: str | None = None


# -- loading --------------------------------------------------------------------------------------


async def load_document(
    content: Any,
    mime_type: str | None = None,
    *,
    config: DocumentSourceConfig | None = None,
    param: str = "content",
) -> LoadedDocument:
    """The text of a document's ``content`` (inline, ``URL`` or URL string); 400s name ``param``."""
    config = config or DocumentSourceConfig()
    declared, charset = split_mime(mime_type)
    uri = None
    if isinstance(content, URL):
        uri = content.uri
    elif isinstance(content, dict) and set(content) == {"uri"}:
        uri = str(content["uri"])
    elif isinstance(content, str) and re.match(r"^(https?://|file://|data:)", content, re.IGNORECASE):
        uri = content
    if uri is None:
        text = content_to_text(content)
        if declared and declared not in TEXT_TYPES:
            text = await asyncio.to_thread(parse_bytes, text.encode("utf-8"), declared, param=param)
        return LoadedDocument(text=text, mime_type=declared or "text/plain")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme == "data":
        data, uri_mime, uri_charset = parse_data_uri(uri, param=param)
        mime = declared or uri_mime
        text = await asyncio.to_thread(parse_bytes, data, mime, charset=charset or uri_charset, param=param)
        return LoadedDocument(text=text, mime_type=mime or "text/plain")
    if scheme in ("http", "https"):
        data, header_mime, header_charset = await fetch_url(uri, config, param=param)
        filename = _basename(urlparse(uri).path)
        mime = (
            declared or (header_mime if header_mime not in _GENERIC_TYPES else None) or guess_type(filename)
        )
        text = await asyncio.to_thread(
            parse_bytes, data, mime, charset=charset or header_charset, filename=filename, param=param
        )
        return LoadedDocument(text=text, mime_type=mime or "text/plain", source=uri, filename=filename)
    if scheme == "file" or uri.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", uri):
        path = _local_path(uri)
        read_path = check_local_path(path, config, param=param)
        data = await asyncio.to_thread(_read_file, read_path, config.max_document_bytes, param)
        mime = declared or guess_type(read_path.name)
        text = await asyncio.to_thread(
            parse_bytes, data, mime, charset=charset, filename=read_path.name, param=param
        )
        return LoadedDocument(text=text, mime_type=mime or "text/plain", source=str(path), filename=path.name)
    raise BadRequestError(
        f"{param}: cannot load {_short(uri)}: expected inline text, a data: URI, an http(s) URL or a local "
        f"file path (file:// or absolute)",
        param=param,
    )


def split_mime(mime_type: str | None) -> tuple[str | None, str | None]:
    """``("text/html", "latin-1")`` from ``"Text/HTML; charset=latin-1"``."""
    if not mime_type:
        return None, None
    main, *params = (p.strip() for p in mime_type.split(";"))
    charset = None
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset" and value:
            charset = value.strip().strip('"')
    return (main.lower() or None), charset


def guess_type(filename: str | None) -> str | None:
    if not filename:
        return None
    ext = os.path.splitext(filename)[1].lower()
    return _EXTENSIONS.get(ext) or mimetypes.guess_type(filename, strict=False)[0]


def parse_data_uri(uri: str, *, param: str = "content") -> tuple[bytes, str | None, str | None]:
    """(bytes, mime type, charset) of a ``data:`` URI (RFC 2397)."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise BadRequestError(f"{param}: invalid data URI: no ',' before the data", param=param)
    parts = [p.strip() for p in header.split(";")]
    is_base64 = parts[-1].lower() == "base64"
    if is_base64:
        parts = parts[:-1]
    mime, charset = split_mime(";".join(parts))
    if is_base64:
        try:
            data = base64.b64decode(unquote(payload).strip(), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(f"{param}: invalid base64 in data URI: {exc}", param=param) from None
    else:
        data = unquote_to_bytes(payload)
    return data, mime, charset


async def fetch_url(uri: str, config: DocumentSourceConfig, *, param: str) -> tuple[bytes, str, str | None]:
    """(body, mime type, charset) of a guarded GET of ``uri`` (see ``lamina.providers.url_fetch``)."""
    fetched = await GuardedFetcher(config.url_fetch_config()).fetch(uri, param=param)
    mime, charset = split_mime(fetched.content_type)
    return fetched.body, mime or "", charset


def _too_large(uri: str, size: int | None, limit: int, param: str) -> PayloadTooLargeError:
    got = f" ({size} bytes)" if size is not None else ""
    return PayloadTooLargeError(
        f"{param}: {_short(uri)} is larger than this provider's max_document_bytes of {limit}{got}",
        param=param,
    )


def _local_path(uri: str) -> Path:
    if uri.lower().startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise BadRequestError(f"file URI {_short(uri)} names another host ({parsed.netloc})")
        return Path(url2pathname(parsed.path))
    return Path(uri)


def check_local_path(path: Path, config: DocumentSourceConfig, *, param: str) -> Path:
    """``path`` resolved (symlinks followed), if it is inside one of ``local_path_roots``; else a 400."""
    if not config.local_path_roots:
        raise BadRequestError(
            f"{param}: local file paths are disabled: this provider's config lists no local_path_roots "
            f"(directories whose files documents may name); send the document inline, as a data: URI "
            f"or as an http(s) URL",
            param=param,
        )
    if not path.is_absolute():
        raise BadRequestError(f"{param}: a local path must be absolute, got {_short(str(path))}", param=param)
    resolved = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(os.path.expanduser(r))) for r in config.local_path_roots]
    if not any(resolved.is_relative_to(root) for root in roots):
        raise BadRequestError(
            f"{param}: {_short(str(path))} is outside the directories this provider may read "
            f"(local_path_roots: {', '.join(map(str, roots))})",
            param=param,
        )
    return resolved


def _read_file(path: Path, limit: int, param: str) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadRequestError(f"{param}: {path} is not a regular file", param=param)
        if size > limit:
            raise _too_large(str(path), size, limit, param)
        return path.read_bytes()
    except FileNotFoundError:
        raise BadRequestError(f"{param}: no such file: {path}", param=param) from None
    except PermissionError:
        raise BadRequestError(f"{param}: the server may not read {path}", param=param) from None


def _basename(path: str) -> str | None:
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    return name or None


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- parsing --------------------------------------------------------------------------------------


def parse_bytes(
    data: bytes,
    mime_type: str | None,
    *,
    charset: str | None = None,
    filename: str | None = None,
    param: str = "content",
) -> str:
    """The text of ``data``, parsed as ``mime_type`` (else guessed from ``filename``, else sniffed)."""
    mime, declared_charset = split_mime(mime_type)
    mime, charset = mime or "", charset or declared_charset
    if mime in _GENERIC_TYPES:
        mime = guess_type(filename) or ""
    if not mime:
        mime = "application/pdf" if data[:5] == b"%PDF-" else ("" if b"\x00" in data[:4096] else "text/plain")
    if mime in PDF_TYPES:
        return pdf_to_text(data, param=param)
    if mime in HTML_TYPES:
        return html_to_text(decode_text(data, charset))
    if mime in JSON_TYPES or mime.endswith("+json"):
        return json_to_text(decode_text(data, charset), param=param)
    if mime in JSONL_TYPES:
        return jsonl_to_text(decode_text(data, charset), param=param)
    if mime in CSV_TYPES:
        return csv_to_text(decode_text(data, charset), delimiter="\t" if "tab-separated" in mime else ",")
    if mime.startswith("text/") or mime in ("application/xml", "application/x-yaml", "application/yaml"):
        return decode_text(data, charset)
    raise BadRequestError(
        f"{param}: cannot extract text from {mime or 'binary data of unknown type'}"
        f"{f' ({filename})' if filename else ''}; supported types: {', '.join(SUPPORTED_TYPES)}",
        param=param,
    )


def decode_text(data: bytes, charset: str | None = None) -> str:
    if charset:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
}  # fmt: skip
_SKIPPED_TAGS = {"script", "style", "noscript", "template", "svg"}


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.pre = 0  # inside <pre>: line breaks are kept

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and self.skipping:
            self.skipping -= 1
        elif tag == "pre" and self.pre:
            self.pre -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page: tags, scripts and styles dropped, one line per block element."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def json_to_text(text: str, *, param: str = "content") -> str:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequestError(f"{param}: invalid JSON: {exc}", param=param) from None
    return json.dumps(value, indent=2, ensure_ascii=False)


def jsonl_to_text(text: str, *, param: str = "content") -> str:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.dumps(json.loads(line), ensure_ascii=False))
            except ValueError as exc:
                raise BadRequestError(f"{param}: invalid JSON on line {n}: {exc}", param=param) from None
    return "\n".join(out)


def csv_to_text(text: str, *, delimiter: str = ",") -> str:
    """One line per row, ``header: value`` pairs joined by ``; `` (empty cells left out)."""
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        return ""
    header = [h.strip() for h in rows[0]]
    out = []
    for row in rows[1:]:
        cells = [
            f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {cell.strip()}"
            for i, cell in enumerate(row)
            if cell.strip()
        ]
        out.append("; ".join(cells))
    return "\n".join(out) if out else ", ".join(header)


def pdf_to_text(data: bytes, *, param: str = "content") -> str:
    """Text of every page (pypdf), pages separated by a blank line."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadRequestError(f"{param}: the PDF is encrypted with a password", param=param)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except BadRequestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise BadRequestError(f"{param}: not a readable PDF: {exc}", param=param) from None
    return "\n\n".join(p for p in pages if p)


# -- tokens and chunks ----------------------------------------------------------------------------

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
