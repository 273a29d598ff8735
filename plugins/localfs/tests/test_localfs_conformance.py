"""inline::localfs passes the Files conformance kit (metadata in SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.testing.conformance import FilesConformance
from lamina.testing.processes import ServerProcess, lamina_server


class TestLocalfsKit(FilesConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        work = tmp_path_factory.mktemp("localfs-kit")
        config = {
            "version": 2,
            "image_name": "localfs-kit",
            "providers": {
                "files": [
                    {
                        "provider_id": "localfs",
                        "provider_type": "inline::localfs",
                        "config": {
                            "storage_dir": str(work / "files"),
                            "metadata_store": {"type": "sqlite", "db_path": str(work / "files.db")},
                        },
                    }
                ]
            },
        }
        with lamina_server(config, work) as server:
            yield server
