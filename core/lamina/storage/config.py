"""Store configs, field for field Llama Stack's ``SqliteKVStoreConfig`` and ``PostgresKVStoreConfig``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class _StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(default=None, description="Prefix for every key, to share one store.")


class SqliteKVStoreConfig(_StoreConfig):
    type: Literal["sqlite"] = "sqlite"
    db_path: str = Field(description="Path of the SQLite database file (created if missing).")


class PostgresKVStoreConfig(_StoreConfig):
    type: Literal["postgres"] = "postgres"
    host: str = "localhost"
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = "llamastack"
    user: str
    password: str | None = None
    table_name: str = "llamastack_kvstore"
    ssl_mode: str | None = Field(
        default=None, description="libpq sslmode: disable, require, verify-full, ..."
    )
    ca_cert_path: str | None = None
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain SQL identifier (letters, digits, underscores; at most 63)")
        return value


KVStoreConfig = Annotated[SqliteKVStoreConfig | PostgresKVStoreConfig, Field(discriminator="type")]
