"""The provider config: Llama Stack 0.2.x's ``MetaReferenceAgentsImplConfig``.

``persistence_store`` (a KV store: SQLite or Postgres, ``lamina.storage.config``) keeps agents,
sessions, turns and steps; absent, a SQLite file in the provider's state directory. ``responses_store``
(a SQL store) is accepted, as Llama Stack's run.yaml carries it, for the Responses API; the Agents API
does not use it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lamina.storage.config import KVStoreConfig


class MetaReferenceAgentsImplConfig(BaseModel):
    persistence_store: KVStoreConfig | None = Field(
        default=None,
        description="Where agents, sessions, turns and steps are kept (absent: <state_dir>/agents_store.db).",
    )
    responses_store: dict[str, Any] | None = Field(
        default=None,
        description="The Responses API's SQL store (Llama Stack's field, kept for the Responses facade; "
        "the Agents API does not read it).",
    )

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {
            "persistence_store": {"type": "sqlite", "db_path": f"{distro_dir}/agents_store.db"},
            "responses_store": {"type": "sqlite", "db_path": f"{distro_dir}/responses_store.db"},
        }
