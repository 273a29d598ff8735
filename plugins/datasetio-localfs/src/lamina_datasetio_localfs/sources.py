"""Where a dataset's rows come from: a URI resolved to a local file and its format.

Accepted URIs (``source.uri``):

* a path, absolute or relative to the server's working directory (``/data/qa.csv``, ``qa.jsonl``);
* ``file:///data/qa.csv`` (``file://localhost/...`` too; percent-escapes decoded);
* ``data:<mimetype>[;charset=...][;base64],<data>``: base64 or percent-encoded, as Llama Stack's
  tests send them (``data:text/csv;base64,...``); the bytes are written once to the provider's state
  directory (named by their hash) and read from there like any file;
* ``files://<file_id>``: a file uploaded through the Files API (``POST /v1/files``), read through the
  Files router and copied once to the provider's state directory (a file's bytes never change).

The format comes from the file name's extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``/``.json``
as JSON Lines, ``.parquet``/``.pq``, ``.xlsx``), a ``data:`` URI's mimetype, or ``metadata.format``
when set (one of ``readers.FORMATS``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lamina.errors import BadRequestError, NotFoundError
from lamina_datasetio_localfs.readers import FORMATS

FILES_SCHEME = "files://"

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
_MIMETYPES = {
    "text/csv": "csv",
    "csv": "csv",  # Llama Stack's docs write data:csv;base64,...
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/json": "jsonl",
    "text/jsonl": "jsonl",
    "jsonl": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "parquet": "parquet",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "xlsx": "xlsx",
}
_DATA_URL = re.compile(
    r"^data:(?P<mimetype>[\w/\-+.]*)(?P<params>(?:;[\w\-]+=[\w\-.]+)*)(?P<base64>;base64)?,(?P<data>.*)$",
    re.DOTALL,
)
_HINT = (
    "use a local path, file:///path, data:<mimetype>;base64,<data>, or files://<file_id> for a file "
    "uploaded with POST /v1/files"
)


@dataclass(frozen=True)
class FileSource:
    path: Path
    format: str


def format_of(name: str, metadata: dict[str, Any], uri_for_messages: str) -> str:
    wanted = metadata.get("format")
    if wanted:
        if wanted not in FORMATS:
            raise BadRequestError(
                f"metadata.format {wanted!r} is not a format this provider reads; use one of "
                f"{', '.join(FORMATS)}",
                param="metadata.format",
            )
        return str(wanted)
    fmt = _EXTENSIONS.get(Path(name).suffix.lower())
    if fmt is None:
        raise BadRequestError(
            f"source.uri {_short(uri_for_messages)}: cannot tell the format from the name "
            f"{Path(name).name!r}; name the file .csv, .tsv, .jsonl, .parquet or .xlsx, or set "
            f"metadata.format to one of {', '.join(FORMATS)}",
            param="source.uri",
        )
    return fmt


def local_path(uri: str) -> Path | None:
    """The path a ``file://`` URI or a bare path names; None for another scheme."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise BadRequestError(
                f"source.uri {_short(uri)}: file:// URIs name a file on this server "
                f"(file:///path or file://localhost/path), not on host {parsed.netloc!r}",
                param="source.uri",
            )
        return Path(unquote(parsed.path))
    scheme = urlparse(uri).scheme
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
        return None
    return Path(uri).expanduser()


def checked_file(path: Path, uri: str) -> Path:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise BadRequestError(
            f"source.uri {_short(uri)}: {path} {what} on the server; name an existing file ({_HINT})",
            param="source.uri",
        )
    if not os.access(path, os.R_OK):
        raise BadRequestError(
            f"source.uri {_short(uri)}: the server may not read {path}; make it readable",
            param="source.uri",
        )
    return path


