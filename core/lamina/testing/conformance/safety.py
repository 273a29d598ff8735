"""The Safety conformance kit.

Subclass ``SafetyConformance`` in a test module (its name must start with ``Test``), say which
shield to register and which texts it must pass and flag, and provide one fixture,
``conformance_lamina``: a run config whose ``safety`` providers include yours (and whatever it depends on), as
``run_config``, or a class-scoped ``conformance_lamina`` fixture yielding a started ``lamina run``
(``lamina.testing.conformance.base``). Every test must pass::

    from lamina.testing.conformance import SafetyConformance

    RUN_CONFIG = {"version": 2, "providers": {"safety": [
        {"provider_id": "acme", "provider_type": "remote::acme-guard", "config": {...}}]}}

    class TestAcmeGuard(SafetyConformance):
        shield = {"provider_id": "acme", "provider_shield_id": "acme-guard-v2"}
        safe_text = "What is the capital of France?"
        unsafe_text = "..."  # a text the shield must flag (warn or error)
        run_config = RUN_CONFIG

The kit registers shields of its own (ids start with ``conformance/``) through llama-stack-client,
runs them through ``POST /v1/safety/run-shield`` and the OpenAI SDK's moderations, and checks the
contract of ``lamina.apis.safety.SafetyProvider``: verdicts, violation metadata (a
``violation_type``, moderation ``categories``, never the offending text), OpenAI's moderation shape,
4xx answers for bad input, unregistering, and shields surviving a restart (``restart_lamina``: by
default ``ServerProcess.restart()``, which fails unless a new process replaced the old one).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import httpx
import pytest
from llama_stack_client import LlamaStackClient, NotFoundError
from openai import OpenAI

from lamina.apis.safety import OPENAI_MODERATION_CATEGORIES
from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess

LEVELS = ("info", "warn", "error")


@pytest.mark.e2e
class SafetyConformance(ConformanceKit):
    shield: ClassVar[dict[str, Any]] = {}  # register_shield fields besides shield_id
    safe_text: ClassVar[str] = "What is the capital of France?"
    unsafe_text: ClassVar[str] = ""  # must be flagged with level warn or error

    client_timeout: ClassVar[float] = 300.0  # a guard model on a CPU can be slow

    # -- clients and helpers -------------------------------------------------------------------

    @pytest.fixture
    def oa(self, conformance_lamina: ServerProcess) -> OpenAI:
        return OpenAI(
            base_url=f"{conformance_lamina.url}/v1",
            api_key="none",
            max_retries=0,
            timeout=self.client_timeout,
        )

    @classmethod
    def register(cls, ls: LlamaStackClient, name: str) -> str:
        shield_id = f"conformance/{name}-{uuid.uuid4().hex[:8]}"
        ls.shields.register(shield_id=shield_id, **cls.shield)
        return shield_id

    @staticmethod
    def run(ls: LlamaStackClient, shield_id: str, text: str) -> Any:
        messages = [{"role": "user", "content": text}]
        return ls.safety.run_shield(shield_id=shield_id, messages=messages, params={})

    @pytest.fixture(scope="class")
    @classmethod
    def shield_id(cls, conformance_lamina: ServerProcess) -> str:
        client = LlamaStackClient(base_url=conformance_lamina.url, max_retries=0, timeout=cls.client_timeout)
        return cls.register(client, "main")

    # -- the Shields API -----------------------------------------------------------------------

    def test_registered_shield_is_listed_and_got(self, ls: LlamaStackClient, shield_id: str) -> None:
        shield = ls.shields.retrieve(shield_id)
        assert shield.identifier == shield_id and shield.type == "shield"
        if "provider_id" in self.shield:
            assert shield.provider_id == self.shield["provider_id"]
        expected = self.shield.get("provider_shield_id") or shield_id
        assert shield.provider_resource_id == expected
        assert shield_id in [s.identifier for s in ls.shields.list()]

    def test_registering_the_same_shield_again_is_idempotent(
        self, ls: LlamaStackClient, shield_id: str
    ) -> None:
        before = ls.shields.retrieve(shield_id)
        again = ls.shields.register(shield_id=shield_id, **self.shield)
        assert again.identifier == shield_id and again.provider_resource_id == before.provider_resource_id

    # -- verdicts ------------------------------------------------------------------------------

    def test_a_safe_text_passes(self, ls: LlamaStackClient, shield_id: str) -> None:
        assert self.run(ls, shield_id, self.safe_text).violation is None

    def test_an_unsafe_text_is_a_violation_with_metadata(self, ls: LlamaStackClient, shield_id: str) -> None:
        violation = self.run(ls, shield_id, self.unsafe_text).violation
        assert violation is not None, "the unsafe text passed"
        assert violation.violation_level in ("warn", "error")
        assert isinstance(violation.user_message, str) and violation.user_message
        metadata = violation.metadata
        assert isinstance(metadata.get("violation_type"), str) and metadata["violation_type"]
        categories = metadata.get("categories")
        assert isinstance(categories, list) and categories and all(isinstance(c, str) for c in categories)
        dumped = json.dumps(metadata, ensure_ascii=False)
        assert self.unsafe_text not in dumped, "metadata must not echo the offending text"

    def test_the_whole_conversation_is_accepted(self, ls: LlamaStackClient, shield_id: str) -> None:
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi, how can I help?", "stop_reason": "end_of_turn"},
            {"role": "user", "content": self.unsafe_text},
        ]
        response = ls.safety.run_shield(shield_id=shield_id, messages=messages, params={})
        assert response.violation is not None and response.violation.violation_level in LEVELS

    # -- moderations -----------------------------------------------------------------------------

    def test_moderations_answer_in_openais_shape(self, oa: OpenAI, shield_id: str) -> None:
        moderation = oa.moderations.create(model=shield_id, input=[self.safe_text, self.unsafe_text])
        assert moderation.id and moderation.model == shield_id
        safe, unsafe = moderation.results
        assert not safe.flagged and unsafe.flagged
        for result in (safe, unsafe):
            categories = result.model_dump()["categories"]
            scores = result.model_dump()["category_scores"]
            assert set(OPENAI_MODERATION_CATEGORIES) <= set(categories) == set(scores)
            assert all(isinstance(v, bool) for v in categories.values())
            assert all(0.0 <= s <= 1.0 for s in scores.values())
        assert not any(safe.model_dump()["categories"].values())
        assert any(unsafe.model_dump()["categories"].values()), "a flagged result names its category"
        single = oa.moderations.create(model=shield_id, input=self.unsafe_text)
        assert len(single.results) == 1 and single.results[0].flagged

    # -- refusals ------------------------------------------------------------------------------

    def test_an_unknown_shield_is_a_404_naming_the_registered_ones(
        self, ls: LlamaStackClient, shield_id: str
    ) -> None:
        with pytest.raises(NotFoundError) as err:
            self.run(ls, "conformance/nope", "x")
        assert "conformance/nope" in str(err.value) and shield_id in str(err.value)

    def test_bad_requests_are_400s_naming_the_field(
        self, conformance_lamina: ServerProcess, shield_id: str
    ) -> None:
        url = f"{conformance_lamina.url}/v1/safety/run-shield"
        bad = [
            ({"shield_id": shield_id, "messages": [], "params": {}}, "messages"),
            ({"shield_id": shield_id, "messages": [{"role": "robot", "content": "x"}], "params": {}}, "role"),
            ({"messages": [{"role": "user", "content": "x"}], "params": {}}, "shield_id"),
        ]
        for body, field in bad:
            response = httpx.post(url, json=body, timeout=60)
            assert response.status_code == 400, (body, response.text)
            assert field in response.json()["detail"], response.text
        moderation = httpx.post(
            f"{conformance_lamina.url}/v1/moderations", json={"model": shield_id, "input": []}, timeout=60
        )
        assert moderation.status_code == 400 and "input" in moderation.json()["error"]["message"]

    def test_unregistered_shields_are_gone(
        self, ls: LlamaStackClient, conformance_lamina: ServerProcess
    ) -> None:
        shield_id = self.register(ls, "gone")
        response = httpx.delete(f"{conformance_lamina.url}/v1/shields/{shield_id}", timeout=60)
        assert response.status_code == 200, response.text
        with pytest.raises(NotFoundError):
            self.run(ls, shield_id, self.safe_text)
        with pytest.raises(NotFoundError):
            ls.shields.retrieve(shield_id)

    # -- persistence -----------------------------------------------------------------------------

    def test_restart_keeps_shields(self, ls: LlamaStackClient, conformance_lamina: ServerProcess) -> None:
        shield_id = self.register(ls, "kept")
        self.restart_lamina(conformance_lamina)
        assert shield_id in [s.identifier for s in ls.shields.list()]
        assert self.run(ls, shield_id, self.safe_text).violation is None
        assert self.run(ls, shield_id, self.unsafe_text).violation is not None
