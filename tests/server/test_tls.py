"""TLS from the run config: server.tls_certfile + tls_keyfile serve HTTPS; tls_cafile requires clients
to present a certificate signed by that CA (as in Llama Stack), instead of being loaded and unused.

The certificates are made for the test with the openssl command line, on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=lamina-test-ca",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            cwd=d,
        )
    return d


def _context(certs: Path, *, client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return ctx


def _health(port: int, ctx: ssl.SSLContext) -> dict:
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/v1/health", timeout=5, context=ctx) as resp:
        return json.loads(resp.read())


class TLSServer(ServerProcess):
    """``lamina run`` over HTTPS: ready once a client holding the client certificate gets /v1/health."""

    ready_context: ssl.SSLContext

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"lamina exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                _health(self.port, self.ready_context)
                return
            except (OSError, ssl.SSLError, http.client.HTTPException):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"not ready within {self.ready_timeout}s:\n{self.log_tail()}")


def _start(tmp_path: Path, certs: Path, fake_upstream: ServerProcess, **server: str) -> TLSServer:
    config = {
        "version": 2,
        "image_name": "tls",
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake_upstream.url}/v1"},
                }
            ]
        },
        "server": {
            "tls_certfile": str(certs / "server.pem"),
            "tls_keyfile": str(certs / "server.key"),
            **server,
        },
    }
    plain = lamina_server(config, tmp_path)
    server_process = TLSServer(plain.argv, plain.port, log_path=plain.log_path, env=plain.env)
    server_process.ready_context = _context(certs, client_cert=True)
    return server_process


def _refused(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        _health(port, ctx)
    except (OSError, ssl.SSLError, http.client.HTTPException, urllib.error.URLError):
        return True
    return False


def test_tls_cafile_requires_a_client_certificate(
    tmp_path: Path, certs: Path, fake_upstream: ServerProcess
) -> None:
    with _start(tmp_path, certs, fake_upstream, tls_cafile=str(certs / "ca.pem")) as server:
        assert _health(server.port, _context(certs, client_cert=True))["status"] == "OK"
        assert _refused(server.port, _context(certs, client_cert=False))


def test_tls_without_cafile_serves_any_client(
    tmp_path: Path, certs: Path, fake_upstream: ServerProcess
) -> None:
    with _start(tmp_path, certs, fake_upstream) as server:
        assert _health(server.port, _context(certs, client_cert=False))["status"] == "OK"
