"""Fixtures: a jobs store on SQLite (a file per test) or on the real PostgreSQL (a table per test), and
managers over it that are shut down after the test."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.jobs import JobManager, JobsStore, jobs_store_config, open_jobs_store
from lamina.testing.postgres import PostgresServer


class Clock:
    """A clock the test moves: progress throttling and leases read it instead of the wall clock."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A ``jobs.store`` config section for each backend."""
    if request.param == "sqlite":
        return {"type": "sqlite", "db_path": str(tmp_path / "jobs.db")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"jobs_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def open_store(store_section: dict[str, Any], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await open_store()``: a new connection (pool) to the test's one jobs table."""
    opened: list[JobsStore] = []

    async def open_() -> JobsStore:
        store = await open_jobs_store(jobs_store_config(store_section, tmp_path / "default.db"))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def managers(open_store: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await managers(**settings)``: a JobManager on its own connection to the test's table, not started."""
    made: list[JobManager] = []

    async def make(**settings: Any) -> JobManager:
        settings.setdefault("poll_seconds", 0.1)
        manager = JobManager(await open_store(), **settings)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.shutdown()


ROOT = Path(__file__).resolve().parents[2]
TEST_JOBS_DIST = ROOT / "tests" / "plugin_dists" / "lamina-test-jobs"


@pytest.fixture(scope="session")
def test_jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding lamina-test-jobs (with its entry point): put it on PYTHONPATH."""
    target = tmp_path_factory.mktemp("test-jobs-dist")
    argv = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-input", "--disable-pip-version-check", "--target", str(target), str(TEST_JOBS_DIST),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"pip install of lamina-test-jobs failed:\n{result.stdout}{result.stderr}")
    return target
