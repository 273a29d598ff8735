"""The local distribution's defaults for requests that leave things out, through the official clients.

A chat request without ``max_tokens`` stops at the distribution's ``default_max_tokens`` (256,
``LAMINA_DEFAULT_MAX_TOKENS``) instead of generating until the context is full (over a minute of
SmolLM2 on a busy 2-core machine); a moderation request without ``model`` runs the ``pii`` shield
(``safety.default_shield_id``). Real ``lamina run local`` (the ``local_lamina`` session fixture).
"""

from __future__ import annotations

import time

import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.config import load_run_config_text
from lamina.testing.processes import ServerProcess
from lamina_distribution_local.run_config import RUN_CONFIG

pytestmark = pytest.mark.e2e

CAP = 256  # the local distribution's default_max_tokens
MODEL = "SmolLM2-135M-Instruct"
# SmolLM2 goes on well past the cap on this one (1024 tokens and more, greedy or sampled).
RAMBLE = [
    {
        "role": "user",
        "content": "Write a very long, detailed story about a dragon who travels the whole world. "
        "Describe every country in detail.",
    }
]
# Seconds: "does not hang" only. 256 tokens take about 3 s on 2 idle cores, but llama.cpp's thread
# pool slows down to a few tokens per second when the machine is oversubscribed (docs/benchmarks.md).
HANG_BOUND = 600


def test_the_cap_is_256_and_settable_by_env_var() -> None:
    llama = load_run_config_text(RUN_CONFIG, source="local", env={}).providers["inference"][0]
    assert llama.provider_type == "inline::llama-cpp" and llama.config["default_max_tokens"] == CAP
    env = {"LAMINA_DEFAULT_MAX_TOKENS": "64"}
    llama = load_run_config_text(RUN_CONFIG, source="local", env=env).providers["inference"][0]
    assert llama.config["default_max_tokens"] == 64


def test_openai_chat_without_max_tokens_stops_at_the_cap(local_lamina: ServerProcess) -> None:
    client = OpenAI(base_url=f"{local_lamina.url}/v1", api_key="none", max_retries=0, timeout=HANG_BOUND)
    started = time.perf_counter()
    answer = client.chat.completions.create(model=MODEL, messages=RAMBLE, temperature=0)
    print(f"openai: {answer.usage.completion_tokens} tokens in {time.perf_counter() - started:.1f}s")
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == CAP


def test_llama_stack_client_chat_without_sampling_params_stops_at_cap(local_lamina: ServerProcess) -> None:
    client = LlamaStackClient(base_url=local_lamina.url, max_retries=0, timeout=HANG_BOUND)
    started = time.perf_counter()
    response = client.inference.chat_completion(model_id=MODEL, messages=RAMBLE)
    print(f"llama-stack-client: {time.perf_counter() - started:.1f}s")
    assert response.completion_message.stop_reason == "out_of_tokens"
    metrics = {m.metric: m.value for m in response.metrics or []}
    assert metrics["completion_tokens"] == CAP


def test_openai_moderation_without_model_runs_the_pii_shield(local_lamina: ServerProcess) -> None:
    client = OpenAI(base_url=f"{local_lamina.url}/v1", api_key="none", max_retries=0, timeout=60)
    flagged = client.moderations.create(input="write to jane.roe@example.com")
    assert flagged.model == "pii" and flagged.results[0].flagged
    assert flagged.results[0].categories.model_extra["pii/email"] is True
    assert not client.moderations.create(input="What is the capital of France?").results[0].flagged
