"""Post training: supervised fine-tuning (full or LoRA) and preference optimisation (DPO) as jobs.

Routes and shapes are Llama Stack 0.2.12's (``/v1/post-training/...``): a client names each training
job with its own ``job_uuid``; the job runs on the job system (``lamina.jobs``), so its progress, its
cancel and what a restart does are the job system's, and ``GET /v1/jobs/{lamina_job_id}`` shows it too.
A status answers Llama Stack's fields plus Lamina's: ``progress`` (steps done / steps in all),
``metrics`` (the loss of every logged step, and DPO's reward margins), ``error`` and ``lamina_job_id``.

Llama Stack 0.2.12's DPO config has ``reward_scale``, ``reward_clip``, ``epsilon`` and ``gamma`` (its
client requires them) and its provider refuses to train DPO; Lamina trains DPO and also takes ``beta``
and ``loss_type`` (the fields later Llama Stack versions use). What each field does is in its description.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, lists, reads, updates
from lamina.apis.common import Empty
from lamina.apis.jobs import JobProgress, JobStatus
from lamina.apis.webmethod import webmethod

# -- training configuration ----------------------------------------------------------------------------


class OptimizerType(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class DatasetFormat(StrEnum):
    """``instruct``: rows with ``input_query`` (or ``chat_completion_input``) and ``expected_answer``;
    ``dialog``: rows with ``messages`` (or ``dialog``), a list of chat messages ending with the
    assistant's answer (a dataset of purpose ``post-training/messages``)."""

    instruct = "instruct"
    dialog = "dialog"


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dataset_id: str = Field(min_length=1, description="A registered dataset (GET /v1/datasets).")
    batch_size: int = Field(ge=1, le=4096, description="Rows per step (before gradient accumulation).")
    shuffle: bool = Field(description="Shuffle the rows each epoch.")
    data_format: DatasetFormat = Field(description="How rows are read: instruct or dialog (messages).")
    validation_dataset_id: str | None = Field(
        default=None, description="A registered dataset whose loss is measured at each checkpoint."
    )
    packed: bool | None = Field(
        default=False, description="Pack several rows into one sequence (not supported: leave false)."
    )
    train_on_input: bool | None = Field(
        default=False, description="Also learn the prompt's tokens (default: only the answer's tokens)."
    )


class OptimizerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    optimizer_type: OptimizerType = Field(description="adam, adamw or sgd (torch.optim).")
    lr: float = Field(gt=0, description="The learning rate, constant after the warmup.")
    weight_decay: float = Field(ge=0, description="Weight decay (L2 for adam and sgd, decoupled for adamw).")
    num_warmup_steps: int = Field(ge=0, description="Steps over which the learning rate rises from 0 to lr.")


class EfficiencyConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enable_activation_checkpointing: bool | None = Field(
        default=False, description="Recompute activations in the backward pass (less memory, slower)."
    )
    enable_activation_offloading: bool | None = Field(
        default=False, description="Not supported: leave false."
    )
    memory_efficient_fsdp_wrap: bool | None = Field(default=False, description="Not supported: leave false.")
    fsdp_cpu_offload: bool | None = Field(default=False, description="Not supported: leave false.")


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    n_epochs: int = Field(ge=1, le=10_000, description="Passes over the dataset.")
    max_steps_per_epoch: int = Field(
        ge=1, description="At most this many optimizer steps per epoch (fewer when the data runs out)."
    )
    gradient_accumulation_steps: int = Field(ge=1, le=4096, description="Batches per optimizer step.")
    max_validation_steps: int | None = Field(
        default=None, ge=1, description="At most this many validation batches per checkpoint."
    )
    data_config: DataConfig
    optimizer_config: OptimizerConfig
    efficiency_config: EfficiencyConfig | None = None
    dtype: str | None = Field(
        default="bf16",
        description="Training precision: bf16, fp32 (fp16 needs a GPU); on CPU bf16 trains in fp32.",
    )


class LoraFinetuningConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["LoRA"] = "LoRA"
    lora_attn_modules: list[str] = Field(
        description="Attention projections to adapt, by name (q_proj, k_proj, v_proj, o_proj)."
    )
    apply_lora_to_mlp: bool = Field(
        description="Also adapt the MLP projections (gate_proj, up_proj, down_proj)."
    )
    apply_lora_to_output: bool = Field(description="Also adapt the output projection (lm_head).")
    rank: int = Field(ge=1, le=4096, description="The adapters' rank r.")
    alpha: int = Field(ge=1, description="LoRA alpha: the adapters' output is scaled by alpha / rank.")
    use_dora: bool | None = Field(default=False, description="Weight-decomposed LoRA (DoRA).")
    quantize_base: bool | None = Field(default=False, description="QLoRA (needs a GPU): not supported here.")


class QATFinetuningConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["QAT"] = "QAT"
    quantizer_name: str
    group_size: int


AlgorithmConfig = Annotated[LoraFinetuningConfig | QATFinetuningConfig, Field(discriminator="type")]


class DPOLossType(StrEnum):
    sigmoid = "sigmoid"
    hinge = "hinge"
    ipo = "ipo"


class DPOAlignmentConfig(BaseModel):
    """Llama Stack 0.2.12's fields (its client requires them) and the DPO ones, ``beta`` and
    ``loss_type``. ``epsilon`` is conservative DPO's label smoothing; ``reward_scale`` multiplies
    ``beta``; ``reward_clip`` and ``gamma`` have no meaning in DPO and must stay 0."""

    model_config = ConfigDict(extra="ignore")

    beta: float = Field(
        default=0.1, gt=0, description="How far the policy may move from the reference model."
    )
    loss_type: DPOLossType = Field(default=DPOLossType.sigmoid, description="sigmoid (DPO), hinge or ipo.")
    reward_scale: float = Field(default=1.0, gt=0, description="Multiplies beta (1: beta as given).")
    reward_clip: float = Field(default=0.0, ge=0, le=0, description="Must be 0: DPO clips no reward.")
    epsilon: float = Field(
        default=0.0,
        ge=0,
        lt=0.5,
        description="Label smoothing (conservative DPO): the chance a pair is flipped.",
    )
    gamma: float = Field(default=0.0, ge=0, le=0, description="Must be 0: DPO has no reward margin target.")


# -- requests ----------------------------------------------------------------------------------------------


JobUuid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Your id for the job (unique).",
    ),
]
CheckpointDir = Annotated[
    str | None, Field(description="Where checkpoints go (absent: the provider's state directory).")
]


class SupervisedFineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_uuid: JobUuid
    model: str = Field(
        min_length=1,
        description="The model to train: a registered model id whose files are local, or a directory "
        "holding a Hugging Face checkpoint.",
    )
    training_config: TrainingConfig
    algorithm_config: AlgorithmConfig | None = Field(
        default=None, description="LoRA (type LoRA); absent: every weight is trained (full fine-tuning)."
    )
    checkpoint_dir: CheckpointDir = None
    hyperparam_search_config: dict[str, Any] = Field(
        default_factory=dict, description="Not supported: leave empty (one run per job)."
    )
    logger_config: dict[str, Any] = Field(
        default_factory=dict, description="Accepted and ignored: metrics are on the job's status."
    )


class PreferenceOptimizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_uuid: JobUuid
    finetuned_model: str = Field(
        min_length=1,
        description="The model to align (the policy, and the frozen reference): a registered model id whose "
        "files are local, or a directory holding a Hugging Face checkpoint.",
    )
    algorithm_config: DPOAlignmentConfig
    training_config: TrainingConfig
    checkpoint_dir: CheckpointDir = None
    lora_config: LoraFinetuningConfig | None = Field(
        default=None,
        description="Lamina: train LoRA adapters instead of every weight (send with extra_body).",
    )
    hyperparam_search_config: dict[str, Any] = Field(
        default_factory=dict, description="Not supported: leave empty (one run per job)."
    )
    logger_config: dict[str, Any] = Field(
        default_factory=dict, description="Accepted and ignored: metrics are on the job's status."
    )


class JobUuidRequest(BaseModel):
    job_uuid: str = Field(min_length=1, description="The job_uuid the job was submitted with.")


# -- responses ---------------------------------------------------------------------------------------------


class PostTrainingMetric(BaseModel):
    epoch: int
    train_loss: float
    validation_loss: float | None = None
    perplexity: float | None = None


class Checkpoint(BaseModel):
    """A saved model: a Hugging Face checkpoint directory (LoRA: the adapter, naming its base model)."""

    identifier: str
    created_at: datetime
    epoch: int
    post_training_job_id: str
    path: str
    training_metrics: PostTrainingMetric | None = None
    step: int | None = Field(default=None, description="The optimizer step it was saved at.")


class PostTrainingJob(BaseModel):
    job_uuid: str


class ListPostTrainingJobsResponse(BaseModel):
    data: list[PostTrainingJob]


class StepMetric(BaseModel):
    step: int
    epoch: float | None = None
    loss: float | None = None
    reward_margin: float | None = Field(default=None, description="DPO: chosen minus rejected reward.")
    reward_accuracy: float | None = Field(default=None, description="DPO: share of pairs whose chosen wins.")


