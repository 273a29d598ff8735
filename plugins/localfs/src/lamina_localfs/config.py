"""The config of inline::localfs: Llama Stack 0.2.12's ``LocalfsFilesImplConfig`` plus Lamina's limits
(``max_file_size``, and the deployment quotas ``max_total_bytes`` and ``max_files``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.files_store import FilesStoreConfig

DEFAULT_MAX_FILE_SIZE = 512 * 1024 * 1024
DEFAULT_TTL_SECS = 365 * 24 * 60 * 60  # Llama Stack's: one year
DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 * 1024 * 1024
DEFAULT_MAX_FILES = 10_000


class LocalfsFilesImplConfig(BaseModel):
    storage_dir: str | None = Field(
        default=None,
        description="Directory of the uploaded files (created if missing; `~` expanded); "
        "default <state dir>/providers/<provider_id>/files. One server per directory.",
    )
    metadata_store: FilesStoreConfig | None = Field(
        default=None,
        description="SQL store of the file metadata: `type: sqlite` (db_path) or `type: postgres` "
        "(host, port, db, user, password), table `openai_files`; default SQLite "
        "<state dir>/providers/<provider_id>/files_metadata.db.",
    )
    ttl_secs: int | None = Field(
        default=DEFAULT_TTL_SECS,
        gt=0,
        description="Seconds a file is kept when its upload names no expires_after (null: until deleted).",
    )
    max_file_size: int = Field(
        default=DEFAULT_MAX_FILE_SIZE,
        gt=0,
        description="Largest upload in bytes (default 512 MiB); a larger one is refused with 413.",
    )

    max_total_bytes: int | None = Field(
        default=DEFAULT_MAX_TOTAL_BYTES,
        gt=0,
        description="Quota: bytes all stored files may take together (default 8 GiB; null: no limit). "
        "An upload that would go over it is refused with 409; stored files are never removed for it.",
    )
    max_files: int | None = Field(
        default=DEFAULT_MAX_FILES,
        gt=0,
        description="Quota: how many files may be stored (default 10000; null: no limit); one more is "
        "refused with 409.",
    )

    @classmethod
    def sample_run_config(cls, __distro_dir__: str) -> dict[str, Any]:
        return {
            "storage_dir": "${env.FILES_STORAGE_DIR:" + __distro_dir__ + "/files}",
            "metadata_store": {"type": "sqlite", "db_path": __distro_dir__ + "/files_metadata.db"},
        }
