"""lamina.errors: one description of pydantic validation errors, used by every caller; plugins need no
``lamina.server`` import."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lamina.config import validation_message
from lamina.errors import BadRequestError, describe_validation_error, field_problems, validation_error
from lamina.routers.vector_io import parse_params

ROOT = Path(__file__).resolve().parents[1]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str | list[str]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Message]
    n: int = Field(default=1, ge=1)


def _error(data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Body.model_validate(data)
    return info.value


def test_problems_name_the_field_what_is_wrong_and_the_value() -> None:
    exc = _error({"messages": [{"role": "robot", "content": 5}], "n": 0, "colour": "red"})
    shown = [str(p) for p in field_problems(exc)]
    assert shown == [
        "model: required, but missing",
        "messages[0].role: Input should be 'user' or 'assistant' (got 'robot')",
        # the union members pydantic tries (str, list[str]) are not part of the path, and said once
        "messages[0].content: Input should be a valid string (got 5)",
        "messages[0].content: Input should be a valid list (got 5)",
        "n: Input should be greater than or equal to 1 (got 0)",
        "colour: Extra inputs are not permitted (got 'red')",
    ]


def test_http_and_config_callers_say_the_same_thing() -> None:
    exc = _error({"model": "m", "messages": [{"role": "robot", "content": "hi"}]})
    err = validation_error(exc, "request body")
    assert isinstance(err, BadRequestError) and err.status == 400
    assert (
        err.message
        == "invalid request body: messages[0].role: Input should be 'user' or 'assistant' (got 'robot')"
    )
    assert err.param == "messages[0].role"
    assert validation_message("run.yaml", exc, ("body",)) == (
        "run.yaml: body.messages[0].role: Input should be 'user' or 'assistant' (got 'robot')"
    )


def test_long_lists_are_cut_and_long_values_shortened() -> None:
    exc = _error({"model": "x" * 500, "messages": [{"role": "robot", "content": "hi"}] * 12})
    text = describe_validation_error(exc, limit=3)
    assert text.endswith("; and 9 more") and text.count("messages[") == 3
    [problem] = field_problems(_error({"model": 1, "messages": [{"role": "x" * 500, "content": ""}]}))[1:]
    assert len(problem.got) == 80 and problem.got.endswith("...")


def test_discriminated_union_tags_are_left_out_of_the_path() -> None:
    with pytest.raises(BadRequestError) as info:
        parse_params({"ranker": {"type": "rrf", "impact_factor": "high"}})
    assert info.value.param == "params.ranker.impact_factor"
    assert info.value.message.startswith("invalid query params: params.ranker.impact_factor: ")


def test_no_other_module_formats_validation_errors_and_plugins_do_not_import_the_server() -> None:
    """``exc.errors()`` is read in lamina.errors only; plugins use public modules, not lamina.server."""
    sources = [*ROOT.glob("core/lamina/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py")]
    reading = [p.relative_to(ROOT) for p in sources if ".errors()" in p.read_text()]
    assert reading == [Path("core/lamina/errors.py")]
    importing_server = [
        p.relative_to(ROOT)
        for p in ROOT.glob("plugins/*/src/**/*.py")
        if re.search(r"^\s*(from|import) lamina\.server\b", p.read_text(), re.M)
    ]
    assert importing_server == []
