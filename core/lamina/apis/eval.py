"""Benchmarks and Eval: the Benchmark resource, candidates, eval jobs, results, and what providers implement.

A benchmark names a registered dataset and the scoring functions that judge it. ``run_eval`` runs a
candidate (a model with its sampling params and system message, or an agent config) over the
dataset's rows as a job of the job system (``lamina.jobs``): it generates an answer per row, then
scores every row with the benchmark's functions. ``evaluate_rows`` does the same inline for rows the
caller sends. Routes and shapes are Llama Stack 0.2.12's (``/v1/eval/benchmarks...``); eval job ids
are numbered per benchmark (``"0"``, ``"1"``, ...), as Llama Stack's are. docs/eval.md tells the story.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, deletes, lists, reads, updates, uses
from lamina.apis.agents import AgentConfig
from lamina.apis.common import Empty, Resource
from lamina.apis.inference import SamplingParams, SystemMessage
from lamina.apis.jobs import JobStatus
from lamina.apis.scoring import ScoringFnParams, ScoringResult
from lamina.apis.webmethod import webmethod

# -- the Benchmark resource --------------------------------------------------------------------------


class Benchmark(Resource):
    type: Literal["benchmark"] = "benchmark"
    dataset_id: str
    scoring_functions: list[str]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def benchmark_id(self) -> str:
        return self.identifier


class ListBenchmarksResponse(BaseModel):
    data: list[Benchmark]


class GetBenchmarkRequest(BaseModel):
    benchmark_id: str = Field(min_length=1)


class RegisterBenchmarkRequest(BaseModel):
    # Llama Stack's FastAPI server ignores unknown body fields; so does this request.
    model_config = ConfigDict(extra="ignore")

    benchmark_id: str = Field(min_length=1, pattern=r"^[^/]+$", description="The benchmark's id (no '/').")
    dataset_id: str = Field(min_length=1, description="A registered dataset (GET /v1/datasets).")
    scoring_functions: list[str] = Field(
        min_length=1, description="Registered scoring function ids (GET /v1/scoring-functions)."
    )
    provider_benchmark_id: str | None = None
    provider_id: str | None = Field(default=None, description="The eval provider; omitted: the only one.")
    metadata: dict[str, Any] | None = None


# -- candidates and config ---------------------------------------------------------------------------


class ModelCandidate(BaseModel):
    """A served model answers each row (chat completion through the Inference API)."""

    type: Literal["model"] = "model"
    model: str = Field(min_length=1, description="A registered llm model id.")
    sampling_params: SamplingParams
    system_message: SystemMessage | None = Field(
        default=None, description="Sent first, before the row's own messages."
    )


class AgentCandidate(BaseModel):
    """An agent created from ``config`` answers each row in a session of its own (Agents API)."""

    type: Literal["agent"] = "agent"
    config: AgentConfig


EvalCandidate = Annotated[ModelCandidate | AgentCandidate, Field(discriminator="type")]


class BenchmarkConfig(BaseModel):
    eval_candidate: EvalCandidate
    scoring_params: dict[str, ScoringFnParams] = Field(
        default_factory=dict,
        description="Scoring function id -> params for this run (absent: the function's registered params).",
    )
    num_examples: int | None = Field(
        default=None, ge=1, description="Evaluate only the dataset's first N rows (absent: every row)."
    )


class EvaluateResponse(BaseModel):
    generations: list[dict[str, Any]] = Field(
        description="One per row, in order: {generated_answer} (and {context} for an agent that retrieved)."
    )
    scores: dict[str, ScoringResult] = Field(description="Scoring function id -> its result over the rows.")


class EvalJob(BaseModel):
    """Llama Stack's ``Job``: an eval job's id (numbered per benchmark) and status. Its progress, times
    and error are on the job system's record, ``GET /v1/jobs/{id}`` with the id in ``lamina_job_id``."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    status: JobStatus


# -- requests ----------------------------------------------------------------------------------------


class RunEvalRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    benchmark_id: str = Field(min_length=1)
    benchmark_config: BenchmarkConfig


class EvaluateRowsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    benchmark_id: str = Field(min_length=1)
    input_rows: list[dict[str, Any]] = Field(min_length=1, description="The rows to answer and score.")
    scoring_functions: list[str] = Field(min_length=1, description="Registered scoring function ids.")
    benchmark_config: BenchmarkConfig


class EvalJobRequest(BaseModel):
    benchmark_id: str = Field(min_length=1)
    job_id: str = Field(min_length=1)


# -- the API -----------------------------------------------------------------------------------------


