"""Hook implementation: the inline::localfs files provider. Imports nothing heavy."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

_PKG = "lamina_localfs"


@hookimpl
def lamina_files_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.files,
            provider_type="inline::localfs",
            config_class=f"{_PKG}.config:LocalfsFilesImplConfig",
            factory=f"{_PKG}.provider:create_provider",
            description=(
                "OpenAI Files on local disk (uploads streamed to a temporary file, then renamed), "
                "metadata in SQLite or PostgreSQL."
            ),
        )
    ]
