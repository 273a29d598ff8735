"""The config of remote::huggingface (datasetio): Llama Stack 0.2.12's ``HuggingfaceDatasetIOConfig``.

Llama Stack's one field is ``kvstore``; here it holds the rows appended to datasets (Llama Stack pushes
them to the hub instead, which needs credentials and a network). Without it the provider keeps a
SQLite file, ``huggingface_datasetio.db``, in its state directory. The library's cache (the Arrow files
that pages are sliced from) is ``<state dir>/hf-cache``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig, SqliteKVStoreConfig

DEFAULT_DB_NAME = "huggingface_datasetio.db"


class HuggingfaceDatasetIOConfig(BaseModel):
    kvstore: KVStoreConfig | None = Field(
        default=None,
        description="Where appended rows are kept (Llama Stack's field): `type: sqlite` (db_path) or "
        "`type: postgres`. Default: sqlite, huggingface_datasetio.db in the provider's state directory.",
    )

    def store_config(self, state_dir: Path) -> Any:
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
