"""The config of inline::localfs (datasetio): Llama Stack 0.2.12's ``LocalFSDatasetIOConfig``.

Llama Stack's one field is ``kvstore`` (where it keeps dataset definitions); here it holds the rows
appended to datasets. Lamina makes it optional: without it the provider keeps a SQLite file,
``localfs_datasetio.db``, in its state directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig, SqliteKVStoreConfig

DEFAULT_DB_NAME = "localfs_datasetio.db"


class LocalFSDatasetIOConfig(BaseModel):
    kvstore: KVStoreConfig | None = Field(
        default=None,
        description="Where appended rows are kept (Llama Stack's field): `type: sqlite` (db_path) or "
        "`type: postgres`. Default: sqlite, localfs_datasetio.db in the provider's state directory.",
    )

    def store_config(self, state_dir: Path) -> SqliteKVStoreConfig | Any:
        if self.kvstore is not None:
            return self.kvstore
        return SqliteKVStoreConfig(db_path=str(Path(state_dir) / DEFAULT_DB_NAME))

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "~/.lamina/local", **kwargs: Any) -> dict[str, Any]:
        return {
            "kvstore": {
                "type": "sqlite",
                "namespace": None,
                "db_path": "${env.SQLITE_STORE_DIR:=" + __distro_dir__ + "}/" + DEFAULT_DB_NAME,
            }
        }
