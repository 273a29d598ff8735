"""Work functions of the ray executor's tests (``lamina.jobs.work``). The actors import this module by
name: the tests put this folder on their PYTHONPATH through the executor's ``runtime_env``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lamina.apis.inference import OpenAIChatCompletionRequest
from lamina.request_context import PROVIDER_DATA, WORK_CLASS
from lamina.specs import Api


def _where() -> dict[str, Any]:
    import ray

    return {"pid": os.getpid(), "node_ip": ray.util.get_node_ip_address()}


async def chat(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One chat completion through the actor stack's inference router (the fake upstream answers)."""
    request = OpenAIChatCompletionRequest.model_validate(
        {
            "model": item.get("model", "ok"),
            "messages": [{"role": "user", "content": f"hi [[mark:{item['mark']}]]"}],
            "store": False,
        }
    )
    answer = await apis[Api.inference].openai_chat_completion(request)
    if not isinstance(answer, dict):  # a pydantic model from some providers, the upstream's JSON from others
        answer = answer.model_dump(mode="json")
    return {
        "mark": item["mark"],
        "content": answer["choices"][0]["message"]["content"],
        "provider_data": PROVIDER_DATA.get(),
        "work_class": WORK_CLASS.get(),
        **_where(),
    }


class BadItemError(ValueError):
    """What ``fail_on`` raises: the executor must raise this type, with this message, in the server."""


async def fail_on(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    if item.get("bad"):
        raise BadItemError(f"item {item['mark']} is bad: {item['bad']}")
    return await chat(apis, item)


async def crash_once(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """The first actor that runs an item with ``crash_flag`` exits at once (its process dies mid-item);
    the item, tried again on another actor, answers."""
    flag = item.get("crash_flag")
    if flag and not os.path.exists(flag):  # noqa: ASYNC240 - a tiny local file, then the process exits
        with open(flag, "w") as out:  # noqa: ASYNC230
            out.write(str(os.getpid()))
        os._exit(1)
    return await chat(apis, item)


async def crash_always(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    os._exit(1)
