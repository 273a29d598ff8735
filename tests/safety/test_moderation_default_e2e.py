"""OpenAI moderations without ``model`` through a real ``lamina run``, driven by the OpenAI SDK.

``client.moderations.create(input=...)`` sends no model. The shield it runs is the run config's
``safety.default_shield_id`` (the name newer Llama Stack releases use), else the first shield under
``shields:``; a 400 naming that setting only when neither exists and several shields are registered.
The provider is inline::rules (pure rules, no model), so each server starts in about a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

EMAIL = "my address is jane.roe@example.com"
GLOBEX = "Is Globex cheaper than you?"

RULES = {
    "provider_id": "rules",
    "provider_type": "inline::rules",
    "config": {
        "rule_sets": {
            "support": {
                "rules": [
                    {"name": "rivals", "keywords": ["Globex"], "violation_level": "warn", "category": "x"}
                ]
            }
        }
    },
}
SHIELDS = [
    {"shield_id": "pii", "provider_id": "rules"},
    {"shield_id": "support-input", "provider_id": "rules", "provider_shield_id": "support"},
]


def run_config(**extra: Any) -> dict[str, Any]:
    return {"version": 2, "image_name": "moderation-default", "providers": {"safety": [RULES]}, **extra}


def openai_client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=30)


def test_without_model_the_first_listed_shield_runs(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_lamina(run_config(shields=SHIELDS), work_dir=tmp_path)
    client = openai_client(server)
    flagged = client.moderations.create(input=EMAIL)
    assert flagged.model == "pii"
    assert flagged.results[0].flagged
    # the pii shield does not know competitors: the default really is the first shield, not a merge
    assert not client.moderations.create(input=GLOBEX).results[0].flagged
    assert client.moderations.create(input=GLOBEX, model="support-input").results[0].flagged


def test_safety_default_shield_id_picks_the_shield(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    config = run_config(shields=SHIELDS, safety={"default_shield_id": "support-input"})
    client = openai_client(start_lamina(config, work_dir=tmp_path))
    out = client.moderations.create(input=[GLOBEX, EMAIL])
    assert out.model == "support-input"
    assert [r.flagged for r in out.results] == [True, False]


def test_without_a_default_the_400_names_the_setting(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Shields registered through the API only: the run config names no default."""
    server = start_lamina(run_config(), work_dir=tmp_path)
    client = openai_client(server)
    for shield in SHIELDS:
        client.post("/shields", body=shield, cast_to=object)
    with pytest.raises(openai.BadRequestError) as info:
        client.moderations.create(input=EMAIL)
    message = str(info.value)
    assert "safety.default_shield_id" in message and "pii" in message and "support-input" in message
    assert client.moderations.create(input=EMAIL, model="pii").results[0].flagged


def test_an_unknown_default_shield_fails_start_up_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_config(shields=SHIELDS, safety={"default_shield_id": "piii"})))
    out = subprocess.run(
        [sys.executable, "-m", "lamina.cli", "run", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAMINA_HOME": str(tmp_path / "home")},
    )
    assert out.returncode != 0
    assert "safety.default_shield_id: 'piii' is not a registered shield" in out.stderr
    assert "pii, support-input" in out.stderr and "Traceback" not in out.stderr
