"""Bytes on the wire: uploaded files (multipart requests) and raw responses, both streamed.

A route declared with ``webmethod(..., multipart=True)`` takes a ``multipart/form-data`` body; the
request model's fields typed ``UploadFile`` are its file parts, the other fields its text parts
(``a[b]`` names fill nested models, as the OpenAI SDK encodes them). The file is *not* read before
the method is called: the method gets an ``UploadFile`` to iterate, and each chunk is read from the
socket only when asked for. So a method (a provider) writes the chunks as they arrive and never holds
the whole file. Because of that, the text fields must come before the file part in the form (the
OpenAI and Llama Stack clients send them first); one file part per request.

A route declared with ``binary=True`` returns a ``BinaryResponse``, which the server writes as
bytes: a file on disk (sent with ``sendfile``), an async iterator of chunks (chunked transfer), or
bytes in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic_core import core_schema

CHUNK_SIZE = 256 * 1024


class UploadFile:
    """A file part of a multipart request. ``async for chunk in upload`` reads it as it arrives.

    It can be iterated once. ``size`` counts the bytes read so far.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        field: str = "file",
    ) -> None:
        self._chunks = chunks
        self._started = False
        self.filename = filename
        self.content_type = content_type
        self.field = field
        self.size = 0

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        chunk: int = CHUNK_SIZE,
    ) -> UploadFile:
        """An upload of bytes in memory (tests, internal callers)."""

        async def gen() -> AsyncIterator[bytes]:
            for i in range(0, len(data), chunk):
                yield data[i : i + chunk]

        return cls(gen(), filename=filename, content_type=content_type)

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError(f"the upload {self.field!r} was already read; it can be read once")
        self._started = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            if chunk:
                self.size += len(chunk)
                yield chunk

    def __repr__(self) -> str:
        return f"UploadFile(field={self.field!r}, filename={self.filename!r}, type={self.content_type!r})"

    # pydantic: accepted as is in request models; a binary string in JSON Schema (OpenAPI).
    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, _schema: Any, _handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "binary"}


@dataclass
class BinaryResponse:
    """Bytes the server sends as they are: exactly one of ``path``, ``chunks`` or ``body``.

    ``filename`` makes the response an attachment (``Content-Disposition``); ``size`` sets
    ``Content-Length`` for ``chunks`` (otherwise they go chunked).
    """

    content_type: str = "application/octet-stream"
    path: Path | None = None
    chunks: AsyncIterator[bytes] | None = None
    body: bytes | None = None
    filename: str | None = None
    size: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def all_headers(self) -> dict[str, str]:
        out = {"Content-Type": self.content_type, **self.headers}
        if self.filename is not None:
            out["Content-Disposition"] = content_disposition(self.filename)
        return out


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="..."``: an ASCII fallback, and the exact name in ``filename*`` (RFC 6266)."""
    ascii_name = _UNSAFE.sub("_", filename.encode("ascii", "replace").decode("ascii").replace("?", "_"))
    value = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
