"""The Inference conformance kit.

Subclass ``InferenceConformance`` in a test module (its name must start with ``Test``), name the
models it serves, and give it a server: ``run_config`` (a run config dict; the kit starts ``lamina
run`` on it once per class) or a class-scoped ``conformance_lamina`` fixture yielding a started
``ServerProcess``. The config must register the models named by the class attributes (in
``models:``, or through the plugin's ``lamina_models`` defaults). Switch off what the provider
cannot do with the ``supports_*`` attributes; every test that remains must pass::

    class TestMyProvider(InferenceConformance):
        chat_model = "my-model"              # None: an embedding-only provider
        embedding_model = "my-embedder"      # None: the provider serves no embeddings
        embedding_dimension = 384
        supports_logprobs = False
        run_config = MY_RUN_CONFIG

A provider serving only embeddings sets ``chat_model = None``: the chat and completion tests are
skipped and the kit checks that its embedding model is refused for chat. One serving only chat
leaves ``embedding_model`` None.
"""

from __future__ import annotations

import json
import math
from typing import ClassVar

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError
from openai import BadRequestError as OpenAIBadRequest
from openai import NotFoundError as OpenAINotFound
from openai import OpenAI

from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess

SAY = [{"role": "user", "content": "Say hello in one word."}]
COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STOP_REASONS = ("end_of_turn", "end_of_message", "out_of_tokens")
# The top-level fields OpenAI defines for chat.completion, chat.completion.chunk and text_completion.
OPENAI_FIELDS = {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}


