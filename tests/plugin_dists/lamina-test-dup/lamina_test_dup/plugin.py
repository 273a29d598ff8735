"""Offers a provider type another installed distribution (lamina-openai-compat) offers too."""

from __future__ import annotations

from pydantic import BaseModel

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec


class DupConfig(BaseModel):
    url: str = "http://localhost:8000/v1"


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::vllm",
            config_class="lamina_test_dup.plugin:DupConfig",
            factory="lamina_test_dup.plugin:create_provider",
            description="A second remote::vllm (test plugin).",
        )
    ]


async def create_provider(config: DupConfig, deps: dict, context: object) -> object:
    raise RuntimeError("never started: the duplicate provider type stops the stack before")
