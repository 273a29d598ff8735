"""inline::rules through a real ``lamina run``, driven by llama-stack-client and the OpenAI SDK.

No model and no other server: the provider is pure rules, so the run config is just the safety
provider and its shields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"

RUN_CONFIG: dict[str, Any] = {
    "version": 2,
    "image_name": "rules-e2e",
    "apis": ["safety"],
    "providers": {
        "safety": [
            {
                "provider_id": "rules",
                "provider_type": "inline::rules",
                "config": {
                    "rule_sets": {
                        "support": {
                            "rules": [
                                {
                                    "name": "competitors",
                                    "keywords": ["Globex"],
                                    "violation_level": "warn",
                                    "category": "competition",
                                }
                            ]
                        }
                    },
                    "max_chars": 5000,
                },
            }
        ]
    },
    "shields": [
        {"shield_id": "pii", "provider_id": "rules"},
        {"shield_id": "support-input", "provider_id": "rules", "provider_shield_id": "support"},
    ],
}


def ls(server: ServerProcess) -> LlamaStackClient:
    return LlamaStackClient(base_url=server.url, max_retries=0, timeout=30)


def detail(exc: llama_stack_client.APIStatusError) -> str:
    assert isinstance(exc.body, dict), exc.body
    return exc.body["detail"]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


@pytest.fixture
def server(start_lamina: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    return start_lamina(RUN_CONFIG, work_dir=tmp_path / "run")


def test_run_config_shields_and_a_shield_registered_at_run_time(
    server: ServerProcess, start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    client = ls(server)
    assert {s.identifier for s in client.shields.list()} == {"pii", "support-input"}

    # configured rule sets
    assert (
        client.safety.run_shield(shield_id="pii", messages=[user("Hello there!")], params={}).violation
        is None
    )
    response = client.safety.run_shield(
        shield_id="support-input", messages=[user("Is Globex cheaper?")], params={}
    )
    assert response.violation.violation_level == "warn"
    assert response.violation.metadata["violation_type"] == "rule:competitors"

    # a rule shield registered at run time with its rules in params: no restart
    shield = client.shields.register(
        shield_id="no-internal-hosts",
        provider_id="rules",
        params={
            "rules": [{"name": "internal-hosts", "pattern": r"\b[a-z0-9-]+\.corp\.example\.com\b"}],
            "pii": ["email"],
            "user_message": "Please keep internal details out of chat.",
        },
    )
    assert shield.identifier == "no-internal-hosts"
    safe = client.safety.run_shield(
        shield_id="no-internal-hosts", messages=[user("What is the weather in Paris?")], params={}
    )
    assert safe.violation is None
    text = f"ssh to build-7.corp.example.com then mail {EMAIL}"
    unsafe = client.safety.run_shield(shield_id="no-internal-hosts", messages=[user(text)], params={})
    violation = unsafe.violation
    assert violation.violation_level == "error"
    assert violation.user_message == "Please keep internal details out of chat."
    assert violation.metadata["violation_type"] == "pii:email;rule:internal-hosts"
    assert violation.metadata["categories"] == ["custom", "pii", "pii/email"]
    spans = sorted(text[m["start"] : m["end"]] for m in violation.metadata["matches"])
    assert spans == ["build-7.corp.example.com", EMAIL]
    assert EMAIL not in json.dumps(violation.metadata)
    assert "corp.example.com" not in json.dumps(violation.metadata)

    # a call's params narrow the shield
    narrowed = client.safety.run_shield(
        shield_id="no-internal-hosts", messages=[user(text)], params={"pii": []}
    )
    assert narrowed.violation.metadata["violation_type"] == "rule:internal-hosts"

    # the runtime shield survives a restart: the core hands it to the provider again
    server.stop()
    again = start_lamina(RUN_CONFIG, work_dir=tmp_path / "run", name="restarted")
    after = ls(again).safety.run_shield(shield_id="no-internal-hosts", messages=[user(text)], params={})
    assert after.violation.metadata["violation_type"] == "pii:email;rule:internal-hosts"


def test_bad_shields_and_inputs_are_400s(server: ServerProcess) -> None:
    client = ls(server)
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.shields.register(
            shield_id="broken",
            provider_id="rules",
            params={"rules": [{"name": "oops", "pattern": "(unclosed"}]},
        )
    assert "rule 'oops'" in detail(info.value) and "does not compile" in detail(info.value)
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.shields.register(shield_id="nothing", provider_id="rules")
    assert "provider_shield_id 'nothing'" in detail(info.value) and "pii, support" in detail(info.value)
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.safety.run_shield(shield_id="pii", messages=[user("x" * 6000)], params={})
    assert "max_chars" in detail(info.value)
    with pytest.raises(llama_stack_client.BadRequestError) as info:
        client.safety.run_shield(shield_id="pii", messages=[user("hi")], params={"pii": ["ip_address"]})
    assert "'ip_address' not in shield 'pii'" in detail(info.value)


def test_openai_moderations(server: ServerProcess) -> None:
    client = OpenAI(base_url=server.url + "/v1/openai/v1", api_key="x", max_retries=0, timeout=30)
    moderation = client.moderations.create(
        model="pii", input=["Nice to meet you.", f"My card is {CARD}, email {EMAIL}"]
    )
    assert moderation.model == "pii"
    safe, flagged = moderation.results
    assert safe.flagged is False
    assert not any(safe.categories.model_dump(by_alias=True).values())
    assert flagged.flagged is True
    categories = flagged.categories.model_dump(by_alias=True)
    assert (
        categories["pii"] is True
        and categories["pii/credit_card"] is True
        and categories["pii/email"] is True
    )
    assert categories["harassment"] is False and categories["self-harm"] is False
    assert flagged.category_scores.model_dump(by_alias=True)["pii/email"] == 1.0
    # a rule's own category
    warn = client.moderations.create(model="support-input", input="Globex is great").results[0]
    assert warn.flagged is True
    assert warn.categories.model_dump(by_alias=True)["competition"] is True
