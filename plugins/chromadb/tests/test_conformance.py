"""remote::chromadb through a real `lamina run`, checked by the Vector IO conformance kit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import VectorIOConformance
from lamina.testing.processes import ServerProcess, lamina_server


class TestChromaVectorIO(VectorIOConformance):
    provider_id = "chromadb"

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(
        cls, chroma_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        config = {
            "version": 2,
            "image_name": "conformance-chromadb",
            "providers": {
                "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
                "vector_io": [
                    {
                        "provider_id": "chromadb",
                        "provider_type": "remote::chromadb",
                        "config": {"url": chroma_server.url},
                    }
                ],
            },
        }
        with lamina_server(config, tmp_path_factory.mktemp("lamina-chromadb")) as server:
            yield server
