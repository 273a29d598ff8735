"""The provider config: Llama Stack 0.2.x's ``MetaReferenceAgentsImplConfig``.

``persistence_store`` (a KV store: SQLite or Postgres, ``lamina.storage.config``) keeps agents,
sessions, turns and steps; absent, a SQLite file in the provider's state directory. ``responses_store``
(a SQL store, read by ``lamina.storage.responses_store.responses_store_config``) keeps the Responses
API's responses (``lamina_agents.responses_facade``); absent, ``responses_store.db`` in the provider's
state directory.
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
        description="Where the Responses API keeps responses: SQL, sqlite (db_path) or postgres "
        "(absent: <state_dir>/responses_store.db).",
    )

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {
            "persistence_store": {"type": "sqlite", "db_path": f"{distro_dir}/agents_store.db"},
            "responses_store": {"type": "sqlite", "db_path": f"{distro_dir}/responses_store.db"},
        }
