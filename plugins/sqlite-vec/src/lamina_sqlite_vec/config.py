"""The provider config: Llama Stack 0.2.x's ``SQLiteVectorIOConfig`` plus Lamina's settings.

Llama Stack 0.2.12 has one field, ``db_path`` (required there); here it is optional and defaults to
``sqlite_vec.db`` in the provider's state directory. Later Llama Stack releases added ``kvstore``
(where the OpenAI vector store metadata goes); it is accepted and ignored: vector DB registrations
live in Lamina's registry, and this provider keeps its own bookkeeping in the SQLite file itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lamina.config import not_acted_on

DEFAULT_DB_NAME = "sqlite_vec.db"


class SQLiteVectorIOConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    db_path: str | None = Field(
        default=None,
        description="The SQLite file (created with its directory when missing). Default: "
        f"{DEFAULT_DB_NAME} in the provider's state directory (<state dir>/providers/<provider_id>/).",
    )
    kvstore: dict[str, Any] | None = Field(
        default=None,
        description="Accepted for compatibility with later Llama Stack configs; ignored.",
        json_schema_extra=not_acted_on("vector DB metadata lives in the run config's metadata_store"),
    )
    read_connections: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Queries run at the same time, each on its own thread and SQLite connection (WAL "
        "lets them read while the writer thread writes). Writes all go through one writer thread.",
    )
    busy_timeout_ms: int = Field(
        default=30_000,
        ge=0,
        description="How long a connection waits for a lock held by another process before failing.",
    )

    @classmethod
    def sample_run_config(cls, __distro_dir__: str = "~/.lamina", **kwargs: object) -> dict[str, Any]:
        return {"db_path": "${env.SQLITE_STORE_DIR:=" + __distro_dir__ + "}/sqlite_vec.db"}
