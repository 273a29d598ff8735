"""Auth tests: a real identity provider (lamina.testing.auth_servers) and real ``lamina run`` processes
configured against it, driven by llama-stack-client 0.2.12, the openai SDK and raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lamina.testing.auth_servers import IdentityProvider
from lamina.testing.processes import ServerProcess

UPSTREAM_KEY = "sk-openai-config-secret-0123456789"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider


def auth_run_config(fake: ServerProcess, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "auth",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "fake", "provider_type": "remote::vllm", "config": {"url": f"{fake.url}/v1"}},
                {
                    "provider_id": "oai",
                    "provider_type": "remote::openai",
                    "config": {"api_key": UPSTREAM_KEY, "base_url": f"{fake.url}/v1"},
                },
            ]
        },
        "models": [
            {"model_id": "ok", "provider_id": "fake"},
            {"model_id": "oai-echo", "provider_id": "oai", "provider_model_id": "echo"},
        ],
        "server": {"auth": auth},
    }
