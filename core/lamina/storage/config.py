"""Store configs, field for field Llama Stack's: the KV stores (``SqliteKVStoreConfig``,
``PostgresKVStoreConfig``) and the SQL stores (``SqliteSqlStoreConfig``, ``PostgresSqlStoreConfig``).

A SQL store (stored chat completions, files metadata, stored responses, jobs) subclasses the two SQL
configs only to give ``table_name`` its own default, and validates its run-config section with
``sql_store_config``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TABLE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")  # room for index-name suffixes within 63


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


# -- SQL stores --------------------------------------------------------------------------------


class _SqlStoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table_name: str  # each store's subclass gives it a default

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE_IDENTIFIER.match(value):
            raise ValueError("must be a plain SQL identifier (letters, digits, underscores; at most 48)")
        return value


class SqliteSqlStoreConfig(_SqlStoreConfig):
    type: Literal["sqlite"] = "sqlite"
    db_path: str | None = Field(
        default=None, description="SQLite file (created if missing); default: a file in the state dir."
    )


class PostgresSqlStoreConfig(_SqlStoreConfig):
    type: Literal["postgres"] = "postgres"
    host: str = "localhost"
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = "llamastack"
    user: str
    password: str | None = None
    ssl_mode: str | None = Field(default=None, description="libpq sslmode: disable, require, ...")
    ca_cert_path: str | None = None
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=5, ge=1)


S = TypeVar("S", bound=SqliteSqlStoreConfig)
P = TypeVar("P", bound=PostgresSqlStoreConfig)


def sql_store_config(sqlite_class: type[S], postgres_class: type[P], raw: Any, default_db: Path) -> S | P:
    """Validate a SQL store's run-config section (None: SQLite at ``default_db``).

    A known ``type`` is validated by its class directly, so error locations carry no union tag; an
    unknown one by the union, whose message lists the known types. Raises pydantic's ValidationError;
    the caller names the run config file and key.
    """
    if raw is None:
        raw = {"type": "sqlite"}
    elif isinstance(raw, BaseModel):
        raw = raw.model_dump(exclude_unset=True)
    classes: dict[Any, type[S] | type[P]] = {"sqlite": sqlite_class, "postgres": postgres_class}
    kind = raw.get("type") if isinstance(raw, dict) else None
    config_class = classes.get(kind) if isinstance(kind, str) else None
    if config_class is None:
        union = Annotated[sqlite_class | postgres_class, Field(discriminator="type")]
        config = TypeAdapter(union).validate_python(raw)
    else:
        config = config_class.model_validate(raw)
    if isinstance(config, SqliteSqlStoreConfig) and not config.db_path:
        config = config.model_copy(update={"db_path": str(default_db)})
    return config
