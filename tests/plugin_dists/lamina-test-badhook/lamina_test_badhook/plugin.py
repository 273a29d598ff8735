"""Implements ``lamina_model`` (the hook is ``lamina_models``) beside a correct hook."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="remote::test-badhook",
            config_class="lamina_test_badhook.plugin:ProviderSpec",
            factory="lamina_test_badhook.plugin:ProviderSpec",
        )
    ]


@hookimpl
def lamina_model() -> list[DefaultResource]:
    return [
        DefaultResource(type=ResourceType.model, provider_type="remote::test-badhook", identifier="badhook")
    ]
