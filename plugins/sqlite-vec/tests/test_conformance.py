"""inline::sqlite-vec through a real ``lamina run``, with the Vector IO conformance kit.

Embeddings come from inline::sentence-transformers (lamina-onnx-embeddings: all-MiniLM-L6-v2, 384
dimensions). The SQLite file is the default one, in the provider's state directory, so the kit's
restart test checks that it is found again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import VectorIOConformance
from lamina.testing.processes import ServerProcess, lamina_server

RUN_CONFIG = {
    "version": 2,
    "image_name": "sqlite-vec-conformance",
    "providers": {
        "inference": [
            {
                "provider_id": "sentence-transformers",
                "provider_type": "inline::sentence-transformers",
                "config": {},
            }
        ],
        "vector_io": [{"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec", "config": {}}],
    },
}


class TestSQLiteVec(VectorIOConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with lamina_server(RUN_CONFIG, tmp_path_factory.mktemp("sqlite-vec")) as server:
            yield server
