"""Attacks on a real ``lamina run`` with ``oauth2_token`` auth on, each answered with the right 4xx
and nothing leaked: no stack trace, no filesystem path, no token or key in the body or the server log.

The token attacks (missing, expired, not yet valid, wrong issuer or audience, ``alg: none``, HS256
signed with the public key, an unknown ``kid``, a JWKS server that is down, a hostile ``kid``) are
tests/auth/test_jwt_e2e.py's; here: path traversal in ids and file names, oversized bodies and
uploads, header injection, ``X-LlamaStack-Provider-Data`` abuse and bounds on fields that multiply
work. The upstream is the fake OpenAI server (no real model is needed to refuse an attack).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from openai import BadRequestError, OpenAI

from lamina.testing.auth_servers import AUDIENCE, ISSUER, IdentityProvider
from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server

pytestmark = pytest.mark.e2e

MAX_BODY = 64 * 1024
MAX_UPLOAD = 16 * 1024
SECRET = "sk-attack-provider-data-0123456789abcdef"


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work: Path = tmp_path_factory.mktemp("attacks")
    with IdentityProvider() as idp, fake_openai_server(work) as fake:
        config = {
            "version": 2,
            "image_name": "attacks",
            "providers": {
                "inference": [
                    {
                        "provider_id": "fake",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake.url}/v1"},
                    },
                ],
                "files": [
                    {
                        "provider_id": "localfs",
                        "provider_type": "inline::localfs",
                        "config": {"storage_dir": str(work / "files"), "max_file_size": MAX_UPLOAD},
                    }
                ],
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
                "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            },
            "models": [{"model_id": "ok", "provider_id": "fake"}],
            "server": {
                "auth": {
                    "provider_type": "oauth2_token",
                    "config": {"jwks": {"uri": f"{idp.url}/jwks"}, "issuer": ISSUER, "audience": AUDIENCE},
                },
                "max_request_body_bytes": MAX_BODY,
                "request_bounds": {
                    "max_n": 4,
                    "max_tokens": 1000,
                    "batch_inference_max_items": 2,
                    "dataset_append_max_rows": 5,
                },
            },
        }
        with lamina_server(config, work / "server", name="attacks") as server:
            token = idp.token(sub="mallory")
            yield {"server": server, "token": token, "work": work, "idp": idp}


def _client(attacked: dict[str, Any]) -> httpx.Client:
    return httpx.Client(
        base_url=attacked["server"].url, headers={"Authorization": f"Bearer {attacked['token']}"}, timeout=30
    )


def _leaks(attacked: dict[str, Any], text: str) -> list[str]:
    """What ``text`` (a body, a header, the log) gives away that it must not."""
    found = []
    for bad in (
        "Traceback",
        'File "',
        str(attacked["work"]),
        "/root/",
        "site-packages",
        SECRET,
        attacked["token"],
    ):
        if bad in text:
            found.append(bad)
    return found


def _refused(attacked: dict[str, Any], resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert resp.status_code in statuses, (
        f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    )
    assert not _leaks(attacked, resp.text + json.dumps(dict(resp.headers))), resp.text
    body = resp.json()
    assert body["detail"] and body["error"]["message"]
    return body


TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5cwindows%5cwin.ini",
    "file-%00..%2Fetc",
    "%252e%252e%252fetc",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
def test_traversal_in_ids_finds_nothing(attacked: dict[str, Any], raw: str) -> None:
    with _client(attacked) as http:
        for path in (
            f"/v1/openai/v1/files/{raw}",
            f"/v1/openai/v1/files/{raw}/content",
            f"/v1/files/{raw}/content",
            f"/v1/openai/v1/vector_stores/{raw}",
            f"/v1/openai/v1/vector_stores/{raw}/files",
            f"/v1/datasets/{raw}",
            f"/v1/datasetio/iterrows/{raw}",
            f"/v1/models/{raw}",
        ):
            resp = http.get(path)
            _refused(attacked, resp, 400, 404)
            assert "root:" not in resp.text  # /etc/passwd's first line


def test_traversal_in_an_uploaded_file_name_stays_in_the_store(attacked: dict[str, Any]) -> None:
    work: Path = attacked["work"]
    with _client(attacked) as http:
        for name in ("../../../escaped.txt", "..\\..\\escaped2.txt", "/tmp/escaped3.txt", "a\x00b.txt"):
            files = {"file": (name, b"content", "text/plain")}
            resp = http.post("/v1/openai/v1/files", data={"purpose": "assistants"}, files=files)
            if resp.status_code != 200:
                _refused(attacked, resp, 400)
                continue
            file_id = resp.json()["id"]
            assert file_id.startswith("file-") and "/" not in file_id and ".." not in file_id
            assert not _leaks(attacked, resp.text)
            content = http.get(f"/v1/openai/v1/files/{file_id}/content")
            assert content.status_code == 200 and content.content == b"content"
    for escaped in ("escaped.txt", "escaped2.txt"):
        assert not any(work.parent.rglob(escaped)) and not (work.parent.parent / escaped).exists()
    assert not Path("/tmp/escaped3.txt").exists()


def test_a_crlf_file_name_cannot_inject_response_headers(attacked: dict[str, Any]) -> None:
    # RFC 5987 lets a multipart part carry any name, CR and LF included (filename*=UTF-8''...).
    boundary = "attackboundary"
    name = "a\r\nSet-Cookie: session=stolen\r\nX-Injected: 1\r\n\r\n<script>.txt"
    part_header = (
        f'Content-Disposition: form-data; name="file"; filename="x.txt"; '
        f"filename*=UTF-8''{quote(name, safe='')}"
    )
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f"--{boundary}\r\n{part_header}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    with _client(attacked) as http:
        resp = http.post(
            "/v1/openai/v1/files",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        if resp.status_code != 200:
            _refused(attacked, resp, 400)
            return
        content = http.get(f"/v1/openai/v1/files/{resp.json()['id']}/content")
    assert content.status_code == 200 and content.content == b"hello"
    assert "set-cookie" not in content.headers and "x-injected" not in content.headers
    disposition = content.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition


def test_crlf_and_junk_in_request_headers_are_not_echoed(attacked: dict[str, Any]) -> None:
    with _client(attacked) as http:
        # An X-Request-ID that is not a plain token is replaced, never echoed.
        resp = http.get("/v1/models", headers={"X-Request-ID": "abc<script>\t; Set-Cookie: x=y"})
        assert resp.status_code == 200
        assert resp.headers["X-Request-ID"] != "abc<script>\t; Set-Cookie: x=y"
        assert "set-cookie" not in resp.headers
    # A raw CR LF inside a header value (httpx refuses to send one: a raw socket does).
    server: ServerProcess = attacked["server"]
    raw = (
        f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {attacked['token']}\r\n"
        f"X-Request-ID: a\rSet-Cookie: x=y {attacked['token']}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.split(" ")[1] == "400", head
    assert "Set-Cookie" not in head


def test_provider_data_abuse_is_a_400_that_keeps_the_secret(attacked: dict[str, Any]) -> None:
    with _client(attacked) as http:
        for value in (
            "not json " + SECRET,
            json.dumps([SECRET]),
            json.dumps({"openai_api_key": SECRET, "nested": {"deep": [SECRET] * 3}})[:-1],  # cut JSON
        ):
            resp = http.get("/v1/models", headers={"X-LlamaStack-Provider-Data": value})
            body = _refused(attacked, resp, 400)
            assert body["error"]["param"] == "X-LlamaStack-Provider-Data"
        # Well-formed, with a secret: the request works, and the secret reaches no log line.
        resp = http.get(
            "/v1/models", headers={"X-LlamaStack-Provider-Data": json.dumps({"openai_api_key": SECRET})}
        )
        assert resp.status_code == 200 and SECRET not in resp.text


def test_oversized_bodies_and_uploads_are_413_naming_the_setting(attacked: dict[str, Any]) -> None:
    with _client(attacked) as http:
        big = {"model": "ok", "messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]}
        body = _refused(attacked, http.post("/v1/openai/v1/chat/completions", json=big), 413)
        assert "server.max_request_body_bytes" in body["detail"]
        files = {"file": ("big.bin", b"\0" * (MAX_UPLOAD * 4), "application/octet-stream")}
        body = _refused(
            attacked, http.post("/v1/openai/v1/files", data={"purpose": "assistants"}, files=files), 413
        )
        assert "max_file_size" in body["detail"]
        # A huge header is refused by the HTTP parser before any handler (and its bytes, here starting
        # with the token, are not logged: the last test reads the log).
        resp = http.get("/v1/models", headers={"X-Pad": attacked["token"] + "p" * 200_000})
        assert resp.status_code in (400, 413, 431)


def test_fields_that_multiply_work_are_bounded(attacked: dict[str, Any]) -> None:
    client = OpenAI(base_url=f"{attacked['server'].url}/v1", api_key=attacked["token"], max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    for kwargs, field, setting in (
        ({"n": 5}, "n", "max_n"),
        ({"max_tokens": 1001}, "max_tokens", "max_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens", "max_tokens"),
    ):
        with pytest.raises(BadRequestError) as caught:
            client.chat.completions.create(model="ok", messages=hi, **kwargs)
        error = caught.value.response.json()["error"]
        assert error["param"] == field and f"server.request_bounds.{setting}" in error["message"]
    assert client.chat.completions.create(model="ok", messages=hi, n=4, max_tokens=1000).choices
    with _client(attacked) as http:
        body = _refused(
            attacked,
            http.post(
                "/v1/inference/batch-completion",
                json={"model_id": "ok", "content_batch": ["a", "b", "c"]},
            ),
            400,
        )
        assert body["error"]["param"] == "content_batch" and "batch_inference_max_items" in body["detail"]
        rows = [{"q": str(i)} for i in range(6)]
        body = _refused(attacked, http.post("/v1/datasetio/append-rows/anything", json={"rows": rows}), 400)
        assert body["error"]["param"] == "rows" and "dataset_append_max_rows" in body["detail"]
        body = _refused(attacked, http.get("/v1/datasetio/iterrows/anything", params={"limit": 10**6}), 400)
        assert "server.request_bounds.dataset_iterrows_max_limit" in body["detail"]


def test_the_log_holds_no_secret_and_no_trace(attacked: dict[str, Any]) -> None:
    """Last in the module: the server log after every attack above."""
    server: ServerProcess = attacked["server"]
    log = server.log_path.read_text()
    assert SECRET not in log and attacked["token"] not in log
    assert "Traceback" not in log and "request_crashed" not in log
