"""inline::llama-cpp's OpenAI streams through a real ``lamina run`` on the bundled SmolLM2 GGUF.

The provider always asks llama.cpp for the usage of a stream, for the inference store; clients get
the usage chunk only when they ask for it (the shared conformance kit checks the wire itself).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from llama_stack_client import LlamaStackClient
from openai import NotFoundError, OpenAI

from lamina.testing.processes import ServerProcess, lamina_server

pytestmark = pytest.mark.e2e

MODEL = "SmolLM2-135M-Instruct"
SAY = [{"role": "user", "content": "Say hello in one word."}]
CONFIG = {
    "version": 2,
    "image_name": "llama-cpp-wire",
    "providers": {
        "inference": [{"provider_id": "llama-cpp", "provider_type": "inline::llama-cpp", "config": {}}]
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with lamina_server(CONFIG, tmp_path_factory.mktemp("llama-cpp-wire")) as srv:
        yield srv


def test_the_store_keeps_the_usage_of_a_stream_that_did_not_ask_for_it(server: ServerProcess) -> None:
    oa = OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120)
    chunks = list(oa.chat.completions.create(model=MODEL, messages=SAY, max_tokens=4, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    deadline = time.monotonic() + 10
    while True:  # the background writer stores it just after the stream ends
        try:
            stored = oa.chat.completions.retrieve(chunks[0].id)
            break
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert stored.usage.completion_tokens >= 1
    assert stored.choices[0].message.content == "".join(c.choices[0].delta.content or "" for c in chunks)
    assert stored.system_fingerprint is None  # llama.cpp's "b0-unknown" is not passed on


def test_llama_stack_client_reads_both_openai_shapes(server: ServerProcess) -> None:
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    answer = ls.chat.completions.create(model=MODEL, messages=SAY, max_tokens=4)
    assert answer.choices[0].message.content and "timings" not in answer.to_dict()
    chunks = list(
        ls.chat.completions.create(
            model=MODEL, messages=SAY, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    docs = [c.to_dict() for c in chunks]
    assert docs[-1]["choices"] == [] and docs[-1]["usage"]["completion_tokens"] >= 1
    assert all(d["choices"] and "usage" not in d for d in docs[:-1])
