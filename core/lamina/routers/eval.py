"""The Eval router: resolves the benchmark to its provider and hands it the call.

evaluate_rows' own ``scoring_functions`` are checked here (a 400 naming the unregistered ones)
before any row is sent to a model; run_eval uses the benchmark's functions, checked at registration.
"""

from __future__ import annotations

from lamina.apis.eval import EvalJob, EvalJobRequest, EvaluateResponse, EvaluateRowsRequest, RunEvalRequest
from lamina.resources.benchmarks import BenchmarksRoutingTable


class EvalRouter:
    def __init__(self, benchmarks: BenchmarksRoutingTable) -> None:
        self.benchmarks = benchmarks

    async def run_eval(self, request: RunEvalRequest) -> EvalJob:
        benchmark, provider = await self.benchmarks.resolve(request.benchmark_id)
        return await provider.run_eval(benchmark, request.benchmark_config)

    async def evaluate_rows(self, request: EvaluateRowsRequest) -> EvaluateResponse:
        benchmark, provider = await self.benchmarks.resolve(request.benchmark_id)
        await self.benchmarks.check_functions(request.scoring_functions, "scoring_functions")
        return await provider.evaluate_rows(
            benchmark, request.input_rows, request.scoring_functions, request.benchmark_config
        )

    async def job_status(self, request: EvalJobRequest) -> EvalJob:
        benchmark, provider = await self.benchmarks.resolve(request.benchmark_id)
        return await provider.job_status(benchmark, request.job_id)

    async def job_cancel(self, request: EvalJobRequest) -> None:
        benchmark, provider = await self.benchmarks.resolve(request.benchmark_id)
        await provider.job_cancel(benchmark, request.job_id)

    async def job_result(self, request: EvalJobRequest) -> EvaluateResponse:
        benchmark, provider = await self.benchmarks.resolve(request.benchmark_id)
        return await provider.job_result(benchmark, request.job_id)
