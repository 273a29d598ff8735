"""One line of a batch: its request sent in-process to the router of its endpoint, its answer shaped as a
line of OpenAI's output or error file.

Success (output file): ``{"id", "custom_id", "response": {"status_code": 200, "request_id", "body":
<what the endpoint answers>}, "error": null}``. A request that fails (a body the endpoint rejects, an
unknown model, an upstream error) goes to the error file with the status and error the endpoint would
have answered over HTTP: ``{"id", "custom_id", "response": {"status_code", "request_id", "body":
{"error": {"message", "type", "param", "code"}}}, "error": null}``. A line the batch never ran (it
expired or was cancelled first) goes to the error file as ``{"id", "custom_id", "response": null,
"error": {"code", "message"}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from lamina.apis.batches import BatchUsage, canonical_endpoint
from lamina.apis.inference import (
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from lamina.apis.responses import CreateResponseRequest
from lamina.errors import BadRequestError, LaminaError, validation_error
from lamina.specs import Api
from lamina_batches.input_file import LineRequest
from lamina_batches.store import LineResult

log = structlog.get_logger(__name__)

NOT_RUN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed: the batch was cancelled first."),
}


def _ids() -> tuple[str, str]:
    return f"batch_req_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"


async def call_endpoint(endpoint: str, body: dict[str, Any], inference: Any, agents: Any) -> Any:
    """What ``endpoint`` answers ``body`` (a LaminaError when it would answer an error)."""
    name = canonical_endpoint(endpoint)
    try:
        if name == "/v1/chat/completions":
            # A batch's answers are its output file: its lines are stored chat completions only when they
            # ask (``"store": true``), as in OpenAI's API, not by default as a client's own requests are.
            request = OpenAIChatCompletionRequest.model_validate({"store": False, **body})
            return await inference.openai_chat_completion(request)
        if name == "/v1/completions":
            return await inference.openai_completion(OpenAICompletionRequest.model_validate(body))
        if name == "/v1/embeddings":
            return await inference.openai_embeddings(OpenAIEmbeddingsRequest.model_validate(body))
        if name == "/v1/responses":
            if agents is None:
                raise BadRequestError(
                    "a /v1/responses batch needs the Responses API, which no agents provider serves here; "
                    "add one under providers.agents (inline::meta-reference)",
                    param="endpoint",
                )
            return await agents.create_openai_response(CreateResponseRequest.model_validate(body))
    except ValidationError as exc:
        raise validation_error(exc, "body") from None
    raise BadRequestError(f"endpoint {endpoint!r} is not one a batch runs", param="endpoint")


async def run_line(request: LineRequest, endpoint: str, inference: Any, agents: Any) -> LineResult:
    """Send one line's request; its output (or error) file line. Never raises but for cancellation."""
    line_id, request_id = _ids()
    try:
        answer = await call_endpoint(endpoint, request.body, inference, agents)
    except LaminaError as exc:
        error = {**exc.to_body()["error"], "code": None}
        return _failed(request, line_id, request_id, exc.status, error)
    except Exception as exc:  # a bug, not the user's: the line fails, the batch goes on
        log.exception("batch_line_failed", custom_id=request.custom_id, line=request.line)
        error = {
            "message": f"internal error: {type(exc).__name__}: {exc}",
            "type": "server_error",
            "param": None,
        }
        return _failed(request, line_id, request_id, 500, {**error, "code": None})
    body = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    response = {"status_code": 200, "request_id": request_id, "body": body}
    out = {"id": line_id, "custom_id": request.custom_id, "response": response, "error": None}
    return LineResult(request.index, True, out)


async def run_line_work(apis: Mapping[Api, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Work function (lamina.jobs.work) of one line: ``item`` is ``{"endpoint", "index", "line",
    "custom_id", "body"}``; the answer is ``{"index", "ok", "out"}`` (its output or error file line).
    Runs wherever the job's executor runs it, on the routers of the stack there."""
    request = LineRequest(item["index"], item["line"], item["custom_id"], item["body"])
    result = await run_line(request, item["endpoint"], apis[Api.inference], apis.get(Api.agents))
    return {"index": result.index, "ok": result.ok, "out": result.out}


def _failed(
    request: LineRequest, line_id: str, request_id: str, status: int, error: dict[str, Any]
) -> LineResult:
    response = {"status_code": status, "request_id": request_id, "body": {"error": error}}
    out = {"id": line_id, "custom_id": request.custom_id, "response": response, "error": None}
    return LineResult(request.index, False, out)


def not_run_line(request: LineRequest, why: str) -> dict[str, Any]:
    """The error file line of a request the batch did not run (``why``: expired or cancelled)."""
    code, message = NOT_RUN[why]
    line_id, _ = _ids()
    return {
        "id": line_id,
        "custom_id": request.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def batch_usage(outputs: list[dict[str, Any]]) -> BatchUsage:
    """The tokens of the successful lines (their answers' ``usage``), summed."""
    total = BatchUsage()
    for out in outputs:
        body = (out.get("response") or {}).get("body")
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            continue
        inputs = _count(usage, "input_tokens") or _count(usage, "prompt_tokens")
        outputs_ = _count(usage, "output_tokens") or _count(usage, "completion_tokens")
        total.input_tokens += inputs
        total.output_tokens += outputs_
        total.total_tokens += _count(usage, "total_tokens") or inputs + outputs_
        in_details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
        total.input_tokens_details.cached_tokens += _count(in_details, "cached_tokens")
        total.output_tokens_details.reasoning_tokens += _count(out_details, "reasoning_tokens")
    return total


def _count(doc: Any, key: str) -> int:
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