# The tests that need a chat model (skipped when ``chat_model`` is None).
_CHAT_TESTS = frozenset(
    {
        "test_chat_completion",
        "test_chat_completion_max_tokens_is_honoured",
        "test_chat_completion_stream",
        "test_chat_completion_json_schema",
        "test_chat_completion_logprobs",
        "test_chat_completion_stop",
        "test_completion",
        "test_openai_chat_completion",
        "test_openai_chat_stream",
        "test_openai_seed_is_repeatable",
        "test_openai_logprobs",
        "test_openai_json_schema",
        "test_openai_completions",
        "test_openai_streams_through_llama_stack_client",
        "test_openai_stream_sends_usage_only_when_asked",
        "test_openai_answers_carry_only_openai_fields",
    }
)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.e2e
class InferenceConformance(ConformanceKit):
    chat_model: ClassVar[str | None] = None
    embedding_model: ClassVar[str | None] = None
    embedding_dimension: ClassVar[int | None] = None
    supports_completion: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True
    supports_stop: ClassVar[bool] = True
    supports_seed: ClassVar[bool] = True

    # -- clients -------------------------------------------------------------------------------

    @pytest.fixture(params=["/v1/openai/v1", "/v1"])
    def oa(self, request: pytest.FixtureRequest, conformance_lamina: ServerProcess) -> OpenAI:
        return OpenAI(
            base_url=conformance_lamina.url + request.param, api_key="none", max_retries=0, timeout=120
        )

    def _need(self, flag: bool, what: str) -> None:
        if not flag:
            pytest.skip(f"{type(self).__name__} declares no support for {what}")

    @pytest.fixture(autouse=True)
    def _kit_serves_something(self, request: pytest.FixtureRequest) -> None:
        if self.chat_model is None and self.embedding_model is None:
            pytest.fail(f"{type(self).__name__}: set chat_model, embedding_model or both")
        # The chat and completion tests need a chat model; they are skipped for an embedder.
        name = request.node.originalname
        if self.chat_model is None and name in _CHAT_TESTS:
            pytest.skip(f"{type(self).__name__} serves no chat model (chat_model is None)")

    # -- models --------------------------------------------------------------------------------

    def test_models_are_listed_in_both_shapes(self, ls: LlamaStackClient, oa: OpenAI) -> None:
        native = {m.identifier: m for m in ls.models.list()}
        listed = {m.id for m in oa.models.list()}
        if self.chat_model:
            assert native[self.chat_model].model_type == "llm"
            assert self.chat_model in listed
        if self.embedding_model:
            assert native[self.embedding_model].model_type == "embedding"
            assert native[self.embedding_model].metadata["embedding_dimension"] == self.embedding_dimension
            assert self.embedding_model in listed

    def test_unknown_model_is_404(self, ls: LlamaStackClient, oa: OpenAI) -> None:
        """The 404 names the registered models, so the client sees what it could have asked for."""
        registered = self.chat_model or self.embedding_model
        assert registered is not None
        with pytest.raises(NotFoundError, match=registered):
            ls.inference.chat_completion(model_id="conformance/no-such-model", messages=SAY)
        with pytest.raises(NotFoundError, match=registered):
            ls.inference.embeddings(model_id="conformance/no-such-model", contents=["x"])
        with pytest.raises(OpenAINotFound):
            oa.chat.completions.create(model="conformance/no-such-model", messages=SAY)
        with pytest.raises(OpenAINotFound):
            oa.embeddings.create(model="conformance/no-such-model", input=["x"])

    # -- native --------------------------------------------------------------------------------

    def test_chat_completion(self, ls: LlamaStackClient) -> None:
        answer = ls.inference.chat_completion(
            model_id=self.chat_model, messages=SAY, sampling_params={"max_tokens": 16}
        )
        assert answer.completion_message.role == "assistant"
        assert (
            isinstance(answer.completion_message.content, str) and answer.completion_message.content.strip()
        )
        assert answer.completion_message.stop_reason in STOP_REASONS

    def test_chat_completion_max_tokens_is_honoured(self, ls: LlamaStackClient) -> None:
        answer = ls.inference.chat_completion(
            model_id=self.chat_model, messages=COUNT, sampling_params={"max_tokens": 3}
        )
        assert answer.completion_message.stop_reason == "out_of_tokens"
        tokens = {m.metric: m.value for m in answer.metrics or []}.get("completion_tokens")
        assert tokens is None or tokens <= 3

    def test_chat_completion_stream(self, ls: LlamaStackClient) -> None:
        chunks = list(
            ls.inference.chat_completion(
                model_id=self.chat_model, messages=SAY, stream=True, sampling_params={"max_tokens": 16}
            )
        )
        kinds = [c.event.event_type for c in chunks]
        assert kinds[0] == "start" and kinds[-1] == "complete" and set(kinds[1:-1]) <= {"progress"}
        assert "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text").strip()
        assert chunks[-1].event.stop_reason in STOP_REASONS

    def test_chat_completion_json_schema(self, ls: LlamaStackClient) -> None:
        self._need(self.supports_json_schema, "json_schema response_format")
        schema = {
            "type": "object",
            "required": ["name", "age"],
            "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        }
        answer = ls.inference.chat_completion(
            model_id=self.chat_model,
            messages=[{"role": "user", "content": "Invent a person."}],
            response_format={"type": "json_schema", "json_schema": schema},
            sampling_params={"max_tokens": 120, "strategy": {"type": "greedy"}},
        )
        doc = json.loads(answer.completion_message.content)
        assert isinstance(doc["name"], str) and isinstance(doc["age"], int)

    def test_chat_completion_logprobs(self, ls: LlamaStackClient) -> None:
        self._need(self.supports_logprobs, "logprobs")
        answer = ls.inference.chat_completion(
            model_id=self.chat_model, messages=SAY, logprobs={"top_k": 2}, sampling_params={"max_tokens": 3}
        )
        assert answer.logprobs
        for token in answer.logprobs:
            assert 1 <= len(token.logprobs_by_token) <= 2
            assert all(v <= 0 for v in token.logprobs_by_token.values())

    def test_chat_completion_stop(self, ls: LlamaStackClient) -> None:
        self._need(self.supports_stop, "stop sequences")
        answer = ls.inference.chat_completion(
            model_id=self.chat_model,
            messages=COUNT,
            sampling_params={"max_tokens": 40, "stop": ["5"], "strategy": {"type": "greedy"}},
        )
        assert "5" not in answer.completion_message.content and "6" not in answer.completion_message.content

    def test_completion(self, ls: LlamaStackClient) -> None:
        self._need(self.supports_completion, "text completion")
        answer = ls.inference.completion(
            model_id=self.chat_model, content="The capital of France is", sampling_params={"max_tokens": 6}
        )
        assert answer.content and answer.stop_reason in STOP_REASONS
        chunks = list(
            ls.inference.completion(
                model_id=self.chat_model,
                content="Once upon a time",
                stream=True,
                sampling_params={"max_tokens": 6},
            )
        )
        assert "".join(c.delta for c in chunks).strip()
        assert chunks[-1].stop_reason in STOP_REASONS

    def test_embeddings(self, ls: LlamaStackClient) -> None:
        self._need(self.embedding_model is not None, "embeddings")
        vectors = ls.inference.embeddings(
            model_id=self.embedding_model, contents=["a cat", "a kitten", "a tax invoice"]
        ).embeddings
        assert len(vectors) == 3 and all(len(v) == self.embedding_dimension for v in vectors)
        assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])

    def test_model_type_is_enforced(self, ls: LlamaStackClient, oa: OpenAI) -> None:
        if self.chat_model:
            with pytest.raises(BadRequestError, match="embedding"):
                ls.inference.embeddings(model_id=self.chat_model, contents=["x"])
        if self.embedding_model:
            with pytest.raises(BadRequestError, match="embedding"):
                ls.inference.chat_completion(model_id=self.embedding_model, messages=SAY)
            with pytest.raises(OpenAIBadRequest, match="embedding"):
                oa.chat.completions.create(model=self.embedding_model, messages=SAY, max_tokens=4)

    # -- OpenAI --------------------------------------------------------------------------------

    def test_openai_chat_completion(self, oa: OpenAI) -> None:
        answer = oa.chat.completions.create(model=self.chat_model, messages=SAY, max_tokens=16)
        assert answer.model == self.chat_model
        assert answer.choices[0].message.content
        assert answer.usage is None or answer.usage.completion_tokens >= 1

    def test_openai_chat_stream(self, oa: OpenAI) -> None:
        chunks = list(
            oa.chat.completions.create(
                model=self.chat_model,
                messages=SAY,
                max_tokens=16,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert all(c.model == self.chat_model for c in chunks)
        assert any(c.choices and c.choices[0].finish_reason for c in chunks)

    def test_openai_seed_is_repeatable(self, oa: OpenAI) -> None:
        self._need(self.supports_seed, "seed")
        kwargs = {"model": self.chat_model, "messages": SAY, "max_tokens": 12, "temperature": 1.0, "seed": 99}
        first = oa.chat.completions.create(**kwargs).choices[0].message.content
        assert oa.chat.completions.create(**kwargs).choices[0].message.content == first

    def test_openai_logprobs(self, oa: OpenAI) -> None:
        self._need(self.supports_logprobs, "logprobs")
        answer = oa.chat.completions.create(
            model=self.chat_model, messages=SAY, max_tokens=3, logprobs=True, top_logprobs=2
        )
        content = answer.choices[0].logprobs.content
        assert content and all(len(t.top_logprobs) == 2 for t in content)

    def test_openai_json_schema(self, oa: OpenAI) -> None:
        self._need(self.supports_json_schema, "json_schema response_format")
        schema = {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        }
        answer = oa.chat.completions.create(
            model=self.chat_model,
            messages=[{"role": "user", "content": "Name a city."}],
            max_tokens=80,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        )
        assert isinstance(json.loads(answer.choices[0].message.content)["city"], str)

    def test_openai_completions(self, oa: OpenAI) -> None:
        self._need(self.supports_completion, "text completion")
        answer = oa.completions.create(model=self.chat_model, prompt="The capital of France is", max_tokens=5)
        assert answer.choices[0].text and answer.model == self.chat_model

    # -- the OpenAI wire, as both official clients read it ---------------------------------------

    def test_openai_streams_through_llama_stack_client(self, ls: LlamaStackClient) -> None:
        """llama-stack-client 0.2.12 parses every event as JSON: its streams end without ``[DONE]``."""
        chunks = list(
            ls.chat.completions.create(model=self.chat_model, messages=SAY, max_tokens=4, stream=True)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
        if self.supports_completion:
            pieces = list(
                ls.completions.create(
                    model=self.chat_model, prompt="Once upon a time", max_tokens=4, stream=True
                )
            )
            assert "".join(c.choices[0].text for c in pieces).strip()

    def test_openai_stream_sends_usage_only_when_asked(self, oa: OpenAI) -> None:
        """Every chunk has a choice (``chunk.choices[0]`` works), except the usage chunk that
        ``stream_options.include_usage`` asks for: the last one, with no choices."""
        kwargs = {"model": self.chat_model, "messages": SAY, "max_tokens": 4, "stream": True}
        plain = list(oa.chat.completions.create(**kwargs))
        assert plain and all(c.choices and c.usage is None for c in plain)
        asked = list(oa.chat.completions.create(**kwargs, stream_options={"include_usage": True}))
        assert asked[-1].choices == [] and asked[-1].usage.completion_tokens >= 1
        assert all(c.choices and c.usage is None for c in asked[:-1])

    def test_openai_answers_carry_only_openai_fields(self, oa: OpenAI) -> None:
        """No engine extras (llama.cpp's ``timings``), no made-up system_fingerprint."""
        docs = [oa.chat.completions.create(model=self.chat_model, messages=SAY, max_tokens=4).to_dict()]
        stream = oa.chat.completions.create(model=self.chat_model, messages=SAY, max_tokens=4, stream=True)
        docs += [c.to_dict() for c in stream]
        if self.supports_completion:
            docs.append(oa.completions.create(model=self.chat_model, prompt="Hello", max_tokens=4).to_dict())
        for doc in docs:
            assert set(doc) <= OPENAI_FIELDS, f"fields OpenAI does not define: {set(doc) - OPENAI_FIELDS}"
            assert doc.get("system_fingerprint") != "b0-unknown"  # llama.cpp's "build unknown"

    def test_openai_embeddings(self, oa: OpenAI) -> None:
        self._need(self.embedding_model is not None, "embeddings")
        answer = oa.embeddings.create(model=self.embedding_model, input=["hello", "world"])
        assert [d.index for d in answer.data] == [0, 1]
        assert all(len(d.embedding) == self.embedding_dimension for d in answer.data)
        assert answer.model == self.embedding_model
