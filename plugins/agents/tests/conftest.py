"""Shared by the agents end-to-end tests: a run config around the fake upstream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.testing.processes import ServerProcess


def run_config(fake: ServerProcess, db: Path | dict[str, Any]) -> dict[str, Any]:
    """``db``: a SQLite file, or a whole ``persistence_store`` config (postgres)."""
    store = db if isinstance(db, dict) else {"type": "sqlite", "db_path": str(db)}
    return {
        "version": 2,
        "image_name": "agents-e2e",
        "providers": {
            "inference": [
                {
                    "provider_id": "fake",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake.url}/v1", "timeout": 30.0, "max_tokens": 16},
                }
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss", "config": {}}],
            "tool_runtime": [{"provider_id": "rag", "provider_type": "inline::rag-runtime", "config": {}}],
            "safety": [{"provider_id": "rules", "provider_type": "inline::rules", "config": {}}],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": store},
                }
            ],
        },
        "models": [
            *(
                {"model_id": f"fake/{m}", "provider_id": "fake", "provider_model_id": m}
                for m in ("ok", "slow", "error500", "echo", "toolcap", "twocalls")
            ),
            {
                "model_id": "fake/embed",
                "provider_id": "fake",
                "provider_model_id": "embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "shields": [{"shield_id": "pii", "provider_id": "rules"}],
    }


@pytest.fixture(scope="session")
def agents_run_config() -> Callable[[ServerProcess, Path], dict[str, Any]]:
    return run_config
