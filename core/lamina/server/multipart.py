"""Multipart requests and binary responses for ``multipart=True`` / ``binary=True`` routes.

The form is read part by part, straight from the socket: text parts (at most ``MAX_FIELD_BYTES``
each) are collected, and at the first part whose name is an ``UploadFile`` field of the request
model, the model is validated and the method called with an ``UploadFile`` that reads that part
lazily. Parts after the file are not read (aiohttp discards the rest of the body after the response,
its lingering close). The server's ``max_request_body_bytes`` does not apply: nothing is buffered, and
the method enforces its own size limit as it reads.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, ClientPayloadError, StreamReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from lamina.apis.binary import CHUNK_SIZE, BinaryResponse, UploadFile
from lamina.errors import BadRequestError, PayloadTooLargeError, field_problems, validation_error

MAX_FIELD_BYTES = 64 * 1024
# What aiohttp raises on a malformed form: bad boundaries (ValueError, AssertionError) and bad part
# headers, e.g. a control character in a part's Content-Disposition (InvalidHeader).
_MALFORMED = (ValueError, AssertionError, HttpProcessingError)
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def upload_fields(model: type[BaseModel]) -> set[str]:
    """Names of the request model's fields typed ``UploadFile`` (or ``UploadFile | None``)."""
    out = set()
    for name, info in model.model_fields.items():
        ann = info.annotation
        args = typing.get_args(ann) if isinstance(ann, types.UnionType) or typing.get_origin(ann) else ()
        if ann is UploadFile or UploadFile in args:
            out.add(name)
    return out


async def call_multipart(
    request: web.Request,
    model: type[BaseModel],
    method: Callable[[Any], Awaitable[Any]],
    path_data: dict[str, Any],
) -> Any:
    """Parse the form of ``request`` into ``model`` and call ``method``; returns what it returns."""
    files = upload_fields(model)
    if request.content_type == "application/x-www-form-urlencoded":  # a form with no file part
        data: dict[str, Any] = {}
        for name, value in (await request.post()).items():
            _put(data, name, value)
        return await method(_validate(model, {**data, **path_data}))
    if request.content_type != "multipart/form-data":
        fields = ", ".join(model.model_fields)
        raise BadRequestError(
            f"{request.method} {request.path} takes a multipart/form-data body (fields: {fields}); "
            f"got Content-Type {request.content_type or 'none'!r}"
        )
    try:
        reader = await request.multipart()
    except _MALFORMED as exc:
        raise BadRequestError(f"the multipart body cannot be read: {_reason(exc)}") from None
    data = {}
    while True:
        try:
            part = await reader.next()
        except _MALFORMED as exc:
            raise BadRequestError(
                f"the multipart body is malformed: {_reason(exc)}; each part needs a header "
                f'"Content-Disposition: form-data; name=..." of printable characters'
            ) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise BadRequestError("nested multipart bodies are not supported; send a flat form")
        name = part.name
        if not name:
            raise BadRequestError(
                "every multipart part needs a name (Content-Disposition: form-data; name=...)"
            )
        if name in files:
            upload = UploadFile(
                _chunks(part, request.content),
                filename=part.filename,
                content_type=part.headers.get(hdrs.CONTENT_TYPE),
                field=name,
            )
            _put(data, name, upload)
            return await method(_validate(model, {**data, **path_data}, upload_field=name))
        _put(data, name, await _read_field(part, name))
    return await method(_validate(model, {**data, **path_data}))


async def _chunks(part: BodyPartReader, stream: StreamReader) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await part.read_chunk(CHUNK_SIZE)
        except (ClientPayloadError, *_MALFORMED) as exc:  # cut off or malformed
            raise BadRequestError(
                f"{part.name}: the upload ended before its multipart part was complete ({_reason(exc)})",
                param=part.name,
            ) from None
        if not chunk:
            if stream.at_eof():  # the part ended with the body: its closing boundary never came
                raise BadRequestError(
                    f"{part.name}: the multipart body ended inside this part (no closing boundary)",
                    param=part.name,
                )
            return
        yield chunk


def _reason(exc: Exception) -> str:
    """aiohttp's own text, without the ``400, message:`` prefix of its HTTP errors."""
    return exc.message if isinstance(exc, HttpProcessingError) else str(exc)


async def _read_field(part: BodyPartReader, name: str) -> str:
    buf = bytearray()
    while True:
        try:
            chunk = await part.read_chunk(CHUNK_SIZE)
        except (ClientPayloadError, *_MALFORMED) as exc:
            reason = _reason(exc)
            raise BadRequestError(f"{name}: the form field is malformed ({reason})", param=name) from None
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_FIELD_BYTES:
            raise PayloadTooLargeError(
                f"{name}: form field longer than {MAX_FIELD_BYTES} bytes; only file parts may be large",
                param=name,
            )
    charset = part.get_charset(default="utf-8")
    try:
        return bytes(buf).decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise BadRequestError(f"{name}: the form field is not valid {charset} text", param=name) from None


def _put(data: dict[str, Any], name: str, value: Any) -> None:
    """``a[b][c]=v`` -> ``data["a"]["b"]["c"] = v`` (the OpenAI SDK's encoding of nested fields)."""
    head, _, rest = name.partition("[")
    keys = [head, *_BRACKETS.findall("[" + rest)] if rest else [head]
    target = data
    for key in keys[:-1]:
        nxt = target.get(key)
        if not isinstance(nxt, dict):
            nxt = target[key] = {}
        target = nxt
    target[keys[-1]] = value


def _validate(model: type[BaseModel], data: dict[str, Any], *, upload_field: str | None = None) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = validation_error(exc, "multipart form")
        missing = [p.path for p in field_problems(exc) if p.type == "missing"]
        if upload_field is None or not missing:
            raise err from None
        raise BadRequestError(
            f"{err.message} (the file part {upload_field!r} is streamed as it arrives, so every other "
            f"field must come before it in the form)",
            param=err.param,
        ) from None


async def send_binary(request: web.Request, result: BinaryResponse, status: int = 200) -> web.StreamResponse:
    """Write a ``BinaryResponse``: sendfile for a path, chunked (or sized) for chunks, else the bytes."""
    headers = result.all_headers()
    if result.path is not None:
        return web.FileResponse(result.path, status=status, headers=headers)
    if result.chunks is not None:
        response = web.StreamResponse(status=status, headers=headers)
        if result.size is not None:
            response.content_length = result.size
        await response.prepare(request)
        async for chunk in result.chunks:
            await response.write(chunk)
        await response.write_eof()
        return response
    return web.Response(status=status, body=result.body or b"", headers=headers)
