"""The provider config: Llama Stack 0.2.x's ``PGVectorVectorIOConfig`` plus Lamina's settings.

Llama Stack 0.2.12's fields (``host``, ``port``, ``db``, ``user``, ``password``) keep their names,
types and defaults, so a run.yaml written for it validates unchanged. Later Llama Stack releases
added ``kvstore`` (where they keep vector DB metadata); it is accepted and ignored: Lamina keeps
vector DB metadata in the core's metadata store and the chunks in PostgreSQL. Other unknown keys
are kept and logged as ignored by the stack.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lamina.config import not_acted_on


class PGVectorVectorIOConfig(BaseModel):
    # Env substitution turns "5432" into 5432 and a numeric password into a number; take them back.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    host: str = Field(
        default="localhost", description="The PostgreSQL server's host (or a socket directory)."
    )
    port: int = Field(default=5432, ge=1, le=65535)
    db: str = Field(default="postgres", description="The database; the pgvector extension is created in it.")
    user: str = Field(default="postgres")
    password: SecretStr | None = Field(default=SecretStr("mysecretpassword"))
    kvstore: dict[str, Any] | None = Field(
        default=None,
        description="Accepted for compatibility with newer Llama Stack run configs; ignored.",
        json_schema_extra=not_acted_on("vector DB metadata lives in the run config's metadata_store"),
    )
    # -- Lamina's settings -------------------------------------------------------------------------
    ssl_mode: str | None = Field(
        default=None, description="libpq sslmode: disable, require, verify-full, ..."
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections kept open.")
    pool_max_size: int = Field(default=10, ge=1, description="At most this many connections.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    command_timeout: float = Field(default=300.0, gt=0, description="Seconds a statement may take.")
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW index build parameter m.")
    hnsw_ef_construction: int = Field(default=64, ge=4, le=1000, description="HNSW ef_construction.")
    hnsw_ef_search: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="hnsw.ef_search for a query (raised to 2*k for larger k, at most 1000): recall vs speed.",
    )
    insert_batch_size: int = Field(default=1000, ge=1, le=10_000, description="Rows per upsert statement.")
    bulk_insert_min_chunks: int = Field(
        default=1000,
        ge=1,
        description="An insert of at least this many chunks into a vector DB holding at most twice as many "
        "rebuilds the HNSW index after loading (in its transaction) instead of growing it row by row: "
        "several times faster, but queries of that vector DB wait until the insert commits.",
    )
    index_build_memory: str = Field(
        default="256MB",
        pattern=r"^[0-9]+ ?(kB|MB|GB)$",
        description="maintenance_work_mem while (re)building an HNSW index (a graph that does not fit in it "
        "builds slowly).",
    )

    def password_value(self) -> str | None:
        return self.password.get_secret_value() if self.password is not None else None

    def where(self) -> str:
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.db}"

    @classmethod
    def from_dsn(cls, dsn: str, **overrides: Any) -> PGVectorVectorIOConfig:
        """A config from a ``postgresql://user:password@host:port/db`` URI (tests, benchmarks)."""
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a PostgreSQL URI: {dsn!r}")
        values: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 5432,
            "db": unquote(parts.path.lstrip("/")) or "postgres",
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password) if parts.password is not None else None,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def sample_run_config(
        cls,
        host: str = "${env.PGVECTOR_HOST:localhost}",
        port: int | str = "${env.PGVECTOR_PORT:5432}",
        db: str = "${env.PGVECTOR_DB}",
        user: str = "${env.PGVECTOR_USER}",
        password: str = "${env.PGVECTOR_PASSWORD}",
        **kwargs: Any,
    ) -> dict[str, Any]:
        return {"host": host, "port": port, "db": db, "user": user, "password": password}
