"""Parsing a document's bytes into text, by mime type, else by file extension, else by sniffing.

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
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import mimetypes
import os
import re
from typing import Any

from lamina.errors import BadRequestError

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
