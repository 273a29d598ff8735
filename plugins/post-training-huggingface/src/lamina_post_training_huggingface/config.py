"""The provider config: Llama Stack 0.2.12's ``HuggingFacePostTrainingConfig`` field names, Lamina's defaults.

Defaults differ where Llama Stack's would not work in a server's training thread on a CPU: ``device``
is ``cpu``, ``dataloader_num_workers`` 0 (no processes forked from the server), ``logging_steps`` 1
(every step's loss on the job's status), ``trust_remote_code`` false (no code from a checkpoint runs).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from lamina.config import not_acted_on
from lamina.storage.config import KVStoreConfig


class HuggingFacePostTrainingConfig(BaseModel):
    device: str = Field(default="cpu", description="cpu, or cuda / cuda:N / mps when torch sees that device.")
    distributed_backend: Literal["fsdp", "deepspeed"] | None = Field(
        default=None,
        json_schema_extra=not_acted_on(
            "a job trains in one process on one device; remove distributed_backend", refuse=True
        ),
    )
    checkpoint_format: Literal["full_state", "huggingface"] | None = Field(
        default="huggingface",
        description="huggingface: each checkpoint is a directory from_pretrained (or PEFT) loads.",
    )
    chat_template: str = Field(
        default="<|user|>\n{input}\n<|assistant|>\n{output}",
        description="How a prompt and its answer are laid out when the tokenizer has no chat template.",
    )
    model_specific_config: dict[str, Any] = Field(
        default_factory=lambda: {"trust_remote_code": False, "attn_implementation": "sdpa"},
        description="Keyword arguments for from_pretrained (trust_remote_code, attn_implementation).",
    )
    max_seq_length: int = Field(default=2048, ge=8, description="Tokens per example; longer ones are cut.")
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations (less memory).")
    save_total_limit: int = Field(
        default=3, ge=1, description="Checkpoints kept per job; older ones are deleted."
    )
    logging_steps: int = Field(default=1, ge=1, description="Steps between loss records on the job's status.")
    warmup_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Warmup share of the steps when num_warmup_steps is 0."
    )
    weight_decay: float = Field(
        default=0.01, ge=0, description="Used when the request's optimizer sets none."
    )
    dataloader_num_workers: int = Field(default=0, ge=0, description="Worker processes per data loader.")
    dataloader_pin_memory: bool = Field(default=False, description="Pin batches' memory (GPU only).")
    dpo_beta: float = Field(default=0.1, gt=0, description="DPO beta when a request leaves it out.")
    use_reference_model: bool = Field(
        default=True,
        description="DPO against a frozen copy of the starting model (LoRA: the base, adapters off).",
    )
    dpo_loss_type: Literal["sigmoid", "hinge", "ipo"] = Field(
        default="sigmoid", description="DPO loss when a request leaves it out."
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch's intra-op threads while training (absent: torch's default)."
    )
    runs_in: Literal["subprocess", "thread"] = Field(
        default="subprocess",
        description="Where a job trains: a child process of the server (its Python loop then never holds "
        "the server's GIL: docs/benchmarks.md) or a thread of the server process. With jobs.executor ray, "
        "a job trains in a Ray actor instead.",
    )
    ray_num_cpus: float = Field(
        default=1,
        gt=0,
        description="CPUs Ray reserves for a job's training actor when jobs.executor is ray.",
    )
    ray_start_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a job's training actor may take to be placed on a Ray node (one with "
        "ray_num_cpus free CPUs) and start; past it the job fails saying so, instead of waiting for CPUs "
        "that may not free soon (the ray executor's actor pool holds its CPUs until its idle_timeout).",
    )
    kvstore: KVStoreConfig | None = Field(
        default=None, description="Where job_uuid -> job ids are kept (absent: <state_dir>/post_training.db)."
    )
    checkpoint_root: str | None = Field(
        default=None,
        description="Where jobs without checkpoint_dir save (absent: <state_dir>/post_training).",
    )

    @field_validator("checkpoint_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value == "full_state":
            raise ValueError(
                "full_state checkpoints are not written by this provider; use huggingface (directories that "
                "from_pretrained and PEFT load, and that inline::transformers serves)"
            )
        return value

    @field_validator("use_reference_model")
    @classmethod
    def _reference(cls, value: bool) -> bool:
        if not value:
            raise ValueError("DPO needs a reference model; leave use_reference_model true")
        return value

    @classmethod
    def sample_run_config(cls, distro_dir: str) -> dict[str, Any]:
        return {"checkpoint_format": "huggingface", "distributed_backend": None, "device": "cpu"}
