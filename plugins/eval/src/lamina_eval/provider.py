"""The inline::meta-reference eval provider: candidates answer benchmark rows, Scoring judges them.

``evaluate_rows`` answers the rows it is given at once (``max_concurrency`` rows in flight) and scores
them. ``run_eval`` submits a job of kind ``eval.run`` to the server's job manager (``lamina.jobs``) and
answers Llama Stack's ``Job``: its id is the benchmark's next number ("0", "1", ...), kept in the
provider's kvstore beside the job manager's id (claimed with the store's insert-if-missing, so server
processes sharing the store never hand out one number twice). The job:

1. counts the rows to answer (``num_examples``, else the dataset's rows, read a page at a time);
2. from its checkpoint on, reads ``chunk_rows`` rows, answers them, scores them through the Scoring
   API (dataset columns plus the generation; the benchmark's functions, the config's
   ``scoring_params``), saves generations and score rows in the kvstore
   (``eval:gen:<job>:<first row>``), then moves the checkpoint past them (progress = rows answered /
   rows to answer); the next chunks are answered meanwhile (``_generate``). A server killed mid-run
   resumes at the checkpoint: rows of saved chunks are never sent to the candidate again; only the
   chunks in flight at the kill (1 + max_concurrency / chunk_rows of them) are answered twice;
3. aggregates every chunk's score rows (the Scoring API's aggregation functions) and saves the result.

``job_result`` reads the generations and scores back, after a restart too. A row the candidate cannot
answer (no input column) or score, or an upstream failure, fails the job, naming the row and the provider: a
benchmark's score over the rows that happened to work would be a different benchmark.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import structlog

from lamina.apis.agents import (
    AgentRequest,
    CreateAgentRequest,
)
from lamina.apis.datasets import IterRowsRequest
from lamina.apis.eval import Benchmark, BenchmarkConfig, EvalJob, EvaluateResponse
from lamina.apis.jobs import Job, JobStatus
from lamina.apis.scoring import LLMAsJudgeScoringFnParams, ScoreRequest, ScoringResult
from lamina.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
)
from lamina.jobs import JobContext
from lamina.providers import ProviderBase, ProviderContext
from lamina.routers.scoring_aggregation import Aggregator
from lamina.specs import Api
from lamina.storage.config import SqliteKVStoreConfig
from lamina.storage.kvstore import open_kvstore, prefix_end
from lamina_eval.answering import ANSWER_ROW, answer
from lamina_eval.config import MetaReferenceEvalConfig

log = structlog.get_logger(__name__)

JOB_KIND = "eval.run"
_PAGE = 500  # rows per DatasetIO page when counting the rows


async def create_provider(
    config: MetaReferenceEvalConfig, deps: dict[Any, Any], context: ProviderContext
) -> MetaReferenceEvalProvider:
    return MetaReferenceEvalProvider(config, deps, context)


class MetaReferenceEvalProvider(ProviderBase):
    def __init__(
        self, config: MetaReferenceEvalConfig, deps: dict[Any, Any], context: ProviderContext
    ) -> None:
        super().__init__(context)
        self.config = config
        self.inference = deps[Api.inference]
        self.scoring = deps[Api.scoring]
        self.datasetio = deps.get(Api.datasetio)
        self.agents = deps.get(Api.agents)
        # The routers a row's answer uses (lamina_eval.answering), as a work function would get them.
        self.apis = {api: router for api, router in deps.items() if router is not None}
        self.store: Any = None
        self.rows_generated = 0  # rows sent to a candidate by this process (for tests and benchmarks)

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        kv = self.config.kvstore or SqliteKVStoreConfig(db_path=str(self.context.state_dir / "eval_store.db"))
        self.store = await open_kvstore(kv)
        jobs = getattr(self.context, "jobs", None)
        if jobs is not None:
            jobs.register(JOB_KIND, self._run_job, resumable=True)

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.close()

    def _jobs(self) -> Any:
        jobs = getattr(self.context, "jobs", None)
        if jobs is None:
            raise BadRequestError(
                "run_eval needs the server's job manager, which this server does not have; run the eval "
                "with evaluate_rows instead"
            )
        return jobs

    # -- benchmarks (the routing table keeps them; nothing to prepare) -------------------------

    async def register_benchmark(self, benchmark: Benchmark) -> None:
        return None

    async def unregister_benchmark(self, benchmark: Benchmark) -> None:
        return None

    # -- checks before any row is sent ---------------------------------------------------------

    async def _check_candidate(self, config: BenchmarkConfig) -> None:
        candidate = config.eval_candidate
        if candidate.type == "agent":
            if self.agents is None:
                raise BadRequestError(
                    "eval_candidate is an agent, but no agents provider is configured; add one under "
                    "providers.agents (inline::meta-reference) or evaluate a model candidate",
                    param="benchmark_config.eval_candidate",
                )
            return
        models = getattr(self.inference, "models", None)
        if models is None:
            return
        try:
            model = await models.get(candidate.model)
        except NotFoundError:
            model = None
        if model is None or model.model_type != "llm":
            llms = [m.identifier for m in await models.list() if m.model_type == "llm"]
            raise BadRequestError(
                f"eval_candidate.model '{candidate.model}' is not a registered llm model; name one of: "
                f"{', '.join(llms) or 'none (register one with POST /v1/models)'}",
                param="benchmark_config.eval_candidate.model",
            )

    async def _check_judges(self, functions: list[str], config: BenchmarkConfig) -> None:
        """Each LLM-judge function's judge_model (the run's scoring_params, else the function's) must be
        a registered llm model: a 400 before any row is answered. The scoring provider checks it too,
        but only once the first rows are answered, and llm-as-judge::405b-simpleqa names a judge that
        few servers serve."""
        models = getattr(self.inference, "models", None)
        registered = getattr(self.scoring, "functions", None)
        if models is None or registered is None:
            return
        for fn_id in functions:
            params = config.scoring_params.get(fn_id) or (await registered.get(fn_id)).params
            if not isinstance(params, LLMAsJudgeScoringFnParams):
                continue
            try:
                model = await models.get(params.judge_model)
            except NotFoundError:
                model = None
            if model is not None and model.model_type == "llm":
                continue
            llms = [m.identifier for m in await models.list() if m.model_type == "llm"]
            raise BadRequestError(
                f"scoring function '{fn_id}' judges with judge_model '{params.judge_model}', which is not "
                f"a registered llm model; name this run's judge in benchmark_config.scoring_params "
                f"({{{fn_id}: {{type: llm_as_judge, judge_model: <model id>}}}}; the function's prompt "
                f"and regexes are kept), or register a model with id '{params.judge_model}'. Registered "
                f"llm models: {', '.join(llms) or 'none'}.",
                param=f"benchmark_config.scoring_params.{fn_id}.judge_model",
            )

    # -- generation ----------------------------------------------------------------------------

    async def _answer_rows(
        self,
        config: BenchmarkConfig,
        rows: list[dict[str, Any]],
        first: int,
        agent_id: str | None,
        gate: asyncio.Semaphore | None = None,
        context: JobContext | None = None,
    ) -> list[dict[str, Any]]:
        """Answers for ``rows`` (row ``first`` onwards), ``max_concurrency`` at once (``gate``: shared
        with other chunks of the same run); the first failure cancels the rows still waiting and is
        raised. In a job (``context``) each row goes to the job's executor (``context.map``: here, or a
        worker elsewhere); otherwise it is answered here."""
        gate = gate or asyncio.Semaphore(self.config.max_concurrency)
        config_json = config.model_dump(mode="json") if context is not None else None

        async def one(i: int, row: dict[str, Any]) -> dict[str, Any]:
            async with gate:
                self.rows_generated += 1
                if context is None:
                    return await answer(self.apis, config, row, first + i, agent_id)
                item = {"config": config_json, "row": row, "index": first + i, "agent_id": agent_id}
                answered: list[dict[str, Any]] = []

                async def keep(_: int, result: dict[str, Any]) -> None:
                    answered.append(result)

                # One row per map: the gate above keeps max_concurrency rows in flight across the chunks
                # being answered at once. An eval row does not wait for clients (a job's own pace).
                await context.map(ANSWER_ROW, [item], concurrency=1, on_result=keep, yield_to_clients=False)
                return answered[0]

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, row)) for i, row in enumerate(rows)]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _create_agent(self, config: BenchmarkConfig, job_id: str | None = None) -> str | None:
        """An agent candidate's agent for one run (None for a model candidate). A job's agent id is
        saved, so that the job's next attempt deletes it if this process dies before ``_delete_agent``."""
        if config.eval_candidate.type != "agent":
            return None
        request = CreateAgentRequest(agent_config=config.eval_candidate.config)
        created = await self.agents.create_agent(request)
        if job_id is not None:
            await self.store.set(_agent_key(job_id), created.agent_id)
        return created.agent_id

    async def _delete_agent(self, agent_id: str | None, job_id: str | None = None) -> None:
        """Delete a run's agent with its sessions and turns once the run ends, however it ends: what a
        user reads of them, each row's answer (and retrieved context), is in the run's generations.
        Never raises: a failed deletion is logged, and the run's own outcome stands."""
        if agent_id is None:
            return
        try:
            try:
                await self.agents.delete_agent(AgentRequest(agent_id=agent_id))
            except NotFoundError:
                pass  # deleted already (by a user, or by an earlier attempt)
            # Only while it names this agent: a process that took the job over has saved its own.
            if job_id is not None and await self.store.get(_agent_key(job_id)) == agent_id:
                await self.store.delete(_agent_key(job_id))
        except Exception as exc:
            log.warning("eval_agent_not_deleted", agent_id=agent_id, job_id=job_id, error=str(exc))

    async def _score(
        self, rows: list[dict[str, Any]], functions: list[str], config: BenchmarkConfig
    ) -> dict[str, ScoringResult]:
        request = ScoreRequest(
            input_rows=rows, scoring_functions={fn: config.scoring_params.get(fn) for fn in functions}
        )
        return (await self.scoring.score(request)).results

    # -- evaluate_rows -------------------------------------------------------------------------

    async def evaluate_rows(
        self,
        benchmark: Benchmark,
        rows: list[dict[str, Any]],
        scoring_functions: list[str],
        config: BenchmarkConfig,
    ) -> EvaluateResponse:
        await self._check_candidate(config)
        await self._check_judges(scoring_functions, config)
        agent_id = await self._create_agent(config)
        try:
            generations = await self._answer_rows(config, rows, 0, agent_id)
        finally:
            await asyncio.shield(self._delete_agent(agent_id))
        scored = [row | generation for row, generation in zip(rows, generations, strict=True)]
        scores = await self._score(scored, scoring_functions, config)
        return EvaluateResponse(generations=generations, scores=scores)

    # -- run_eval: the job ---------------------------------------------------------------------

    async def run_eval(self, benchmark: Benchmark, config: BenchmarkConfig) -> EvalJob:
        jobs = self._jobs()
        if self.datasetio is None:
            raise BadRequestError(
                f"benchmark '{benchmark.identifier}' reads dataset '{benchmark.dataset_id}', but no "
                f"datasetio provider is configured; add one under providers.datasetio, or send the rows to "
                f"evaluate_rows"
            )
        await self._check_candidate(config)
        await self._check_judges(benchmark.scoring_functions, config)
        params = {
            "benchmark_id": benchmark.identifier,
            "dataset_id": benchmark.dataset_id,
            "scoring_functions": benchmark.scoring_functions,
            "benchmark_config": config.model_dump(mode="json", exclude_none=True),
        }
        job = await jobs.submit(JOB_KIND, params, total=config.num_examples)
        number = await self._take_number(benchmark.identifier, job.id)
        log.info("eval_submitted", benchmark=benchmark.identifier, eval_job_id=number, job_id=job.id)
        if self.config.run_eval_wait_seconds > 0:
            try:
                job = await jobs.wait(job.id, self.config.run_eval_wait_seconds)
            except TimeoutError:
                job = await jobs.get(job.id)
        return _eval_job(str(number), job)

    async def _take_number(self, benchmark_id: str, job_id: str) -> int:
        """The benchmark's next free eval job number, bound to ``job_id``. The binding is the claim: the
        kvstore adds a key only if it is missing, so of two processes sharing the store that try one
        number, one gets it and the other tries the next. The saved next number is only where to start
        looking (a stale one costs a few tries, never a duplicate)."""
        number = int(await self.store.get(_seq_key(benchmark_id)) or 0)
        while not await self.store.add(_job_key(benchmark_id, str(number)), job_id):
            number += 1
        await self.store.set(_seq_key(benchmark_id), str(number + 1))
        return number

    async def _run_job(self, context: JobContext) -> dict[str, Any]:
        """The ``eval.run`` handler: resumes from ``context.checkpoint`` ({done, total})."""
        params = context.params
        config = BenchmarkConfig.model_validate(params["benchmark_config"])
        dataset_id = params["dataset_id"]
        checkpoint = context.checkpoint or {}
        done = int(checkpoint.get("done", 0))
        total = checkpoint.get("total")
        if total is None:
            total = await self._count_rows(dataset_id, config.num_examples)
            await context.progress(done, total, checkpoint={"done": done, "total": total}, flush=True)
        functions = params["scoring_functions"]
        leftover = await self.store.get(_agent_key(context.job_id))
        if leftover is not None:  # the agent of an attempt killed before it could delete it
            await self._delete_agent(leftover, context.job_id)
        if done < total:
            total = await self._generate(context, config, dataset_id, functions, done, total)
        aggregated = await self._aggregate(context.job_id, functions, config)
        await self.store.set(_scores_key(context.job_id), json.dumps(aggregated))
        return {"rows": total}

    async def _aggregate(self, job_id: str, functions: list[str], config: BenchmarkConfig) -> dict[str, Any]:
        """Each function's aggregations over every chunk's saved score rows, fed chunk by chunk (the
        Scoring API's own aggregation functions, with the run's params or the function's)."""
        aggregators = {}
        for fn_id in functions:
            params = config.scoring_params.get(fn_id) or (await self.scoring.functions.get(fn_id)).params
            aggregators[fn_id] = Aggregator(fn_id, list(getattr(params, "aggregation_functions", None) or []))
        for chunk in await self._chunks(job_id):
            for fn_id, aggregator in aggregators.items():
                aggregator.add(chunk["scores"][fn_id])
        return {fn_id: aggregator.result() for fn_id, aggregator in aggregators.items()}

    async def _generate(
        self,
        context: JobContext,
        config: BenchmarkConfig,
        dataset_id: str,
        functions: list[str],
        done: int,
        total: int,
    ) -> int:
        """Answer rows ``[done, total)`` chunk by chunk, scoring each chunk and saving its generations
        and score rows, then the checkpoint past it, in row order (a row the functions cannot score
        fails the run at its chunk, not after every row was answered). Chunks overlap: the next ones
        are already being answered while the oldest is scored and saved, so ``max_concurrency`` rows
        stay in flight across chunk boundaries (waiting for a chunk's slowest row and its saves would
        idle the candidate). Returns the rows there were (fewer than ``total`` when the dataset shrank
        since it was counted)."""
        agent_id = await self._create_agent(config, context.job_id)
        gate = asyncio.Semaphore(self.config.max_concurrency)
        chunk = self.config.chunk_rows
        ahead = 1 + -(-self.config.max_concurrency // chunk)  # enough chunks in flight to fill the gate
        in_flight: deque[tuple[int, list[dict[str, Any]], asyncio.Task]] = deque()
        next_row = done
        try:
            while done < total:
                while next_row < total and len(in_flight) < ahead:
                    page = await self._page(dataset_id, next_row, min(chunk, total - next_row))
                    if not page.data:  # the dataset shrank since it was counted
                        total = next_row
                        break
                    task = asyncio.create_task(
                        self._answer_rows(config, page.data, next_row, agent_id, gate, context)
                    )
                    in_flight.append((next_row, page.data, task))
                    next_row += len(page.data)
                if not in_flight:
                    break
                first, rows, task = in_flight.popleft()
                generations = await task
                scores = await self._score_chunk(rows, generations, first, functions, config)
                saved = {"generations": generations, "scores": scores}
                await self.store.set(_gen_key(context.job_id, first), json.dumps(saved))
                done = first + len(rows)
                await context.progress(done, total, checkpoint={"done": done, "total": total}, flush=True)
        finally:
            for _, _, task in in_flight:  # cancelled, failed or lost: stop the rows still being answered
                task.cancel()
            await asyncio.gather(*(task for _, _, task in in_flight), return_exceptions=True)
            # Shielded: a job cancelled (or its server stopping) still deletes its agent. A resumed
            # job answers its remaining rows with a new one.
            await asyncio.shield(self._delete_agent(agent_id, context.job_id))
        return min(total, done)

    async def _score_chunk(
        self,
        rows: list[dict[str, Any]],
        generations: list[dict[str, Any]],
        first: int,
        functions: list[str],
        config: BenchmarkConfig,
    ) -> dict[str, list[dict[str, Any]]]:
        """Each function's score rows for one chunk (the row's columns with its generation on top)."""
        scored = [row | generation for row, generation in zip(rows, generations, strict=True)]
        try:
            results = await self._score(scored, functions, config)
        except BadRequestError as exc:
            raise BadRequestError(
                f"scoring the rows from dataset row {first} on (input_rows[i] is row {first} + i): "
                f"{exc.message}"
            ) from None
        return {fn_id: result.score_rows for fn_id, result in results.items()}

    async def _page(self, dataset_id: str, start: int, limit: int) -> Any:
        request = IterRowsRequest(dataset_id=dataset_id, start_index=start, limit=limit)
        return await self.datasetio.iterrows(request)

    async def _count_rows(self, dataset_id: str, limit: int | None) -> int:
        count = 0
        while limit is None or count < limit:
            page = await self._page(dataset_id, count, _PAGE)
            count += len(page.data)
            if not page.has_more or not page.data:
                break
        return count if limit is None else min(count, limit)

    async def _chunks(self, job_id: str) -> list[dict[str, Any]]:
        """The saved chunks of a job, in row order: ``{generations, scores: {fn: score rows}}``."""
        prefix = f"eval:gen:{job_id}:"
        items = await self.store.items_in_range(prefix, prefix_end(prefix))
        return [json.loads(value) for _, value in sorted(items)]

    # -- eval jobs -----------------------------------------------------------------------------

    async def _job(self, benchmark: Benchmark, job_id: str) -> Job:
        lamina_id = await self.store.get(_job_key(benchmark.identifier, job_id))
        if lamina_id is None:
            raise NotFoundError(
                f"benchmark '{benchmark.identifier}' has no eval job '{job_id}'; its jobs are numbered "
                f"from 0 in the order run_eval started them",
                param="job_id",
            )
        return await self._jobs().get(lamina_id)

    async def job_status(self, benchmark: Benchmark, job_id: str) -> EvalJob:
        return _eval_job(job_id, await self._job(benchmark, job_id))

    async def job_cancel(self, benchmark: Benchmark, job_id: str) -> None:
        job = await self._job(benchmark, job_id)
        try:
            await self._jobs().cancel(job.id)
        except ConflictError:  # name the eval job the caller knows, not the job system's id
            job = await self._jobs().get(job.id)
            raise ConflictError(
                f"eval job '{job_id}' of benchmark '{benchmark.identifier}' is {job.status.value} already; "
                f"only scheduled or in_progress jobs can be cancelled",
                param="job_id",
            ) from None

    async def job_result(self, benchmark: Benchmark, job_id: str) -> EvaluateResponse:
        job = await self._job(benchmark, job_id)
        if job.status != JobStatus.completed:
            why = f" ({job.error})" if job.error else ""
            progress = job.progress
            done = f"; {progress.done} of {progress.total} rows answered" if progress.total else ""
            raise BadRequestError(
                f"eval job '{job_id}' of benchmark '{benchmark.identifier}' is {job.status.value}{why}{done}"
                f"; "
                f"its result exists once it is completed (GET .../jobs/{job_id} shows its status)",
                param="job_id",
            )
        aggregated = json.loads(await self.store.get(_scores_key(job.id)) or "{}")
        chunks = await self._chunks(job.id)
        scores = {
            fn_id: ScoringResult(
                score_rows=[row for chunk in chunks for row in chunk["scores"][fn_id]],
                aggregated_results=results,
            )
            for fn_id, results in aggregated.items()
        }
        generations = [generation for chunk in chunks for generation in chunk["generations"]]
        return EvaluateResponse(generations=generations, scores=scores)


def _eval_job(number: str, job: Job) -> EvalJob:
    """Llama Stack's Job, with the job system's progress, error and id beside it."""
    return EvalJob(
        job_id=number,
        status=job.status,
        lamina_job_id=job.id,
        progress=job.progress.model_dump(),
        error=job.error,
    )


def _seq_key(benchmark_id: str) -> str:
    return f"eval:seq:{benchmark_id}"


def _job_key(benchmark_id: str, number: str) -> str:
    return f"eval:job:{benchmark_id}:{number}"


def _gen_key(job_id: str, first_row: int) -> str:
    return f"eval:gen:{job_id}:{first_row:012d}"


def _agent_key(job_id: str) -> str:
    return f"eval:agent:{job_id}"


def _scores_key(job_id: str) -> str:
    return f"eval:scores:{job_id}"


__all__ = ["JOB_KIND", "MetaReferenceEvalProvider", "create_provider"]
