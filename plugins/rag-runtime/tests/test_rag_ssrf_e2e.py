"""Server-side request forgery through ``rag-tool/insert``, through a real ``lamina run``.

A document whose content is ``http://127.0.0.1:PORT/...`` used to make the server fetch a
loopback-only service and index its body, and the error of a closed port differed from an open one.
The "internal service" here is a real HTTP server this test starts on 127.0.0.1. A second one on
127.0.0.2 (Linux routes all of 127/8 to the loopback interface) plays a public web site: the second
Lamina's rag-runtime config allows exactly that address (``allowed_private_networks``), which proves
the allowed path without turning the guard off.
"""

from __future__ import annotations

import http.server
import importlib.util
import threading
from collections.abc import Iterator

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from lamina.testing.processes import free_port, lamina_server

pytestmark = pytest.mark.e2e

VECTOR_PROVIDER = next(
    (
        provider_type
        for module, provider_type in (
            ("lamina_faiss", "inline::faiss"),
            ("lamina_sqlite_vec", "inline::sqlite-vec"),
        )
        if importlib.util.find_spec(module) is not None
    ),
    None,
)
SECRET = "The vault passphrase is periwinkle-harmonica-42."
PUBLIC = "Capybaras are the largest living rodents and love warm baths."
DB = "ssrf-docs"


class _Site:
    """A threaded HTTP server on ``host`` that serves fixed pages and counts requests."""

    def __init__(self, host: str, pages: dict[str, tuple[int, dict[str, str], str]]) -> None:
        self.hits: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, headers, body = pages.get(self.path, (404, {}, "not found"))
                self.send_response(status)
                for key, value in {"Content-Type": "text/plain", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def internal() -> Iterator[_Site]:
    site = _Site("127.0.0.1", {"/admin": (200, {}, SECRET)})
    yield site
    site.close()


@pytest.fixture(scope="module")
def public(internal: _Site) -> Iterator[_Site]:
    site = _Site(
        "127.0.0.2",
        {
            "/capybaras.txt": (200, {}, PUBLIC),
            "/moved": (302, {"Location": internal.url + "/admin"}, ""),
        },
    )
    yield site
    site.close()


def _client(
    tmp_path_factory: pytest.TempPathFactory, name: str, rag_config: dict
) -> Iterator[LlamaStackClient]:
    if VECTOR_PROVIDER is None:
        pytest.skip("no inline vector_io provider (lamina-faiss or lamina-sqlite-vec) is installed")
    run_config = {
        "version": 2,
        "image_name": name,
        "providers": {
            "inference": [
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {},
                }
            ],
            "vector_io": [{"provider_id": "vectors", "provider_type": VECTOR_PROVIDER, "config": {}}],
            "tool_runtime": [
                {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime", "config": rag_config}
            ],
        },
    }
    with lamina_server(run_config, tmp_path_factory.mktemp(name), name=name) as proc:
        client = LlamaStackClient(base_url=proc.url, max_retries=0, timeout=120)
        client.vector_dbs.register(vector_db_id=DB, embedding_model="all-MiniLM-L6-v2")
        client.tool_runtime.rag_tool.insert(
            vector_db_id=DB,
            chunk_size_in_tokens=128,
            documents=[{"document_id": "decoy", "content": "Otters hold hands.", "metadata": {}}],
        )
        yield client


@pytest.fixture(scope="module")
def default_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaStackClient]:
    """Llama Stack's ``config: {}``: every field at the plugin's default."""
    yield from _client(tmp_path_factory, "ssrf-default", {})


@pytest.fixture(scope="module")
def guarded_client(tmp_path_factory: pytest.TempPathFactory, public: _Site) -> Iterator[LlamaStackClient]:
    yield from _client(
        tmp_path_factory,
        "ssrf-on",
        {"allow_remote_urls": True, "allowed_private_networks": ["127.0.0.2/32"]},
    )


def _insert_error(client: LlamaStackClient, url: str) -> BadRequestError:
    with pytest.raises(BadRequestError) as exc:
        client.tool_runtime.rag_tool.insert(
            vector_db_id=DB,
            chunk_size_in_tokens=128,
            documents=[{"document_id": "stolen", "content": url, "metadata": {}}],
        )
    assert exc.value.status_code == 400
    return exc.value


def _searchable(client: LlamaStackClient, question: str) -> str:
    result = client.tool_runtime.rag_tool.query(content=question, vector_db_ids=[DB])
    return "\n".join(result.metadata["chunks"])


def _same_for_open_and_closed(client: LlamaStackClient, internal: _Site, path: str = "/admin") -> str:
    closed = free_port()
    open_error = _insert_error(client, f"{internal.url}{path}")
    closed_error = _insert_error(client, f"http://127.0.0.1:{closed}{path}")
    port = internal.url.rsplit(":", 1)[1]
    assert str(open_error.body).replace(port, "PORT") == str(closed_error.body).replace(str(closed), "PORT")
    return str(open_error)


def test_default_config_refuses_urls_alike_for_open_and_closed_ports(
    default_client: LlamaStackClient, internal: _Site
) -> None:
    message = _same_for_open_and_closed(default_client, internal)
    assert "documents[0].content: remote URLs are refused" in message
    assert "allow_remote_urls: false" in message
    assert internal.hits == [], "the internal service was never asked"
    assert "periwinkle" not in _searchable(default_client, "What is the vault passphrase?")


def test_with_remote_urls_on_loopback_is_refused_and_public_addresses_fetched(
    guarded_client: LlamaStackClient, internal: _Site, public: _Site
) -> None:
    message = _same_for_open_and_closed(guarded_client, internal)
    assert "the address 127.0.0.1 is not allowed: it is a loopback address" in message
    message = str(_insert_error(guarded_client, public.url + "/moved"))
    assert "127.0.0.1 is not allowed" in message, "a redirect to loopback is refused too"
    assert public.hits == ["/moved"] and internal.hits == []
    assert "periwinkle" not in _searchable(guarded_client, "What is the vault passphrase?")

    guarded_client.tool_runtime.rag_tool.insert(
        vector_db_id=DB,
        chunk_size_in_tokens=128,
        documents=[{"document_id": "capybaras", "content": public.url + "/capybaras.txt", "metadata": {}}],
    )
    assert "largest living rodents" in _searchable(guarded_client, "Which rodent is the largest?")
