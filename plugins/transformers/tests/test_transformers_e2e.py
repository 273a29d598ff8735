"""inline::transformers through a real ``lamina run``: a full checkpoint (a tiny random Llama built here with
an in-process tokenizer; nothing downloaded) served by chat and completion, native and OpenAI, streamed
and not. Random weights answer gibberish, so the checks compare routes with each other (greedy answers
are the same text whichever route and framing asks) and check shapes, limits and refusals.
The adapter case (a LoRA checkpoint of a training job) is in plugins/post-training-huggingface's e2e.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import llama_stack_client
import openai
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess
from lamina_post_training_huggingface.tiny_model import build_tiny_llama

pytestmark = pytest.mark.e2e


def test_a_checkpoint_answers_chat_and_completion_streamed_or_not(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    model = build_tiny_llama(tmp_path / "model", ["What color is the sky? Blue."] * 5)
    server = start_lamina(
        {
            "version": 2,
            "image_name": "transformers-e2e",
            "providers": {
                "inference": [
                    {"provider_id": "transformers", "provider_type": "inline::transformers", "config": {}}
                ]
            },
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
            "models": [{"model_id": "tiny", "provider_id": "transformers", "provider_model_id": str(model)}],
        }
    )
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
    question = [{"role": "user", "content": "What color is the sky?"}]

    chat = oai.chat.completions.create(model="tiny", messages=question, temperature=0, max_tokens=8)
    text = chat.choices[0].message.content
    assert chat.model == "tiny" and chat.usage.completion_tokens <= 8
    assert chat.choices[0].finish_reason in ("stop", "length")
    stream = oai.chat.completions.create(
        model="tiny",
        messages=question,
        temperature=0,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    native = c.inference.chat_completion(
        model_id="tiny", messages=question, sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8}
    )
    assert native.completion_message.content == text

    prompt = "<|user|>\nWhat color is the sky?\n<|assistant|>\n"
    completion = oai.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=8)
    assert completion.choices[0].text == text  # the chat template's prompt, sent by hand
    pieces = oai.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=8, stream=True)
    assert "".join(p.choices[0].text for p in pieces if p.choices) == text
    streamed = c.inference.completion(
        model_id="tiny",
        content=prompt,
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8},
        stream=True,
    )
    assert "".join(chunk.delta for chunk in streamed) == text
    one = oai.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=1)
    assert one.usage.completion_tokens == 1

    # What it does not do is refused, naming the field.
    with pytest.raises(openai.BadRequestError, match="response_format"):
        oai.chat.completions.create(model="tiny", messages=question, response_format={"type": "json_object"})
    with pytest.raises(openai.BadRequestError, match="stop"):
        oai.chat.completions.create(model="tiny", messages=question, stop=["x"], stream=True).close()
    with pytest.raises(openai.BadRequestError, match="n=1"):
        oai.chat.completions.create(model="tiny", messages=question, n=2)
    with pytest.raises(llama_stack_client.BadRequestError, match="provider_model_id"):
        c.models.register(
            model_id="gone", provider_id="transformers", provider_model_id=str(tmp_path / "none")
        )
    # An llm does not embed, and the same checkpoint registered as an embedding model does not generate.
    with pytest.raises(openai.BadRequestError, match="needs an embedding model"):
        oai.embeddings.create(model="tiny", input="hi")
    width = json.loads((model / "config.json").read_text())["hidden_size"]
    c.models.register(
        model_id="tiny-emb",
        provider_id="transformers",
        provider_model_id=str(model),
        model_type="embedding",
        metadata={"embedding_dimension": width},
    )
    with pytest.raises(openai.BadRequestError, match="this call needs an llm model"):
        oai.chat.completions.create(model="tiny-emb", messages=question)
