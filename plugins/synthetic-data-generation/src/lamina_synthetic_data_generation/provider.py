"""The inline::reference synthetic data generation provider.

``/generate`` plans the generation (prompts from ``dialogs``, the models, the settings), runs each
prompt through ``generation.generate_prompt`` in this request (at most ``max_inline_candidates``
candidates) and answers the kept rows with statistics, saving them as a dataset when asked.
``/jobs`` registers the dataset, then runs the same prompts as a job (kind ``JOB_KIND``) through the
job's executor (``context.map``), appending each prompt's kept rows as it finishes. A resumed job
skips the prompts its checkpoint lists as done and those whose rows the dataset already holds (a
prompt's rows are appended in one call, before the checkpoint names it), so no row is written twice.
"""

from __future__ import annotations

import asyncio
import statistics as stats_module
from typing import Any

import structlog

from lamina.apis.common import content_to_text
from lamina.apis.datasets import AppendRowsRequest, RegisterDatasetRequest, RowsDataSource
from lamina.apis.jobs import Job
from lamina.apis.synthetic_data_generation import (
    SyntheticDataGenerationJobRequest,
    SyntheticDataGenerationRequest,
    SyntheticDataGenerationResponse,
)
from lamina.errors import BadRequestError, ServiceUnavailableError, UpstreamError
from lamina.jobs import JobContext
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina_synthetic_data_generation.config import ReferenceSyntheticDataGenerationConfig
from lamina_synthetic_data_generation.generation import WORK_FUNCTION, generate_prompt

log = structlog.get_logger(__name__)

JOB_KIND = "synthetic_data_generation.generate"
PURPOSE = "post-training/messages"


async def create_provider(
    config: ReferenceSyntheticDataGenerationConfig, deps: dict[Api, Any], context: ProviderContext
) -> ReferenceSyntheticDataGenerationProvider:
    return ReferenceSyntheticDataGenerationProvider(config, deps, context)


