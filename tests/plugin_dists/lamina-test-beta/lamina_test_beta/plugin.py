"""Hook implementations of lamina-test-beta."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, MiddlewareSpec, ProviderSpec, ResourceType, ResourceVeto

PROVIDER_TYPE = "inline::test-beta"


@hookimpl
def lamina_safety_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_test_beta.web:BetaConfig",
            factory="lamina_test_beta.web:create_provider",
            description="A safety provider that allows everything (test plugin).",
        )
    ]


@hookimpl
def lamina_shields() -> list[DefaultResource]:
    return [DefaultResource(type=ResourceType.shield, provider_type=PROVIDER_TYPE, identifier="beta-shield")]


@hookimpl
def lamina_validate_resource(resource_type: str, resource: dict) -> ResourceVeto | None:
    if resource_type == "model" and resource["identifier"].startswith("forbidden-"):
        return ResourceVeto(reason="model ids starting with 'forbidden-' are refused by lamina-test-beta")
    return None


@hookimpl
def lamina_middlewares() -> list[MiddlewareSpec]:
    return [MiddlewareSpec(name="beta-header", middleware="lamina_test_beta.web:add_header")]
