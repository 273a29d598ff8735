"""Eval job numbers ("0", "1", ... per benchmark) stay unique across server processes sharing one store.

Two eval providers, each with its own job manager, on one eval kvstore and one jobs table stand for two
server processes (replicas) behind one load balancer: the run_eval calls they take at once must get
distinct numbers, each naming its own job. On SQLite (one file) and on a real PostgreSQL server.

The job managers are not started, so no job runs: only numbering is under test. The providers'
inference, scoring and datasetio dependencies are therefore never called (run_eval only checks that a
datasetio provider exists), and stand-ins without behaviour take their place.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from lamina.apis.eval import Benchmark, BenchmarkConfig
from lamina.jobs import JobManager, jobs_store_config, open_jobs_store
from lamina.providers import ProviderContext
from lamina.specs import Api
from lamina.storage import KVStoreConfig
from lamina.testing.postgres import PostgresServer
from lamina_eval.config import MetaReferenceEvalConfig
from lamina_eval.provider import MetaReferenceEvalProvider

BENCHMARKS = [
    Benchmark(identifier=name, provider_id="meta-reference", dataset_id="d", scoring_functions=["x"])
    for name in ("bench-a", "bench-b")
]
CONFIG = BenchmarkConfig.model_validate(
    {"eval_candidate": {"type": "model", "model": "m", "sampling_params": {"max_tokens": 4}}}
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(eval kvstore section, jobs store section) on one database."""
    if request.param == "sqlite":
        db = str(tmp_path / "shared.db")
        return {"type": "sqlite", "db_path": db}, {"type": "sqlite", "db_path": str(tmp_path / "jobs.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    suffix = uuid.uuid4().hex[:12]
    return (
        server.kvstore_config(table_name=f"eval_{suffix}"),
        server.kvstore_config(table_name=f"jobs_{suffix}"),
    )


async def open_replica(kvstore: dict[str, Any], jobs_section: dict[str, Any], tmp_path: Path, n: int) -> Any:
    jobs = JobManager(await open_jobs_store(jobs_store_config(jobs_section, tmp_path / "unused.db")))
    context = ProviderContext(
        api=Api.eval,
        provider_id="meta-reference",
        provider_type="inline::meta-reference",
        state_dir=tmp_path / f"replica{n}",
        jobs=jobs,
    )
    config = MetaReferenceEvalConfig(
        kvstore=TypeAdapter(KVStoreConfig).validate_python(kvstore), run_eval_wait_seconds=0
    )
    deps = {Api.inference: object(), Api.scoring: object(), Api.datasetio: object()}
    provider = MetaReferenceEvalProvider(config, deps, context)
    await provider.initialize()
    return provider


async def test_two_replicas_number_their_eval_jobs_without_collisions(
    stores: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    kvstore, jobs_section = stores
    replicas = [await open_replica(kvstore, jobs_section, tmp_path, n) for n in range(2)]
    try:
        for benchmark in BENCHMARKS:
            calls = [r.run_eval(benchmark, CONFIG) for _ in range(12) for r in replicas]
            jobs = await asyncio.gather(*calls)
            numbers = sorted(int(job.job_id) for job in jobs)
            assert numbers == list(range(24)), f"{benchmark.identifier}: numbers handed out: {numbers}"
            # Each number names the job its run_eval answered, on either replica.
            for job in jobs:
                for replica in replicas:
                    status = await replica.job_status(benchmark, job.job_id)
                    assert status.lamina_job_id == job.lamina_job_id
        # Numbering goes on from where the replicas left it.
        assert (await replicas[1].run_eval(BENCHMARKS[0], CONFIG)).job_id == "24"
    finally:
        for replica in replicas:
            await replica.shutdown()
            await replica.context.jobs.store.close()