class ReferenceSyntheticDataGenerationProvider(ProviderBase):
    def __init__(
        self, config: ReferenceSyntheticDataGenerationConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        super().__init__(context)
        self.config = config
        self.apis = {api: router for api, router in deps.items() if router is not None}
        self.datasetio = self.apis.get(Api.datasetio)

    async def initialize(self) -> None:
        if self.context.jobs is not None:
            self.context.jobs.register(JOB_KIND, self._run_job, resumable=True, max_concurrent=2)

    # -- the routes ----------------------------------------------------------------------------

    async def synthetic_data_generate(
        self, request: SyntheticDataGenerationRequest
    ) -> SyntheticDataGenerationResponse:
        items = self._plan(request)
        candidates = len(items) * items[0]["num_candidates"]
        if candidates > self.config.max_inline_candidates:
            raise BadRequestError(
                f"dialogs: {len(items)} prompts x {items[0]['num_candidates']} candidates = {candidates} "
                f"candidates, more than one request generates (max_inline_candidates: "
                f"{self.config.max_inline_candidates}); POST the same body with a dataset_id to "
                f"/v1/synthetic-data-generation/jobs, or send fewer dialogs",
                param="dialogs",
            )
        if request.dataset_id is not None:
            self._need_datasetio("dataset_id")
        gate = asyncio.Semaphore(self._prompts_at_once(items))

        async def one(item: dict[str, Any]) -> dict[str, Any]:
            async with gate:
                return await generate_prompt(self.apis, item)

        results = await asyncio.gather(*(one(item) for item in items))
        summary = self._statistics(items, results)
        if summary["candidates"] and summary["generation_failures"] == summary["candidates"]:
            raise UpstreamError(
                self.provider_id,
                f"model '{items[0]['model']}' failed every one of the {summary['candidates']} candidates "
                f"(the first: {summary['generation_error']})",
            )
        rows = [row for result in results for row in result["rows"]]
        if request.dataset_id is not None:
            await self.datasetio.datasets.register_dataset(
                RegisterDatasetRequest(
                    dataset_id=request.dataset_id,
                    purpose=PURPOSE,
                    source=RowsDataSource(rows=rows),
                    metadata=self._dataset_metadata(items[0]),
                )
            )
            summary["dataset_id"] = request.dataset_id
        return SyntheticDataGenerationResponse(synthetic_data=rows, statistics=summary)

    async def synthetic_data_generate_job(self, request: SyntheticDataGenerationJobRequest) -> Job:
        jobs = self.context.jobs
        if jobs is None:
            raise ServiceUnavailableError("synthetic data generation jobs need the server's job manager")
        items = self._plan(request)
        self._need_datasetio("dataset_id")
        # Registered now, empty: a clash with an existing dataset is the caller's 409 before any work.
        await self.datasetio.datasets.register_dataset(
            RegisterDatasetRequest(
                dataset_id=request.dataset_id,
                purpose=PURPOSE,
                source=RowsDataSource(rows=[]),
                metadata=self._dataset_metadata(items[0]),
            )
        )
        params = {"request": request.model_dump(mode="json")}
        job = await jobs.submit(JOB_KIND, params, total=len(items))
        log.info("sdg_job_submitted", job_id=job.id, prompts=len(items), dataset_id=request.dataset_id)
        return job

    # -- the job -------------------------------------------------------------------------------

    async def _run_job(self, ctx: JobContext) -> dict[str, Any]:
        request = SyntheticDataGenerationJobRequest.model_validate(ctx.params["request"])
        items = self._plan(request)
        saved = ctx.checkpoint or {}
        done: set[int] = set(saved.get("done", []))
        results: list[dict[str, Any]] = list(saved.get("results", []))
        recovered = 0
        async for page in self.datasetio.pages(request.dataset_id):
            for row in page:
                index = row.get("prompt_index")
                if isinstance(index, int) and index not in done:
                    done.add(index)
                    recovered += 1  # appended before a stop, not yet in the checkpoint
        pending = [item for item in items if item["prompt_index"] not in done]
        log.info("sdg_job_running", job_id=ctx.job_id, prompts=len(items), pending=len(pending))
        await ctx.progress(len(done), len(items))

        async def finished(_: int, result: dict[str, Any]) -> None:
            if result["rows"]:
                await self.datasetio.append_rows(
                    AppendRowsRequest(dataset_id=request.dataset_id, rows=result["rows"])
                )
            done.add(result["prompt_index"])
            results.append({"prompt_index": result["prompt_index"], "stats": result["stats"]})
            await ctx.progress(len(done), len(items), checkpoint={"done": sorted(done), "results": results})

        await ctx.map(WORK_FUNCTION, pending, concurrency=self._prompts_at_once(items), on_result=finished)
        summary = self._statistics(items, results)
        summary["recovered_prompts"] = recovered
        summary["dataset_id"] = request.dataset_id
        return summary

    # -- planning ------------------------------------------------------------------------------

    def _plan(self, request: SyntheticDataGenerationRequest) -> list[dict[str, Any]]:
        """One work item per prompt of ``dialogs``; a 400 naming the field for what cannot run."""
        model = request.model or self.config.model
        if not model:
            raise BadRequestError(
                "model: no model named; send the registered model that should answer, or set `model` in "
                "the provider's config",
                param="model",
            )
        prompts: list[tuple[str | None, str]] = []
        system: str | None = None
        for i, message in enumerate(request.dialogs):
            text = content_to_text(message.content).strip()
            if message.role == "system":
                system = text or None
            elif message.role == "user":
                if not text:
                    raise BadRequestError(f"dialogs[{i}].content: the prompt is empty", param=f"dialogs[{i}]")
                prompts.append((system, text))
            else:
                raise BadRequestError(
                    f"dialogs[{i}].role: '{message.role}' messages are not prompts; send user messages (and "
                    f"system messages for the instructions before them)",
                    param=f"dialogs[{i}].role",
                )
        if not prompts:
            raise BadRequestError(
                "dialogs: no user message; each user message is one prompt", param="dialogs"
            )
        cfg = self.config
        settings = {
            "model": model,
            "judge_model": cfg.judge_model or model,
            "num_candidates": request.num_candidates or cfg.num_candidates,
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
            "seed": request.seed if request.seed is not None else cfg.seed,
            "judge_scoring_fn": cfg.judge_scoring_fn,
            "judge_prompt_template": cfg.judge_prompt_template,
            "judge_score_regexes": cfg.judge_score_regexes,
            "max_concurrent": cfg.max_concurrent,
            "filtering_function": request.filtering_function,
        }
        settings["filter"] = {
            "top_k": cfg.top_k,
            "top_p": cfg.top_p,
            "random_keep": cfg.random_keep,
            "sigmoid_center": cfg.sigmoid_center,
            "sigmoid_scale": cfg.sigmoid_scale,
            "seed": settings["seed"],
        }
        return [
            {"prompt_index": i, "system": system, "text": text, **settings}
            for i, (system, text) in enumerate(prompts)
        ]

    def _prompts_at_once(self, items: list[dict[str, Any]]) -> int:
        return max(1, self.config.max_concurrent // items[0]["num_candidates"])

    def _need_datasetio(self, param: str) -> None:
        if self.datasetio is None:
            raise BadRequestError(
                f"{param}: saving a dataset needs a DatasetIO provider; add one under providers.datasetio "
                f"(inline::localfs)",
                param=param,
            )

    @staticmethod
    def _dataset_metadata(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "generated_by": "synthetic_data_generation",
            "model": item["model"],
            "judge_model": item["judge_model"],
            "filtering_function": item["filtering_function"],
        }

    @staticmethod
    def _statistics(items: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [score for result in results for score in result["stats"]["scores"]]
        first = items[0]
        return {
            "prompts": len(items),
            "prompts_done": len(results),
            "candidates": sum(r["stats"]["candidates"] for r in results),
            "generation_failures": sum(r["stats"]["generation_failures"] for r in results),
            "generation_error": next(
                (r["stats"]["generation_error"] for r in results if r["stats"].get("generation_error")), None
            ),
            "judge_failures": sum(r["stats"]["judge_failures"] for r in results),
            "judged": len(scores),
            "kept": sum(r["stats"]["kept"] for r in results),
            "score_mean": stats_module.fmean(scores) if scores else None,
            "score_min": min(scores) if scores else None,
            "score_max": max(scores) if scores else None,
            "filtering_function": first["filtering_function"],
            "model": first["model"],
            "judge_model": first["judge_model"],
        }
