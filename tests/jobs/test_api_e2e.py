"""The jobs routes through a real ``lamina run``: list, get, cancel, errors, /openapi.json, the configured
executor, and a job that survives ``kill -9`` of the server (SQLite by default, and PostgreSQL).

Jobs come from lamina-test-jobs (tests/plugin_dists), installed for these tests only: the product's
APIs submit jobs from their own routes (eval's run_eval next), so a test plugin stands in for them.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lamina.testing.postgres import PostgresServer

pytestmark = pytest.mark.e2e


def run_config(tmp_path: Path, **jobs: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "jobs-e2e",
        "providers": {
            "inference": [
                {"provider_id": "jobs", "provider_type": "inline::test-jobs", "config": {"count_limit": 2}}
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "jobs": {"progress_interval": 0.1, "poll_seconds": 0.2, **jobs},
    }


async def submit(http: aiohttp.ClientSession, url: str, kind: str, **params: Any) -> dict[str, Any]:
    async with http.post(f"{url}/test-jobs/submit", json={"kind": kind, "params": params}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def get(http: aiohttp.ClientSession, url: str, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url + path) as resp:
        return resp.status, await resp.json()


async def until(http: aiohttp.ClientSession, url: str, job_id: str, check: Any, within: float = 60) -> dict:
    """Poll GET /v1/jobs/{id} until ``check(job)``; the job."""
    async with asyncio.timeout(within):
        while True:
            status, job = await get(http, url, f"/v1/jobs/{job_id}")
            assert status == 200, job
            if check(job):
                return job
            await asyncio.sleep(0.1)


async def test_jobs_routes_show_progress_cancel_and_errors(
    start_lamina, test_jobs_dir: Path, tmp_path: Path
) -> None:
    config = run_config(tmp_path, executor="test-counting", executor_config={"label": "e2e"})
    server = start_lamina(config, env={"PYTHONPATH": str(test_jobs_dir)})
    url = server.url
    async with aiohttp.ClientSession() as http:
        assert await get(http, url, "/v1/jobs") == (200, {"object": "list", "data": [], "first_id": None,
                                                          "last_id": None, "has_more": False})  # fmt: skip
        quick = await submit(http, url, "test.count", items=3)
        assert quick["status"] == "scheduled" and quick["object"] == "job"
        done = await until(http, url, quick["id"], lambda j: j["status"] == "completed")
        assert done["result"] == {"items": 3, "resumed_at": 0, "attempt": 1}
        assert done["progress"] == {"done": 3, "total": 3} and done["completed_at"] >= done["started_at"]

        broken = await submit(http, url, "test.fail", message="column 'answer' is missing")
        failed = await until(http, url, broken["id"], lambda j: j["status"] == "failed")
        assert failed["error"] == "ValueError: column 'answer' is missing"

        slow = await submit(http, url, "test.count", items=1000, delay=0.05)
        running = await until(http, url, slow["id"], lambda j: j["progress"]["done"] >= 3)
        assert running["status"] == "in_progress" and running["progress"]["total"] == 1000
        async with http.post(f"{url}/v1/jobs/{slow['id']}/cancel") as resp:
            assert resp.status == 200, await resp.text()
            cancelled = await resp.json()
        assert cancelled["status"] == "cancelled" and cancelled["completed_at"] is not None
        stopped_at = cancelled["progress"]["done"]
        await asyncio.sleep(1.0)  # 20 items' time: the work stopped, so progress does not move
        assert (await get(http, url, f"/v1/jobs/{slow['id']}"))[1]["progress"]["done"] == stopped_at < 1000

        async with http.post(f"{url}/v1/jobs/{slow['id']}/cancel") as resp:
            body = await resp.json()
            assert resp.status == 409, body
            assert slow["id"] in body["error"]["message"] and "cancelled already" in body["error"]["message"]
        for method, path in (("GET", "/v1/jobs/job-missing"), ("POST", "/v1/jobs/job-missing/cancel")):
            async with http.request(method, url + path) as resp:
                body = await resp.json()
                assert resp.status == 404 and "job-missing" in body["error"]["message"], body

        status, page = await get(http, url, "/v1/jobs?limit=2")
        assert status == 200 and [j["id"] for j in page["data"]] == [slow["id"], broken["id"]]
        assert page["has_more"] and page["last_id"] == broken["id"]
        status, rest = await get(http, url, f"/v1/jobs?limit=2&after={page['last_id']}")
        assert [j["id"] for j in rest["data"]] == [quick["id"]] and not rest["has_more"]
        status, fails = await get(http, url, "/v1/jobs?kind=test.fail")
        assert [j["id"] for j in fails["data"]] == [broken["id"]]
        status, cancels = await get(http, url, "/v1/jobs?status=cancelled")
        assert [j["id"] for j in cancels["data"]] == [slow["id"]]
        status, bad = await get(http, url, "/v1/jobs?status=paused")
        assert status == 400 and "status" in bad["error"]["message"], bad

        status, record = await get(http, url, "/test-jobs/executor")
        assert record["runs"] == [quick["id"], broken["id"], slow["id"]], "the configured executor ran them"
        status, spec = await get(http, url, "/openapi.json")
        assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel"} <= set(spec["paths"])


async def check_kill_and_restart(start_lamina, config: dict[str, Any], dist: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(dist)}
    server = start_lamina(config, env=env, work_dir=tmp_path / "server", name="first")
    async with aiohttp.ClientSession() as http:
        job = await submit(http, server.url, "test.count", items=40, delay=0.1)
        once = await submit(http, server.url, "test.once", items=40, delay=0.1)
        seen = await until(http, server.url, job["id"], lambda j: j["progress"]["done"] >= 5)
        server.kill()  # SIGKILL: no shutdown code runs
        again = start_lamina(config, env=env, work_dir=tmp_path / "server", name="second")
        # Progress stays visible across the restart, and never goes back.
        status, after = await get(http, again.url, f"/v1/jobs/{job['id']}")
        assert status == 200 and after["progress"]["done"] >= seen["progress"]["done"]
        done = await until(http, again.url, job["id"], lambda j: j["status"] == "completed")
        assert done["attempts"] == 2 and done["result"]["attempt"] == 2
        assert done["result"]["resumed_at"] >= seen["progress"]["done"], "resumed from its checkpoint"
        assert done["progress"] == {"done": 40, "total": 40}
        failed = await until(http, again.url, once["id"], lambda j: j["status"] == "failed")
        assert "the server stopped while this job ran; it cannot resume" in failed["error"]


async def test_a_job_survives_kill_9_of_the_server(start_lamina, test_jobs_dir: Path, tmp_path: Path) -> None:
    await check_kill_and_restart(start_lamina, run_config(tmp_path, lease_seconds=2), test_jobs_dir, tmp_path)


@pytest.mark.postgres
async def test_a_job_on_postgres_survives_kill_9_of_the_server(
    start_lamina, test_jobs_dir: Path, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    store = postgres_server.kvstore_config(table_name=f"jobs_{uuid.uuid4().hex[:12]}")
    config = run_config(tmp_path, lease_seconds=2, store=store)
    await check_kill_and_restart(start_lamina, config, test_jobs_dir, tmp_path)
