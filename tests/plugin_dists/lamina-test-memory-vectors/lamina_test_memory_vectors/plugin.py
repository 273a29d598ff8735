"""Offers ``inline::test-memory-vectors``: a tiny Vector IO provider proving the conformance kit."""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec


@hookimpl
def lamina_vector_io_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type="inline::test-memory-vectors",
            config_class="lamina_test_memory_vectors.provider:Config",
            factory="lamina_test_memory_vectors.provider:create_provider",
            api_dependencies=[Api.inference],
            description="Chunks in memory, saved to a JSON file per vector DB (tests only).",
        )
    ]