class Benchmarks(Protocol):
    @webmethod(
        "GET",
        "/v1/eval/benchmarks",
        request=Empty,
        response=ListBenchmarksResponse,
        access=lists("benchmark", "identifier"),
    )
    async def list_benchmarks(self, request: Empty) -> ListBenchmarksResponse:
        """List registered benchmarks."""
        ...

    @webmethod(
        "GET",
        "/v1/eval/benchmarks/{benchmark_id}",
        request=GetBenchmarkRequest,
        response=Benchmark,
        access=reads("benchmark", "benchmark_id"),
    )
    async def get_benchmark(self, request: GetBenchmarkRequest) -> Benchmark:
        """Get a benchmark by its id."""
        ...

    @webmethod(
        "POST",
        "/v1/eval/benchmarks",
        request=RegisterBenchmarkRequest,
        response=None,
        access=creates(
            "benchmark",
            created_from="benchmark_id",
            requested="benchmark_id",
            uses=(("dataset", "dataset_id"),),
        ),
    )
    async def register_benchmark(self, request: RegisterBenchmarkRequest) -> None:
        """Register a benchmark: a registered dataset and the registered scoring functions that judge it."""
        ...

    @webmethod(
        "DELETE",
        "/v1/eval/benchmarks/{benchmark_id}",
        request=GetBenchmarkRequest,
        response=None,
        access=deletes("benchmark", "benchmark_id"),
    )
    async def unregister_benchmark(self, request: GetBenchmarkRequest) -> None:
        """Unregister a benchmark (its eval jobs and their results stay listed in /v1/jobs)."""
        ...


_JOB_ROUTE = "/v1/eval/benchmarks/{benchmark_id}/jobs/{job_id}"


class Eval(Protocol):
    @webmethod(
        "POST",
        "/v1/eval/benchmarks/{benchmark_id}/jobs",
        request=RunEvalRequest,
        response=EvalJob,
        access=creates(
            "eval_job", "job_id", uses=(("benchmark", "benchmark_id"),), created_under="benchmark_id"
        ),
    )
    async def run_eval(self, request: RunEvalRequest) -> EvalJob:
        """Run a candidate over the benchmark's dataset as a job; answers once the job ends or after the
        provider's run_eval_wait_seconds, whichever comes first (poll the job's status after that)."""
        ...

    @webmethod(
        "POST",
        "/v1/eval/benchmarks/{benchmark_id}/evaluations",
        request=EvaluateRowsRequest,
        response=EvaluateResponse,
        cancel_on_disconnect=True,
        access=uses(("benchmark", "benchmark_id")),
    )
    async def evaluate_rows(self, request: EvaluateRowsRequest) -> EvaluateResponse:
        """Answer and score the given rows now (no job)."""
        ...

    @webmethod(
        "GET",
        _JOB_ROUTE,
        request=EvalJobRequest,
        response=EvalJob,
        access=reads("eval_job", "benchmark_id/job_id"),
    )
    async def job_status(self, request: EvalJobRequest) -> EvalJob:
        """An eval job's status."""
        ...

    @webmethod(
        "DELETE",
        _JOB_ROUTE,
        request=EvalJobRequest,
        response=None,
        access=updates("eval_job", "benchmark_id/job_id"),
    )
    async def job_cancel(self, request: EvalJobRequest) -> None:
        """Cancel an eval job: its generation stops and its status becomes cancelled."""
        ...

    @webmethod(
        "GET",
        "/v1/eval/benchmarks/{benchmark_id}/jobs/{job_id}/result",
        request=EvalJobRequest,
        response=EvaluateResponse,
        access=reads("eval_job", "benchmark_id/job_id"),
    )
    async def job_result(self, request: EvalJobRequest) -> EvaluateResponse:
        """A completed eval job's generations and scores (a 400 while it is not completed)."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class EvalProvider(Protocol):
    """An Eval provider: runs candidates over benchmarks' rows and scores them.

    Contract:

    * ``register_benchmark`` is called for each benchmark registered with it (again after a restart);
      the routing table has checked its dataset and scoring functions exist.
    * ``run_eval`` starts a job (``lamina.jobs``) and answers its eval job (id numbered per
      benchmark); the job's progress is rows answered / rows to answer; its result survives a restart.
    * ``evaluate_rows`` answers and scores ``rows`` inline.
    * ``job_status``, ``job_cancel``, ``job_result`` take the benchmark and the eval job id; an unknown
      id is a 404 naming it; ``job_result`` of an unfinished job is a 400 naming its status.
    * A row the candidate cannot answer (the row lacks the input columns) is a 400 naming the row and
      the columns; an upstream failure is a 502/504 naming the provider and the row.
    """

    async def register_benchmark(self, benchmark: Benchmark) -> None: ...

    async def unregister_benchmark(self, benchmark: Benchmark) -> None: ...

    async def run_eval(self, benchmark: Benchmark, config: BenchmarkConfig) -> EvalJob: ...

    async def evaluate_rows(
        self,
        benchmark: Benchmark,
        rows: list[dict[str, Any]],
        scoring_functions: list[str],
        config: BenchmarkConfig,
    ) -> EvaluateResponse: ...

    async def job_status(self, benchmark: Benchmark, job_id: str) -> EvalJob: ...

    async def job_cancel(self, benchmark: Benchmark, job_id: str) -> None: ...

    async def job_result(self, benchmark: Benchmark, job_id: str) -> EvaluateResponse: ...
