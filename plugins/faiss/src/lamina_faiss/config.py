"""The provider config: Llama Stack 0.2.x's ``FaissVectorIOConfig`` plus Lamina's index settings.

Llama Stack's only field is ``kvstore`` (a sqlite or postgres store config, as in its templates:
``kvstore: {type: sqlite, namespace: null, db_path: .../faiss_store.db}``), so every run.yaml written
for it validates here. Lamina makes it optional: without it the provider keeps a SQLite file,
``faiss_store.db``, in its state directory. The other fields are Lamina's and all have defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig, SqliteKVStoreConfig

DEFAULT_DB_NAME = "faiss_store.db"


class FaissVectorIOConfig(BaseModel):
    kvstore: KVStoreConfig | None = Field(
        default=None,
        description="Where chunks live (Llama Stack's field). sqlite: that file holds chunks, embeddings and "
        "the keyword index. postgres: chunks are written there first and a SQLite file in the state "
        "directory is rebuilt from it when missing or behind. Default: sqlite, faiss_store.db in the "
        "provider's state directory.",
    )
    index: Literal["hnsw", "flat"] = Field(
        default="hnsw",
        description="hnsw: approximate, sub-millisecond at 100k chunks; deletes leave tombstones that a "
        "background rebuild clears. flat: exact, linear in the number of chunks (about 7 ms at 100k); "
        "deletes remove at once. Changing it rebuilds existing indexes from the stored chunks on start-up.",
    )
    hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW neighbours per node (M).")
    ef_construction: int = Field(
        default=80, ge=8, le=2048, description="HNSW candidate list while inserting (efConstruction)."
    )
    ef_search: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="HNSW candidate list while searching (efSearch); a query for more chunks uses that many.",
    )
    index_save_interval: float = Field(
        default=10.0,
        ge=0.0,
        le=3600.0,
        description="Seconds between a change and the index file being rewritten (changes in between are "
        "saved together). Chunks are committed to storage before an insert returns, so an index file "
        "that is behind is only caught up from them on start-up; 0 saves after every change.",
    )
    tombstone_rebuild_ratio: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="HNSW: rebuild an index in the background once this fraction of its entries are "
        "deleted or replaced chunks.",
    )

    def sqlite_path(self, state_dir: Path) -> Path:
        """The SQLite file holding chunks: the kvstore's when it is sqlite, else one in ``state_dir``."""
        if isinstance(self.kvstore, SqliteKVStoreConfig):
            return Path(self.kvstore.db_path).expanduser()
        return Path(state_dir) / DEFAULT_DB_NAME

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "~/.lamina/local", **kwargs: Any) -> dict[str, Any]:
        return {
            "kvstore": {
                "type": "sqlite",
                "namespace": None,
                "db_path": "${env.SQLITE_STORE_DIR:=" + __distro_dir__ + "}/" + DEFAULT_DB_NAME,
            }
        }
