"""What the OpenAI routes send: the fields OpenAI defines, and the usage chunk only when asked.

Providers hand the inference router what their engine or upstream produced. llama.cpp adds fields
of its own at the top of its answers and chunks (``timings``; ``__verbose`` and ``prompt_progress``
when asked for them) and calls itself ``b0-unknown`` in ``system_fingerprint`` when it was built
without version information; a provider may also produce the usage chunk of a stream that did not
ask for one, because the inference store records the usage. The router sends every OpenAI chat and
text completion through here on its way out, so no provider can get the wire wrong:

- ``clean_answer``: an answer, or one chunk of a stream, keeps only the top-level fields OpenAI
  defines. A ``system_fingerprint`` is passed on as the upstream sent it, except llama.cpp's
  "build unknown", which identifies no configuration; none is ever made up (the OpenAI SDK's types
  allow it to be absent).
- ``openai_stream``: chunks cleaned as above; the usage leaves every chunk and, when the request set
  ``stream_options.include_usage``, comes after the last one in OpenAI's shape (``choices: []``,
  before ``[DONE]``). A chunk left with no choice is dropped, so the loop most client code writes,
  ``chunk.choices[0].delta``, works on every chunk of a stream that did not ask for the usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

# The top-level fields of OpenAI's chat.completion, chat.completion.chunk and text_completion objects.
OPENAI_ANSWER_FIELDS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}
)
# What llama.cpp reports as its system_fingerprint when built without a version (build 0, no commit).
UNKNOWN_FINGERPRINTS = frozenset({"b0-unknown"})
# The fields of a chunk that the usage chunk repeats.
_CHUNK_HEAD = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


def clean_answer(doc: dict[str, Any]) -> bool:
    """Remove, in place, the top-level fields of an OpenAI answer (or chunk) that OpenAI does not define.

    Returns whether anything was removed: a provider that relays the upstream's bytes as they came
    may do so only when this is False.
    """
    extra = [key for key in doc if key not in OPENAI_ANSWER_FIELDS]
    for key in extra:
        del doc[key]
    if doc.get("system_fingerprint") in UNKNOWN_FINGERPRINTS:
        del doc["system_fingerprint"]
        return True
    return bool(extra)


def include_usage(request: Any) -> bool:
    """Whether an OpenAI request asked for the usage chunk (``stream_options.include_usage``)."""
    options = getattr(request, "stream_options", None)
    return bool(isinstance(options, dict) and options.get("include_usage"))


async def openai_stream(
    chunks: AsyncIterator[Any],
    *,
    include_usage: bool,
    observe: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The chunks as OpenAI sends them (see the module docstring).

    ``observe`` sees each chunk once cleaned but before its usage is taken out (the inference store
    records the usage whether or not the client asked for it).
    """
    usage: Any = None
    head: dict[str, Any] = {}
    try:
        async for item in chunks:
            chunk = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            clean_answer(chunk)
            if observe is not None:
                observe(chunk)
            if "usage" in chunk:
                if chunk["usage"] is not None:
                    usage = chunk["usage"]
                    head = {key: chunk[key] for key in _CHUNK_HEAD if key in chunk}
                # a copy: what ``observe`` kept keeps its usage
                chunk = {key: value for key, value in chunk.items() if key != "usage"}
            if chunk.get("choices"):
                yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if include_usage and usage is not None:
        yield {**head, "choices": [], "usage": usage}
