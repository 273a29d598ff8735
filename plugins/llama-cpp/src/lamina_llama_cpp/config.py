"""Configuration of ``inline::llama-cpp``."""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field


class LlamaCppConfig(BaseModel):
    """One llama.cpp runtime per GGUF, loaded in-process.

    A model's ``provider_model_id`` names its GGUF: the name of a bundled model
    (``SmolLM2-135M-Instruct``), or a ``.gguf`` file inside one of ``model_dirs`` (absolute, or
    relative to a model directory).
    """

    model_config = ConfigDict(extra="forbid")

    context_length: int = Field(default=4096, ge=256, description="Tokens of context per request (slot).")
    parallel: int = Field(default=2, ge=1, le=64, description="Requests decoded together (llama.cpp slots).")
    max_queue: int = Field(
        default=16, ge=0, description="Requests waiting for a slot; beyond it requests get 503 + Retry-After."
    )
    threads: int = Field(
        default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)), ge=1, description="CPU threads."
    )
    batch_size: int = Field(default=512, ge=32, description="Prompt tokens evaluated per batch.")
    default_max_tokens: int | None = Field(
        default=1024,
        ge=1,
        description=(
            "max_tokens when a request sets none (None: until the context is full); requests may ask "
            "for at most context_length."
        ),
    )
    max_n: int = Field(
        default=8,
        ge=1,
        le=128,
        description="Most choices (n) one request may ask for; they run together and take n slots.",
    )
    tool_format: Literal["auto", "lamina", "native", "smollm2"] = Field(
        default="auto",
        description=(
            "How tools reach the model: 'native' uses the GGUF's chat template (it must know tools); "
            "'smollm2' uses SmolLM2's own tool-call format (<tools> listing, <tool_call>[...] answers); "
            "'lamina' uses Lamina's own tool prompt and parser; 'auto' picks native when the template "
            "mentions tools, else the GGUF's family format (smollm2 for SmolLM2 GGUFs), else lamina. "
            "A model's metadata.tool_format overrides it for that model."
        ),
    )
    gpu_layers: int = Field(default=0, ge=-1, description="Layers offloaded to a GPU (-1: all).")
    model_dirs: list[str] | None = Field(
        default=None,
        description=(
            "Directories GGUF files may be registered from (None: $LAMINA_HOME/models). A path outside "
            "them is refused without saying whether it exists."
        ),
    )
    warmup: bool = Field(default=True, description="Load registered models in the background at start-up.")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {
            "context_length": "${env.LLAMA_CPP_CONTEXT_LENGTH:=4096}",
            "parallel": "${env.LLAMA_CPP_PARALLEL:=2}",
        }


TOOL_FORMATS: tuple[str, ...] = get_args(LlamaCppConfig.model_fields["tool_format"].annotation)
