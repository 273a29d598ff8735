"""``jobs.executor_config`` of the ray executor: a bad setting fails start-up naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.config import RunConfig
from lamina.errors import ConfigError
from lamina.plugins import load_plugin_manager
from lamina.stack import Stack
from lamina_ray.config import parse_config


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({}, "address: required: the Ray cluster's address (host:port of `ray start --head`) or 'auto'"),
        ({"address": "  "}, "address: give the cluster's address"),
        ({"address": "auto", "num_actors": 0}, "num_actors: Input should be greater than or equal to 1"),
        ({"address": "auto", "max_in_flight": "many"}, "max_in_flight: Input should be a valid integer"),
        ({"address": "auto", "actors": 3}, "actors: unknown setting; the ray executor takes address, "),
    ],
)
def test_bad_settings_name_the_field(config: dict, text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_config(config)
    assert text in str(info.value)


def test_defaults() -> None:
    settings = parse_config({"address": "auto"})
    chosen = (settings.num_actors, settings.max_in_flight, settings.max_attempts, settings.apis)
    assert chosen == (2, 16, 3, None)


async def test_a_run_config_with_a_bad_ray_setting_fails_start_up_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path))
    config = RunConfig.model_validate(
        {"providers": {}, "jobs": {"executor": "ray", "executor_config": {"num_actors": 2}}}
    )
    stack = Stack.build(config, load_plugin_manager())  # the executor name is known: lamina-ray offers it
    with pytest.raises(ConfigError, match=r"jobs.executor_config: address: required"):
        await stack.start()
    await stack.shutdown()
