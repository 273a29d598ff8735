"""The benchmarks routing table: serves the Benchmarks API and resolves benchmarks for Eval.

A benchmark is registered with one ``eval`` provider. Registering checks, before anything is stored,
that its dataset is a registered dataset and each of its scoring functions a registered function (a
400 naming the missing ones and where to register them), so a run never fails on a typo an hour in.
Registrations are persisted in the registry; at start-up every persisted benchmark is handed to its
provider again (``reopen``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from lamina.apis.common import Empty
from lamina.apis.eval import Benchmark, GetBenchmarkRequest, ListBenchmarksResponse, RegisterBenchmarkRequest
from lamina.errors import BadRequestError, ConflictError, NotFoundError
from lamina.resources.routing_table import RoutingTable

log = structlog.get_logger(__name__)


class BenchmarksRoutingTable(RoutingTable[Benchmark]):
    resource_type = "benchmark"
    reopen_with = "register_benchmark"
    resource_class = Benchmark
    api_name = "eval"
    route = "/v1/eval/benchmarks"

    def __init__(
        self,
        registry: Any,
        providers: dict[str, Any],
        pm: Any,
        *,
        get_dataset: Callable[[str], Awaitable[Any]] | None,
        scoring_functions: Any,
    ) -> None:
        super().__init__(registry, providers, pm)
        self.get_dataset = get_dataset  # raises NotFoundError naming the dataset; None: no datasetio
        self.scoring_functions = scoring_functions  # the scoring functions routing table, or None

    async def provider_register(self, provider, resource: Benchmark) -> Benchmark:
        await provider.register_benchmark(resource)
        return resource

    async def provider_unregister(self, provider, resource: Benchmark) -> None:
        await provider.unregister_benchmark(resource)

    # -- the Benchmarks API --------------------------------------------------------------------

    async def list_benchmarks(self, request: Empty) -> ListBenchmarksResponse:
        return ListBenchmarksResponse(data=await self.list())

    async def get_benchmark(self, request: GetBenchmarkRequest) -> Benchmark:
        return await self.get(request.benchmark_id)

    async def register_benchmark(self, request: RegisterBenchmarkRequest, *, replace: bool = False) -> None:
        """Register a benchmark: idempotent for an identical definition; a different one is a 409
        (``replace``: the run config's definition wins over a persisted one)."""
        provider_id = self.pick_provider(request.provider_id, request.benchmark_id)
        await self.check_references(request.dataset_id, request.scoring_functions)
        benchmark = Benchmark(
            identifier=request.benchmark_id,
            provider_resource_id=request.provider_benchmark_id or request.benchmark_id,
            provider_id=provider_id,
            dataset_id=request.dataset_id,
            scoring_functions=request.scoring_functions,
            metadata=request.metadata or {},
        )
        existing = await self.registry.get(self.resource_type, request.benchmark_id)
        if existing is not None:
            benchmark = benchmark.model_copy(update={"created": existing.get("created", benchmark.created)})
            if existing == benchmark.model_dump(mode="json"):
                return None
            if not replace:
                raise ConflictError(
                    f"benchmark '{request.benchmark_id}' is already registered differently (dataset "
                    f"'{existing.get('dataset_id')}', scoring functions "
                    f"{existing.get('scoring_functions')}); "
                    f"DELETE /v1/eval/benchmarks/{request.benchmark_id} first, or use another benchmark_id",
                    param="benchmark_id",
                )
        await self.add(benchmark)
        return None

    async def unregister_benchmark(self, request: GetBenchmarkRequest) -> None:
        await self.remove(request.benchmark_id)

    async def check_references(self, dataset_id: str, functions: list[str]) -> None:
        """A 400 naming the dataset or the scoring functions that are not registered."""
        if self.get_dataset is None:
            raise BadRequestError(
                f"benchmark dataset '{dataset_id}' cannot be read: no datasetio provider is configured; add "
                f"one under providers.datasetio in the run config (inline::localfs reads files and rows)",
                param="dataset_id",
            )
        try:
            await self.get_dataset(dataset_id)
        except NotFoundError as exc:
            raise BadRequestError(f"dataset_id: {exc.message}", param="dataset_id") from None
        await self.check_functions(functions, "scoring_functions")

    async def check_functions(self, functions: list[str], param: str) -> None:
        if self.scoring_functions is None:
            raise BadRequestError(
                "no scoring provider is configured, so no benchmark can be scored; add one under "
                "providers.scoring in the run config (inline::basic has equality and subset_of)",
                param=param,
            )
        known = {fn.identifier for fn in await self.scoring_functions.list()}
        missing = [fn for fn in functions if fn not in known]
        if missing:
            raise BadRequestError(
                f"{param}: scoring function(s) {', '.join(missing)} not registered. Registered: "
                f"{', '.join(sorted(known)) or 'none'}. Register one with POST /v1/scoring-functions.",
                param=param,
            )
