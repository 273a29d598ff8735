"""The inline::huggingface post-training provider: SFT (full or LoRA) and DPO as jobs of the job system.

A request is checked at once (model files, dataset, supported settings: a 400 naming the field), its
``job_uuid`` claimed in the provider's kvstore (``job:<job_uuid>`` -> the job system's id; insert-if-
missing, so a second use is a 409 on every replica), and a job of kind ``post_training.sft`` or
``post_training.dpo`` submitted. The job's handler reads the dataset's rows through DatasetIO, then
trains (``lamina_post_training_huggingface.training``) off the event loop: in a child process
(``runs_in: subprocess``, the default: one child per server, reused by its jobs; ``training_process``),
in a thread of the server (``runs_in: thread``), or in a Ray actor when the job executor is ``ray``
(``training_on_ray``).

What the trainer reports lands in the job record: progress is optimizer steps done / in all; the
job's checkpoint holds every logged step's metrics, the checkpoints saved (one per epoch, each a
servable directory) and the trainer state to resume from. Cancel sets a flag the trainer reads before
and after every step, so training stops within a step. A server that stops (or dies) mid-job hands the
job back; the next run resumes from the last saved checkpoint (optimizer, scheduler and data order
included) or, with none saved yet, starts again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from lamina.apis.datasets import IterRowsRequest
from lamina.apis.jobs import Job, JobProgress
from lamina.apis.post_training import (
    Checkpoint,
    ListPostTrainingJobsResponse,
    PostTrainingJob,
    PostTrainingJobArtifactsResponse,
    PostTrainingJobStatusResponse,
    PostTrainingMetric,
    PreferenceOptimizeRequest,
    StepMetric,
    SupervisedFineTuneRequest,
    TrainingConfig,
)
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.kvstore import open_kvstore
from lamina_post_training_huggingface.config import HuggingFacePostTrainingConfig
from lamina_post_training_huggingface.training_process import TrainingWorker

log = structlog.get_logger(__name__)

SFT_KIND = "post_training.sft"
DPO_KIND = "post_training.dpo"
_PAGE = 1000
_MAX_METRICS = 5000  # step records kept in the job's checkpoint (the oldest are dropped beyond)


async def create_provider(
    config: HuggingFacePostTrainingConfig, deps: dict[Any, Any], context: ProviderContext
) -> HuggingFacePostTrainingProvider:
    return HuggingFacePostTrainingProvider(config, deps, context)


class JobReport:
    """What training reports, kept in the job's checkpoint and sent as its progress (in the event loop)."""

    def __init__(self, ctx: Any, state: dict[str, Any]) -> None:
        self.ctx = ctx
        self.state = state

    async def logged(self, step: int, total: int, metrics: dict[str, float]) -> None:
        if "loss" not in metrics and "rewards/margins" not in metrics:
            return  # an evaluation's record: its loss goes with the checkpoint
        record = {"step": step, "epoch": metrics.get("epoch"), "loss": metrics.get("loss")}
        if "rewards/margins" in metrics:
            record["reward_margin"] = metrics["rewards/margins"]
            record["reward_accuracy"] = metrics.get("rewards/accuracies")
        self.state["metrics"] = (self.state["metrics"] + [record])[-_MAX_METRICS:]
        await self._send(step, total, flush=False)

    async def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict[str, float]) -> None:
        self.state["checkpoints"].append(
            {"step": step, "epoch": epoch, "path": path, "created_at": time.time(), "metrics": metrics}
        )
        self.state["resume_from"] = path
        await self._send(step, total, flush=True)

    async def _send(self, step: int, total: int, *, flush: bool) -> None:
        snapshot = json.loads(json.dumps(self.state))
        await self.ctx.progress(step, total, checkpoint=snapshot, flush=flush)