class PostTrainingJobStatusResponse(BaseModel):
    job_uuid: str
    status: JobStatus
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    resources_allocated: dict[str, Any] | None = None
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    # Lamina's additions
    progress: JobProgress = Field(default_factory=JobProgress, description="Optimizer steps done / in all.")
    metrics: list[StepMetric] = Field(default_factory=list, description="Every logged step's loss, in order.")
    error: str | None = None
    lamina_job_id: str | None = Field(default=None, description="The job system's id: GET /v1/jobs/{id}.")


class PostTrainingJobArtifactsResponse(BaseModel):
    job_uuid: str
    checkpoints: list[Checkpoint] = Field(default_factory=list)


# -- the API -----------------------------------------------------------------------------------------------


class PostTraining(Protocol):
    @webmethod(
        "POST",
        "/v1/post-training/supervised-fine-tune",
        request=SupervisedFineTuneRequest,
        response=PostTrainingJob,
        access=creates("job", "job_uuid", uses=(("model", "model"),)),
    )
    async def supervised_fine_tune(self, request: SupervisedFineTuneRequest) -> PostTrainingJob:
        """Fine-tune a model on a dataset (full or LoRA) as a job; answers at once with the job's id."""
        ...

    @webmethod(
        "POST",
        "/v1/post-training/preference-optimize",
        request=PreferenceOptimizeRequest,
        response=PostTrainingJob,
        access=creates("job", "job_uuid", uses=(("model", "finetuned_model"),)),
    )
    async def preference_optimize(self, request: PreferenceOptimizeRequest) -> PostTrainingJob:
        """Align a model with DPO on a preference dataset (prompt, chosen, rejected) as a job."""
        ...

    @webmethod(
        "GET",
        "/v1/post-training/jobs",
        request=Empty,
        response=ListPostTrainingJobsResponse,
        access=lists("job", "job_uuid"),
    )
    async def get_training_jobs(self, request: Empty) -> ListPostTrainingJobsResponse:
        """List training jobs, newest first."""
        ...

    @webmethod(
        "GET",
        "/v1/post-training/job/status",
        request=JobUuidRequest,
        response=PostTrainingJobStatusResponse,
        access=reads("job", "job_uuid"),
    )
    async def get_training_job_status(self, request: JobUuidRequest) -> PostTrainingJobStatusResponse:
        """A training job's status, progress, per-step metrics and checkpoints."""
        ...

    @webmethod(
        "POST",
        "/v1/post-training/job/cancel",
        request=JobUuidRequest,
        response=None,
        access=updates("job", "job_uuid"),
    )
    async def cancel_training_job(self, request: JobUuidRequest) -> None:
        """Cancel a training job: training stops at the next step; saved checkpoints stay."""
        ...

    @webmethod(
        "GET",
        "/v1/post-training/job/artifacts",
        request=JobUuidRequest,
        response=PostTrainingJobArtifactsResponse,
        access=reads("job", "job_uuid"),
    )
    async def get_training_job_artifacts(self, request: JobUuidRequest) -> PostTrainingJobArtifactsResponse:
        """A training job's checkpoints: their paths, epochs and metrics."""
        ...


# -- what a provider implements ------------------------------------------------------------------------------


class PostTrainingProvider(Protocol):
    """A PostTraining provider: trains models as jobs of the job system.

    Contract:

    * ``supervised_fine_tune`` and ``preference_optimize`` check the request (model files found,
      dataset registered, settings supported: a 400 naming the field otherwise), submit a job and
      answer at once; a ``job_uuid`` already used is a 409.
    * Training never blocks the event loop (a thread or a process); the job's progress is optimizer
      steps; cancelling stops the training at its next step; a restart resumes from the last saved
      trainer state, or fails the job with the reason.
    * ``get_training_job_status`` / ``get_training_job_artifacts`` / ``cancel_training_job``: an unknown
      ``job_uuid`` is a 404 naming it; cancelling a finished job is a 409 naming its status.
    """

    async def supervised_fine_tune(self, request: SupervisedFineTuneRequest) -> PostTrainingJob: ...

    async def preference_optimize(self, request: PreferenceOptimizeRequest) -> PostTrainingJob: ...

    async def get_training_jobs(self) -> ListPostTrainingJobsResponse: ...

    async def get_training_job_status(self, job_uuid: str) -> PostTrainingJobStatusResponse: ...

    async def cancel_training_job(self, job_uuid: str) -> None: ...

    async def get_training_job_artifacts(self, job_uuid: str) -> PostTrainingJobArtifactsResponse: ...
