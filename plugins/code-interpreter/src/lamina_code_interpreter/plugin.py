"""Hook implementations: the inline::code-interpreter provider and its default tool group.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

PROVIDER_TYPE = "inline::code-interpreter"
TOOL_GROUP = "builtin::code_interpreter"


@hookimpl
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_code_interpreter.config:CodeInterpreterToolConfig",
            factory="lamina_code_interpreter.provider:create_provider",
            description=(
                "The code interpreter (builtin::code_interpreter, tool code_interpreter): Python run in a "
                "bubblewrap sandbox without network or the server's files, under CPU, wall-time, memory, "
                "process and output limits."
            ),
        )
    ]


@hookimpl
def lamina_tool_groups() -> list[DefaultResource]:
    return [DefaultResource(type=ResourceType.tool_group, provider_type=PROVIDER_TYPE, identifier=TOOL_GROUP)]