def decode_data_uri(uri: str, metadata: dict[str, Any]) -> tuple[bytes, str]:
    """(bytes, format) of a ``data:`` URI."""
    match = _DATA_URL.match(uri)
    if match is None:
        raise BadRequestError(
            f"source.uri {_short(uri)}: not a data: URI of the form data:<mimetype>[;base64],<data>",
            param="source.uri",
        )
    mimetype = match["mimetype"].lower()
    if match["base64"]:
        try:
            data = base64.b64decode(match["data"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(
                f"source.uri {_short(uri)}: its base64 data does not decode ({exc})", param="source.uri"
            ) from None
    else:
        charset = re.search(r";charset=([\w\-]+)", match["params"] or "")
        try:
            data = unquote(match["data"]).encode(charset[1] if charset else "utf-8")
        except LookupError:
            raise BadRequestError(
                f"source.uri {_short(uri)}: unknown charset {charset[1]!r}", param="source.uri"
            ) from None
    if metadata.get("format"):
        return data, format_of("", metadata, uri)
    fmt = _MIMETYPES.get(mimetype)
    if fmt is None and mimetype.startswith("text/"):
        fmt = "csv"  # as Llama Stack reads any text/* data URI
    if fmt is None:
        raise BadRequestError(
            f"source.uri: data: URI of type {mimetype or '(none)'!r} is not a dataset format this provider "
            f"reads; use text/csv, text/tab-separated-values, application/jsonl, "
            f"application/vnd.apache.parquet or "
            f"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, or set metadata.format",
            param="source.uri",
        )
    return data, fmt


def store_bytes(directory: Path, data: bytes, fmt: str) -> Path:
    """``data`` in ``directory``, named by its hash (written once; a second register reuses it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(data).hexdigest()}.{fmt}"
    if not path.exists():
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


async def fetch_files_api_file(files: Any, file_id: str, directory: Path, uri: str) -> tuple[Path, str]:
    """(local copy, file name) of a Files API file, copied once through the Files router."""
    from lamina.apis.files import FileIdRequest

    if files is None:
        raise BadRequestError(
            f"source.uri {_short(uri)}: files:// names a Files API file, but no files provider is "
            f"configured; add one under providers.files (inline::localfs) and upload the file with "
            f"POST /v1/files",
            param="source.uri",
        )
    if not file_id or "/" in file_id:
        raise BadRequestError(
            f"source.uri {_short(uri)}: expected files://<file_id>, the id POST /v1/files answered "
            f"(file-...)",
            param="source.uri",
        )
    try:
        info = await files.openai_retrieve_file(FileIdRequest(file_id=file_id))
    except NotFoundError:
        raise BadRequestError(
            f"source.uri {_short(uri)}: no Files API file '{file_id}'; upload it with POST /v1/files "
            f"and use the id it answers",
            param="source.uri",
        ) from None
    path = directory / f"{file_id}{Path(info.filename).suffix.lower()}"
    if await asyncio.to_thread(_has_size, path, info.bytes):  # a file's bytes never change
        return path, info.filename
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    content = await files.openai_retrieve_file_content(FileIdRequest(file_id=file_id))
    tmp = path.with_suffix(path.suffix + f".tmp-{os.getpid()}")
    try:
        await _write_binary(content, tmp)
        await asyncio.to_thread(os.replace, tmp, path)
    except BaseException:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
        raise
    return path, info.filename


def _has_size(path: Path, size: int) -> bool:
    return path.exists() and path.stat().st_size == size


async def _write_binary(content: Any, target: Path) -> None:
    """A Files API download (bytes, a path or chunks) written to ``target`` off the event loop."""
    if content.body is not None:
        await asyncio.to_thread(target.write_bytes, content.body)
        return
    if content.path is not None:
        await asyncio.to_thread(shutil.copyfile, content.path, target)
        return
    f = await asyncio.to_thread(open, target, "wb")
    try:
        async for chunk in content.chunks:
            await asyncio.to_thread(f.write, chunk)
    finally:
        await asyncio.to_thread(f.close)


def _short(uri: str, limit: int = 80) -> str:
    return repr(uri if len(uri) <= limit else uri[: limit - 3] + "...")
