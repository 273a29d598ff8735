"""Hook implementations of lamina-test-alpha."""

from __future__ import annotations

import click

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, DistributionSpec, ProviderSpec, ResourceType, RouteSpec

PROVIDER_TYPE = "remote::test-alpha"
DEFAULT_MODEL = "alpha-default"

RUN_CONFIG = """\
version: 2
image_name: alpha-demo
providers:
  inference:
  - provider_id: alpha
    provider_type: remote::test-alpha
    config:
      greeting: ${env.ALPHA_GREETING:=hello}
"""


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_test_alpha.provider:AlphaConfig",
            factory="lamina_test_alpha.provider:create_provider",
            description="Answers every chat with a greeting (test plugin).",
        )
    ]


@hookimpl
def lamina_models() -> list[DefaultResource]:
    return [
        DefaultResource(
            type=ResourceType.model,
            provider_type=PROVIDER_TYPE,
            identifier=DEFAULT_MODEL,
            provider_resource_id="alpha-upstream-1",
            params={"metadata": {"contributed_by": "lamina-test-alpha"}},
        )
    ]


WEB = "lamina_test_alpha.web"


@hookimpl
def lamina_routes() -> list[RouteSpec]:
    return [
        RouteSpec(
            method="GET",
            path="/alpha/ping",
            handler="lamina_test_alpha.web:ping",
            description="Answers {'pong': 'alpha'}.",
        ),
        RouteSpec(method="POST", path="/alpha/notes", handler="lamina_test_alpha.web:create_note"),
        RouteSpec(method="GET", path="/alpha/notes", handler="lamina_test_alpha.web:list_notes"),
        RouteSpec(method="GET", path="/alpha/notes/{note_id}", handler="lamina_test_alpha.web:get_note"),
        RouteSpec(method="GET", path="/alpha/admin", handler=f"{WEB}:admin_status", access="admin"),
        RouteSpec(method="POST", path="/alpha/hook/{name}", handler=f"{WEB}:webhook", access="open"),
    ]


@click.command("alpha-hello")
@click.option("--name", default="world")
def alpha_hello(name: str) -> None:
    """Say hello (a command added by lamina-test-alpha)."""
    click.echo(f"alpha says hello to {name}")


@hookimpl
def lamina_cli_commands() -> list:
    return [alpha_hello]


@hookimpl
def lamina_distributions() -> list[DistributionSpec]:
    return [
        DistributionSpec(name="alpha-demo", description="One test-alpha provider.", run_config=RUN_CONFIG)
    ]
