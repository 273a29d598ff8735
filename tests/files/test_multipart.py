"""Multipart requests and binary responses of declared routes, on an in-process aiohttp server.

A toy API declares one multipart route and three binary ones; the checks are about the server's
parsing (form fields, ``a[b]`` nesting, the file streamed lazily, ordering, limits) and rendering,
and about the OpenAPI document describing both.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict

from lamina.apis.binary import BinaryResponse, UploadFile, content_disposition
from lamina.apis.files import Files
from lamina.apis.webmethod import webmethod
from lamina.server.middlewares import request_middleware
from lamina.server.multipart import MAX_FIELD_BYTES
from lamina.server.openapi import build_openapi
from lamina.server.routes import add_api_routes


class Inner(BaseModel):
    anchor: str
    seconds: int


class UploadRequest(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: str
    inner: Inner | None = None
    file: UploadFile


class Echo(BaseModel):
    kind: str
    inner: Inner | None
    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    chunks: int


class Which(BaseModel):
    which: str


class Toy(Protocol):
    @webmethod("POST", "/toy/upload", request=UploadRequest, response=Echo, multipart=True)
    async def upload(self, request: UploadRequest) -> Echo:
        """Upload."""
        ...

    @webmethod("GET", "/toy/bytes/{which}", request=Which, binary=True)
    async def download(self, request: Which) -> BinaryResponse:
        """Download."""
        ...


class ToyImpl:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    async def upload(self, request: UploadRequest) -> Echo:
        digest = hashlib.sha256()
        n = 0
        async for chunk in request.file:
            digest.update(chunk)
            n += 1
        return Echo(
            kind=request.kind,
            inner=request.inner,
            filename=request.file.filename,
            content_type=request.file.content_type,
            size=request.file.size,
            sha256=digest.hexdigest(),
            chunks=n,
        )

    async def download(self, request: Which) -> BinaryResponse:
        if request.which == "path":
            path = self.tmp / "data.bin"
            path.write_bytes(b"from disk")
            return BinaryResponse(path=path, content_type="text/plain", filename="résumé.txt")

        async def gen() -> AsyncIterator[bytes]:
            for part in (b"a", b"b", b"c"):
                yield part

        if request.which == "chunks":
            return BinaryResponse(chunks=gen(), content_type="application/jsonl")
        return BinaryResponse(body=b"\x00\x01", filename='we"ird.bin')


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[request_middleware], client_max_size=1024)
    add_api_routes(app, [(Toy, ToyImpl(tmp_path), [])])
    async with TestClient(TestServer(app)) as c:
        yield c


def form(*parts: tuple[str, object]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in parts:
        if isinstance(value, bytes):
            data.add_field(name, value, filename="f.bin", content_type="application/x-test")
        else:
            data.add_field(name, str(value))
    return data


async def test_fields_nested_fields_and_the_file_stream(client: TestClient) -> None:
    # The app's client_max_size is 1 KiB: a streamed file part is not subject to it.
    body = bytes(range(256)) * 4096  # 1 MiB
    resp = await client.post(
        "/toy/upload",
        data=form(("kind", "k"), ("inner[anchor]", "created_at"), ("inner[seconds]", "3600"), ("file", body)),
    )
    assert resp.status == 200, await resp.text()
    echo = await resp.json()
    assert echo["kind"] == "k"
    assert echo["inner"] == {"anchor": "created_at", "seconds": 3600}
    assert echo["filename"] == "f.bin"
    assert echo["content_type"] == "application/x-test"
    assert echo["size"] == len(body)
    assert echo["sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["chunks"] > 1  # delivered in pieces, not as one buffer


async def test_a_field_after_the_file_is_a_400_that_says_to_send_it_first(client: TestClient) -> None:
    resp = await client.post("/toy/upload", data=form(("file", b"xyz"), ("kind", "k")))
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert "kind: required, but missing" in detail
    assert "must come before it" in detail


async def test_missing_file_and_bad_nested_field_name_the_field(client: TestClient) -> None:
    resp = await client.post("/toy/upload", data=form(("kind", "k")))
    assert resp.status == 400
    assert "file: required, but missing" in (await resp.json())["detail"]
    resp = await client.post(
        "/toy/upload",
        data=form(("kind", "k"), ("inner[anchor]", "x"), ("inner[seconds]", "soon"), ("file", b"z")),
    )
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["param"] == "inner.seconds"


async def test_not_multipart_is_a_400_naming_the_fields(client: TestClient) -> None:
    resp = await client.post("/toy/upload", json={"kind": "k"})
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert "multipart/form-data" in detail and "kind, inner, file" in detail
    resp = await client.post("/toy/upload", data=b"{}", headers={"Content-Type": "text/plain"})
    assert resp.status == 400


async def test_an_oversized_text_field_is_a_413(client: TestClient) -> None:
    resp = await client.post("/toy/upload", data=form(("kind", "k" * (MAX_FIELD_BYTES + 1)), ("file", b"z")))
    assert resp.status == 413
    assert "kind" in (await resp.json())["detail"]


async def test_binary_responses(client: TestClient) -> None:
    resp = await client.get("/toy/bytes/path")
    assert resp.status == 200
    assert await resp.read() == b"from disk"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["Content-Disposition"] == content_disposition("résumé.txt")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in resp.headers["Content-Disposition"]

    resp = await client.get("/toy/bytes/chunks")
    assert await resp.read() == b"abc"
    assert resp.headers["Content-Type"] == "application/jsonl"
    assert "Content-Disposition" not in resp.headers

    resp = await client.get("/toy/bytes/body")
    assert await resp.read() == b"\x00\x01"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="we_ird.bin"; filename*=')


async def test_upload_file_reads_once() -> None:
    upload = UploadFile.from_bytes(b"abcdef", chunk=4)
    assert [c async for c in upload] == [b"abcd", b"ef"]
    assert upload.size == 6
    with pytest.raises(RuntimeError, match="read once"):
        [c async for c in upload]


def test_openapi_describes_multipart_and_binary(tmp_path: Path) -> None:
    doc = build_openapi([(Toy, ToyImpl(tmp_path), []), (Files, object(), [])])
    upload = doc["paths"]["/toy/upload"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    assert "413" in upload["responses"]
    schema = doc["components"]["schemas"]["UploadRequest"]
    assert schema["properties"]["file"]["format"] == "binary"
    content = doc["paths"]["/toy/bytes/{which}"]["get"]["responses"]["200"]["content"]
    # Any type: a file's content goes back with the Content-Type it was uploaded with.
    assert content == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    for prefix in ("/v1/openai/v1", "/v1"):
        assert "multipart/form-data" in doc["paths"][f"{prefix}/files"]["post"]["requestBody"]["content"]
        get = doc["paths"][f"{prefix}/files/{{file_id}}/content"]["get"]
        assert "*/*" in get["responses"]["200"]["content"]
    assert doc["components"]["schemas"]["UploadFileRequest"]["properties"]["file"]["format"] == "binary"


async def test_a_file_part_cut_off_is_a_400(client: TestClient) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nk\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n'
    ).encode() + b"y" * 100_000  # no closing boundary: the body ends mid-part
    resp = await client.post(
        "/toy/upload", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "file"