class _ThreadEvents:
    """``runs_in: thread``: the training thread's link to the job (a stop flag; reports sent to the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, report: JobReport) -> None:
        self.loop = loop
        self.report = report
        self.stop = threading.Event()

    def stop_requested(self) -> bool:
        return self.stop.is_set()

    def logged(self, step: int, total: int, metrics: dict[str, float]) -> None:
        self._wait(self.report.logged(step, total, metrics))

    def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict[str, float]) -> None:
        self._wait(self.report.saved(step, total, path, epoch, metrics))

    def _wait(self, coroutine: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            future.result(timeout=60)
        except BaseException:  # JobLost (cancelled, taken over) or the loop going away: stop training
            self.stop.set()


class HuggingFacePostTrainingProvider(ProviderBase):
    def __init__(
        self, config: HuggingFacePostTrainingConfig, deps: dict[Any, Any], context: ProviderContext
    ) -> None:
        super().__init__(context)
        self.config = config
        self.datasetio = deps[Api.datasetio]
        self.inference = deps.get(Api.inference)
        self.store: Any = None
        self.worker = TrainingWorker()  # runs_in: subprocess (the child starts with the first job)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def initialize(self) -> None:
        kv = self.config.kvstore or SqliteKVStoreConfig(
            db_path=str(self.context.state_dir / "post_training.db")
        )
        self.store = await open_kvstore(kv)
        jobs = self.context.jobs
        if jobs is not None:
            # One training at a time per process: two would share the same cores and memory.
            jobs.register(SFT_KIND, self._run_job, resumable=True, max_concurrent=1)
            jobs.register(DPO_KIND, self._run_job, resumable=True, max_concurrent=1)

    async def shutdown(self) -> None:
        await self.worker.close()
        if self.store is not None:
            await self.store.close()

    def _jobs(self) -> Any:
        if self.context.jobs is None:
            raise BadRequestError(
                "post training needs the server's job manager, which this server does not have"
            )
        return self.context.jobs

    # -- checks --------------------------------------------------------------------------------------

    async def _model_path(self, model: str, field: str) -> str:
        found = await asyncio.to_thread(_checkpoint_dir, model)
        if found == "":
            raise BadRequestError(
                f"{field}: directory {model} holds no config.json; name a Hugging Face checkpoint directory",
                param=field,
            )
        if found:
            return found
        registered = None
        models = getattr(self.inference, "models", None)
        if models is not None:
            try:
                registered = await models.get(model)
            except NotFoundError:
                registered = None
        if registered is not None:
            meta = registered.metadata or {}
            for value in (registered.provider_resource_id, meta.get("path"), meta.get("model_path")):
                found = await asyncio.to_thread(_checkpoint_dir, str(value)) if value else None
                if found:
                    return found
            raise BadRequestError(
                f"{field}: model '{model}' is registered, but its files are not local (neither its "
                "provider_model_id nor metadata.path is a checkpoint directory); nothing is downloaded: "
                "name a local Hugging Face checkpoint directory instead",
                param=field,
            )
        raise BadRequestError(
            f"{field}: '{model}' is neither a registered model nor a directory; name a local Hugging Face "
            "checkpoint directory (with config.json) or a registered model whose files are local",
            param=field,
        )

    def _check_training(self, tc: TrainingConfig, extra: dict[str, Any]) -> None:
        dc = tc.data_config
        if dc.packed:
            raise BadRequestError(
                "training_config.data_config.packed: packing is not supported; set it to false",
                param="training_config.data_config.packed",
            )
        eff = tc.efficiency_config
        if eff is not None:
            for name in ("enable_activation_offloading", "memory_efficient_fsdp_wrap", "fsdp_cpu_offload"):
                if getattr(eff, name):
                    raise BadRequestError(
                        f"training_config.efficiency_config.{name} is not supported (one device, no FSDP); "
                        "set it to false",
                        param=f"training_config.efficiency_config.{name}",
                    )
        if (tc.dtype or "bf16") not in ("bf16", "fp32", "float32", "bfloat16"):
            raise BadRequestError(
                f"training_config.dtype '{tc.dtype}' is not supported here; use bf16 or fp32",
                param="training_config.dtype",
            )
        if extra.get("hyperparam_search_config"):
            raise BadRequestError(
                "hyperparam_search_config is not supported (one run per job); send {}",
                param="hyperparam_search_config",
            )

    async def _check_dataset(self, dataset_id: str, field: str) -> None:
        try:
            await self.datasetio.iterrows(IterRowsRequest(dataset_id=dataset_id, start_index=0, limit=1))
        except NotFoundError as exc:
            raise BadRequestError(f"{field}: {exc.message}", param=field) from None

    async def _claim(self, job_uuid: str) -> None:
        if not await self.store.add(
            f"job:{job_uuid}", json.dumps({"job_id": None, "created_at": time.time()})
        ):
            raise ConflictError(f"job_uuid '{job_uuid}' is taken by another training job; choose a new one")

    async def _submit(self, kind: str, job_uuid: str, params: dict[str, Any]) -> PostTrainingJob:
        await self._claim(job_uuid)
        try:
            job = await self._jobs().submit(kind, params)
        except BaseException:
            await self.store.delete(f"job:{job_uuid}")
            raise
        await self.store.set(f"job:{job_uuid}", json.dumps({"job_id": job.id, "created_at": job.created_at}))
        log.info("post_training_submitted", job_uuid=job_uuid, job_id=job.id, kind=kind)
        return PostTrainingJob(job_uuid=job_uuid)

    def _output_dir(self, job_uuid: str, requested: str | None) -> str:
        if requested:
            return str(Path(requested).expanduser().resolve() / job_uuid)
        root = (
            Path(self.config.checkpoint_root)
            if self.config.checkpoint_root
            else self.context.state_dir / "post_training"
        )
        return str((root / job_uuid).resolve())

    # -- the API -------------------------------------------------------------------------------------

    async def supervised_fine_tune(self, request: SupervisedFineTuneRequest) -> PostTrainingJob:
        tc = request.training_config
        self._check_training(tc, {"hyperparam_search_config": request.hyperparam_search_config})
        algorithm = request.algorithm_config
        if algorithm is not None and algorithm.type == "QAT":
            raise BadRequestError(
                "algorithm_config: QAT is not supported by inline::huggingface; use LoRA (type LoRA) or omit "
                "algorithm_config for full fine-tuning",
                param="algorithm_config.type",
            )
        if algorithm is not None and algorithm.quantize_base:
            raise BadRequestError(
                "algorithm_config.quantize_base (QLoRA) needs a GPU with bitsandbytes; set it to false",
                param="algorithm_config.quantize_base",
            )
        model_path = await self._model_path(request.model, "model")
        await self._check_dataset(tc.data_config.dataset_id, "training_config.data_config.dataset_id")
        if tc.data_config.validation_dataset_id:
            await self._check_dataset(
                tc.data_config.validation_dataset_id, "training_config.data_config.validation_dataset_id"
            )
        params = {
            "job_uuid": request.job_uuid,
            "method": "sft",
            "model": request.model,
            "model_path": model_path,
            "output_dir": self._output_dir(request.job_uuid, request.checkpoint_dir),
            "training_config": tc.model_dump(mode="json"),
            "lora": algorithm.model_dump(mode="json") if algorithm is not None else None,
        }
        return await self._submit(SFT_KIND, request.job_uuid, params)

    async def preference_optimize(self, request: PreferenceOptimizeRequest) -> PostTrainingJob:
        tc = request.training_config
        self._check_training(tc, {"hyperparam_search_config": request.hyperparam_search_config})
        if request.lora_config is not None and request.lora_config.apply_lora_to_output:
            raise BadRequestError(
                "lora_config.apply_lora_to_output: DPO computes log-probabilities from lm_head's weight, "
                "so an adapter there would never train; set it to false",
                param="lora_config.apply_lora_to_output",
            )
        model_path = await self._model_path(request.finetuned_model, "finetuned_model")
        await self._check_dataset(tc.data_config.dataset_id, "training_config.data_config.dataset_id")
        if tc.data_config.validation_dataset_id:
            await self._check_dataset(
                tc.data_config.validation_dataset_id, "training_config.data_config.validation_dataset_id"
            )
        params = {
            "job_uuid": request.job_uuid,
            "method": "dpo",
            "model": request.finetuned_model,
            "model_path": model_path,
            "output_dir": self._output_dir(request.job_uuid, request.checkpoint_dir),
            "training_config": tc.model_dump(mode="json"),
            "lora": request.lora_config.model_dump(mode="json") if request.lora_config else None,
            "dpo": request.algorithm_config.model_dump(mode="json"),
        }
        return await self._submit(DPO_KIND, request.job_uuid, params)

    async def _record(self, job_uuid: str) -> tuple[Job, dict[str, Any]]:
        raw = await self.store.get(f"job:{job_uuid}")
        entry = json.loads(raw) if raw else None
        if not entry or not entry.get("job_id"):
            raise NotFoundError(
                f"no training job has job_uuid '{job_uuid}' (GET /v1/post-training/jobs lists them)"
            )
        job = await self._jobs().get(entry["job_id"])
        return job, job.checkpoint or {}

    async def get_training_jobs(self) -> ListPostTrainingJobsResponse:
        items = await self.store.items_with_prefix("job:")
        entries = [(json.loads(value), key.removeprefix("job:")) for key, value in items]
        entries = [(e.get("created_at") or 0, uuid) for e, uuid in entries if e.get("job_id")]
        return ListPostTrainingJobsResponse(
            data=[PostTrainingJob(job_uuid=uuid) for _, uuid in sorted(entries, reverse=True)]
        )

    async def get_training_job_status(self, job_uuid: str) -> PostTrainingJobStatusResponse:
        job, state = await self._record(job_uuid)
        return PostTrainingJobStatusResponse(
            job_uuid=job_uuid,
            status=job.status,
            scheduled_at=_time(job.created_at),
            started_at=_time(job.started_at),
            completed_at=_time(job.completed_at),
            resources_allocated={"device": self.config.device, "method": job.params.get("method")},
            checkpoints=await asyncio.to_thread(_checkpoints, job_uuid, job, state),
            progress=JobProgress(done=job.progress.done, total=job.progress.total),
            metrics=[StepMetric(**m) for m in state.get("metrics", [])],
            error=job.error,
            lamina_job_id=job.id,
        )

    async def cancel_training_job(self, job_uuid: str) -> None:
        job, _ = await self._record(job_uuid)
        await self._jobs().cancel(job.id)

    async def get_training_job_artifacts(self, job_uuid: str) -> PostTrainingJobArtifactsResponse:
        job, state = await self._record(job_uuid)
        return PostTrainingJobArtifactsResponse(
            job_uuid=job_uuid, checkpoints=await asyncio.to_thread(_checkpoints, job_uuid, job, state)
        )

    # -- the job ---------------------------------------------------------------------------------------

    async def _rows(self, dataset_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await self.datasetio.iterrows(
                IterRowsRequest(dataset_id=dataset_id, start_index=len(rows), limit=_PAGE)
            )
            rows.extend(page.data)
            if not page.has_more or not page.data:
                return rows

    async def _run_job(self, ctx: Any) -> dict[str, Any]:
        from lamina_post_training_huggingface.training import Plan

        params = ctx.params
        dc = params["training_config"]["data_config"]
        rows = await self._rows(dc["dataset_id"])
        if not rows:
            raise ValueError(f"dataset '{dc['dataset_id']}' has no rows")
        validation = (
            await self._rows(dc["validation_dataset_id"]) if dc.get("validation_dataset_id") else None
        )
        plan = Plan(
            method=params["method"],
            model_path=params["model_path"],
            output_dir=params["output_dir"],
            training_config=params["training_config"],
            lora=params.get("lora"),
            dpo=params.get("dpo"),
        )
        state = dict(ctx.checkpoint or {})
        state.setdefault("metrics", [])
        state.setdefault("checkpoints", [])
        resume_from = state.get("resume_from")
        if resume_from and not await asyncio.to_thread(Path(resume_from).is_dir):
            raise RuntimeError(
                f"cannot resume: the checkpoint {resume_from} this job saved is gone; submit the job again"
            )
        if ctx.attempt > 1:
            # Steps after the last saved checkpoint are trained again: drop their old records.
            saved_step = state["checkpoints"][-1]["step"] if resume_from and state["checkpoints"] else 0
            state["metrics"] = [m for m in state["metrics"] if m["step"] <= saved_step]
            state["resumed_at_steps"] = [*state.get("resumed_at_steps", []), saved_step]
        _, total = plan.steps(len(rows))
        await ctx.progress(ctx.done if resume_from else 0, total, checkpoint=state, flush=True)
        report = JobReport(ctx, state)
        log.info(
            "post_training_started",
            job_uuid=params["job_uuid"],
            resume_from=resume_from,
            steps=total,
            runs_in="ray" if ctx.executor_name == "ray" else self.config.runs_in,
        )
        if ctx.executor_name == "ray":
            from lamina_post_training_huggingface.training_on_ray import train_on_ray

            summary = await train_on_ray(plan, rows, validation, self.config, report, resume_from)
        elif self.config.runs_in == "subprocess":
            summary = await self.worker.train(plan, rows, validation, self.config, report, resume_from)
        else:
            summary = await self._train_in_thread(plan, rows, validation, report, resume_from)
        if summary.get("stopped"):
            raise asyncio.CancelledError("training stopped: the job was cancelled or taken over")
        await ctx.progress(summary["steps"], total, checkpoint=state, flush=True)
        last = state["checkpoints"][-1]["path"] if state["checkpoints"] else None
        result = {"steps": summary["steps"], "checkpoint": last}
        return result | ({"ran_on": summary["ran_on"]} if "ran_on" in summary else {})

    async def _train_in_thread(
        self, plan: Any, rows: list[dict], validation: list[dict] | None, report: JobReport, resume_from: Any
    ) -> dict[str, Any]:
        from lamina_post_training_huggingface.training import train

        events = _ThreadEvents(asyncio.get_running_loop(), report)
        work = asyncio.ensure_future(
            asyncio.to_thread(train, plan, rows, validation, self.config, events, resume_from)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            events.stop.set()  # the trainer stops before its next step; wait for it to let go of the files
            await asyncio.wait({work}, timeout=120)
            raise


def _checkpoint_dir(value: str) -> str | None:
    """The resolved directory when ``value`` is a checkpoint directory; "" for a directory without
    config.json; None when it is no directory."""
    path = Path(value).expanduser()
    if not path.is_dir():
        return None
    return str(path.resolve()) if (path / "config.json").is_file() else ""


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _checkpoints(job_uuid: str, job: Job, state: dict[str, Any]) -> list[Checkpoint]:
    """The saved checkpoints that still exist (save_total_limit deletes the oldest)."""
    model = str(job.params.get("model", "model")).rstrip("/").rsplit("/", 1)[-1]
    out = []
    for c in state.get("checkpoints", []):
        if not Path(c["path"]).is_dir():
            continue
        metrics = c.get("metrics") or {}
        loss = metrics.get("train_loss")
        training_metrics = None
        if loss is not None and loss == loss:  # not NaN
            import math

            training_metrics = PostTrainingMetric(
                epoch=c["epoch"],
                train_loss=loss,
                validation_loss=metrics.get("validation_loss"),
                perplexity=math.exp(min(loss, 50.0)),
            )
        out.append(
            Checkpoint(
                identifier=f"{model}-{job.params.get('method', 'sft')}-{job_uuid}-epoch-{c['epoch']}",
                created_at=datetime.fromtimestamp(c["created_at"], tz=UTC),
                epoch=c["epoch"],
                post_training_job_id=job_uuid,
                path=c["path"],
                training_metrics=training_metrics,
                step=c["step"],
            )
        )
    return out
