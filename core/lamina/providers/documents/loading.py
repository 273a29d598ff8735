"""Loading a document: where its bytes come from, and the limits on each source.

Shared by the RAG tool runtime (``POST /v1/tool-runtime/rag-tool/insert``) and, later, the OpenAI
vector stores' file ingestion.

Where a document comes from (``load_document``):

The bytes are then parsed into text by ``lamina.providers.documents.parsing``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlparse
from urllib.request import url2pathname

from pydantic import BaseModel, Field, model_validator

from lamina.apis.common import URL, content_to_text
from lamina.errors import BadRequestError, PayloadTooLargeError
from lamina.providers.documents.parsing import _GENERIC_TYPES, TEXT_TYPES, guess_type, parse_bytes, split_mime
from lamina.providers.url_fetch import GuardedFetcher, UrlFetchConfig

DEFAULT_MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
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
