"""The run config's ``jobs:`` section: defaults for every existing run.yaml, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.config import parse_run_config
from lamina.errors import ConfigError
from lamina.plugins import PluginManager
from lamina.stack import Stack


def config(tmp_path: Path, **extra: object):
    doc = {
        "version": 2,
        "providers": {},
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        **extra,
    }
    return parse_run_config(doc, source="run.yaml", env={})


def test_a_run_config_without_jobs_gets_the_defaults(tmp_path: Path) -> None:
    jobs = config(tmp_path).jobs
    assert (jobs.store, jobs.max_concurrent, jobs.executor, jobs.lease_seconds) == (None, 4, "inline", 15.0)
    assert config(tmp_path, jobs=None).jobs == jobs  # `jobs:` with nothing under it


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_concurrent": 0}, "run.yaml: jobs.max_concurrent: "),
        ({"lease_seconds": -1}, "run.yaml: jobs.lease_seconds: "),
        ({"executor_config": "fast"}, "run.yaml: jobs.executor_config: "),
    ],
)
def test_a_bad_jobs_setting_names_its_key(tmp_path: Path, section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, jobs=section)
    assert str(info.value).startswith(message), info.value


async def test_the_store_defaults_to_sqlite_in_the_state_dir_and_a_bad_store_names_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    pm = PluginManager(strict=True, allow=(), deny=(), trace=False)
    stack = Stack.build(config(tmp_path), pm)
    await stack.start()
    try:
        assert stack.jobs is not None
        assert stack.jobs.store.where == f"sqlite jobs store {tmp_path / 'home' / 'lamina' / 'jobs.db'}"
    finally:
        await stack.shutdown()
    assert stack.jobs is None
    bad = Stack.build(config(tmp_path, jobs={"store": {"type": "mysql"}}), pm)
    with pytest.raises(ConfigError, match=r"^run.yaml: jobs.store: ") as info:
        await bad.start()
    assert "'sqlite', 'postgres'" in str(info.value), "the message lists the store types"
    await bad.shutdown()
    with pytest.raises(ConfigError, match=r"jobs\.executor: no installed plugin offers job executor 'ray'"):
        Stack.build(config(tmp_path, jobs={"executor": "ray"}), pm)
