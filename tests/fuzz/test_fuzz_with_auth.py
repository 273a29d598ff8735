"""Schemathesis with authentication on: every operation of a real ``lamina run`` with ``oauth2_token``
auth and ``server.quota`` (limits high enough never to refuse), each case sent with a valid token
(tokens from lamina.testing.auth_servers' JWKS). No 5xx, and every answer matches its declared status,
content type and schema: a 401 (not a declared answer) would fail the status check, so the token is
accepted on every route. Smaller than test_fuzz_openapi.py (inference on the fake upstream, files, no
local model; a fixed seed, few examples, no coverage phase) to keep its CI cost small.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from lamina.testing.auth_servers import AUDIENCE, ISSUER, IdentityProvider
from lamina.testing.processes import ServerProcess, lamina_server

from .test_fuzz_openapi import CHECKS, SEED, run_fuzz

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 3


@pytest.fixture(scope="module")
def authed(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[dict[str, Any]]:
    work: Path = tmp_path_factory.mktemp("fuzz-auth")
    with IdentityProvider() as idp:
        config = {
            "version": 2,
            "image_name": "fuzz-auth",
            "providers": {
                "inference": [
                    {
                        "provider_id": "fake",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake_upstream.url}/v1", "timeout": 20},
                    }
                ],
                "files": [{"provider_id": "localfs", "provider_type": "inline::localfs", "config": {}}],
            },
            "models": [{"model_id": "ok", "provider_id": "fake"}],
            "server": {
                "auth": {
                    "provider_type": "oauth2_token",
                    "config": {"jwks": {"uri": f"{idp.url}/jwks"}, "issuer": ISSUER, "audience": AUDIENCE},
                },
                "quota": {
                    "kvstore": {"type": "sqlite", "db_path": str(work / "quota.db")},
                    "authenticated_max_requests": 1_000_000,
                    "period": "hour",
                    "max_concurrent_requests": 64,
                    "token_budgets": {"*": 100_000_000},
                },
            },
        }
        with lamina_server(config, work) as server:
            yield {"server": server, "token": idp.token(sub="fuzzer", exp=2**31 - 1)}


def _config(url: str, token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            "headers": {"Authorization": f"Bearer {token}"},
            "workers": 2,
            "request-timeout": 60,
            "continue-on-failure": True,
            "suppress-health-check": ["filter_too_much"],
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def test_every_operation_survives_fuzzing_with_a_token(authed: dict[str, Any]) -> None:
    server: ServerProcess = authed["server"]
    headers = {"Authorization": f"Bearer {authed['token']}"}
    document = httpx.get(f"{server.url}/openapi.json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(document, config=_config(server.url, authed["token"]))
    operations = {op.ok().label for op in schema.get_all_operations()}
    tested, problems = run_fuzz(schema)
    assert not problems, "\n".join(problems)
    assert len(operations) >= 30
    assert sorted(operations - tested) == []
    # Without the token every fuzzed route is closed; health stays open.
    assert httpx.get(f"{server.url}/v1/openai/v1/files", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/v1/health", timeout=10).json()["status"] == "OK"
