"""The config against Llama Stack 0.2.x's FaissVectorIOConfig, and the plugin's hook."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lamina.envsubst import substitute_env
from lamina.plugins import load_plugin_manager
from lamina.specs import Api, import_object
from lamina.storage.config import PostgresKVStoreConfig, SqliteKVStoreConfig
from lamina_faiss.config import FaissVectorIOConfig


def test_the_plugin_offers_inline_faiss() -> None:
    spec = load_plugin_manager().provider_specs(Api.vector_io)["inline::faiss"]
    assert import_object(spec.config_class) is FaissVectorIOConfig
    assert callable(import_object(spec.factory))


def test_llama_stack_template_configs_validate(tmp_path: Path) -> None:
    # providers.vector_io[0].config of Llama Stack 0.2.12's templates (together, fireworks, tgi, ...)
    raw = {
        "kvstore": {
            "type": "sqlite",
            "namespace": None,
            "db_path": "${env.SQLITE_STORE_DIR:~/.llama/distributions/together}/faiss_store.db",
        }
    }
    config = FaissVectorIOConfig.model_validate(substitute_env(raw, {"SQLITE_STORE_DIR": str(tmp_path)}, "t"))
    assert isinstance(config.kvstore, SqliteKVStoreConfig)
    assert config.sqlite_path(tmp_path / "state") == tmp_path / "faiss_store.db"
    config = FaissVectorIOConfig.model_validate(substitute_env(raw, {}, "t"))
    assert config.sqlite_path(tmp_path) == Path("~/.llama/distributions/together/faiss_store.db").expanduser()
    postgres = FaissVectorIOConfig.model_validate(
        {"kvstore": {"type": "postgres", "host": "db", "user": "llama", "password": "x", "namespace": "v"}}
    )
    assert isinstance(postgres.kvstore, PostgresKVStoreConfig)


def test_defaults(tmp_path: Path) -> None:
    config = FaissVectorIOConfig.model_validate({})
    assert config.kvstore is None and config.sqlite_path(tmp_path) == tmp_path / "faiss_store.db"
    assert (config.index, config.hnsw_m, config.ef_construction, config.ef_search) == ("hnsw", 32, 80, 64)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"index": "ivf"}, "index"),
        ({"hnsw_m": 1}, "hnsw_m"),
        ({"kvstore": {"type": "redis"}}, "kvstore"),
        ({"kvstore": {"type": "sqlite"}}, "db_path"),
        ({"tombstone_rebuild_ratio": 0}, "tombstone_rebuild_ratio"),
    ],
)
def test_bad_values_name_the_field(raw: dict, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        FaissVectorIOConfig.model_validate(raw)


def test_sample_run_config_reads_sqlite_store_dir(tmp_path: Path) -> None:
    sample = FaissVectorIOConfig.sample_run_config(__distro_dir__="~/.lamina/local")
    assert "${env.SQLITE_STORE_DIR" in sample["kvstore"]["db_path"]
    config = FaissVectorIOConfig.model_validate(
        substitute_env(sample, {"SQLITE_STORE_DIR": str(tmp_path)}, "s")
    )
    assert config.sqlite_path(Path("/elsewhere")) == tmp_path / "faiss_store.db"
