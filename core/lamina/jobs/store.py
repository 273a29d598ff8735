"""The jobs table, on SQLite (aiosqlite) or PostgreSQL (asyncpg), through ``lamina.storage.sql_table``.

The config is a SQL store config as the other stores read it (``type: sqlite`` with ``db_path``;
``type: postgres`` with host, port, db, user, password), ``table_name`` defaulting to ``lamina_jobs``;
without one, SQLite at ``<state dir>/jobs.db``. One table, no ORM::

    seq (autoincrement) PRIMARY KEY, id TEXT UNIQUE, kind, status, done, total,
    created_at, started_at, completed_at (DOUBLE PRECISION seconds), error,
    params, result, checkpoint, owner (JSON text), attempts,
    lease_holder TEXT, lease_expires_at DOUBLE PRECISION
    index (status, seq), index (kind, seq), index (status, lease_expires_at)

``seq`` is the order of submission: the scheduler starts jobs in it and listings show it newest first.

**Every state change is one conditional UPDATE** (compare-and-set on status and lease holder), so
replicas sharing one PostgreSQL never both take a job: ``claim`` moves a job from scheduled to
in_progress only if it is still scheduled, and a holder's progress, heartbeat and final writes
apply only while it still holds the lease and the job is in_progress. A write that changes no row
tells the caller the job is no longer its own (cancelled, or its lease expired and was taken).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from lamina.apis.jobs import Job, JobProgress, JobStatus
from lamina.errors import BadRequestError
from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig, sql_store_config
from lamina.storage.sql_table import Backend, PostgresTable, SqliteTable, SqlTable, open_table

DEFAULT_TABLE = "lamina_jobs"
DEFAULT_DB_NAME = "jobs.db"

_COLUMNS = (
    "id, kind, status, done, total, created_at, started_at, completed_at, error, params, result, "
    "checkpoint, attempts, owner"
)
_SCHEDULED, _RUNNING = JobStatus.scheduled.value, JobStatus.in_progress.value


class SqliteJobsStoreConfig(SqliteSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the jobs.")


class PostgresJobsStoreConfig(PostgresSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Table holding the jobs.")


JobsStoreConfig = Annotated[SqliteJobsStoreConfig | PostgresJobsStoreConfig, Field(discriminator="type")]


def jobs_store_config(raw: Any, default_db: Path) -> SqliteJobsStoreConfig | PostgresJobsStoreConfig:
    """Validate a ``jobs.store`` section (None: SQLite at ``default_db``).

    Raises pydantic's ValidationError on a bad section; the caller names the run config file and key.
    """
    return sql_store_config(SqliteJobsStoreConfig, PostgresJobsStoreConfig, raw, default_db)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _job(row: tuple[Any, ...]) -> Job:
    (id_, kind, status, done, total, created, started, completed, error, params, result, checkpoint,
     attempts, owner) = row  # fmt: skip
    return Job(
        id=id_,
        kind=kind,
        status=JobStatus(status),
        progress=JobProgress(done=done, total=total),
        created_at=created,
        started_at=started,
        completed_at=completed,
        error=error,
        params=_loads(params) or {},
        result=_loads(result),
        checkpoint=_loads(checkpoint),
        attempts=attempts,
        owner=_loads(owner) or {},
    )


class JobsStore(SqlTable):
    """The jobs table. Methods raise StorageError when the database fails."""

    what = "jobs store"

    def _schema_for(self, backend: Backend) -> list[str]:
        seq = (
            "INTEGER PRIMARY KEY AUTOINCREMENT"
            if backend == "sqlite"
            else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        )
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (seq {seq}, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, "
            f"status TEXT NOT NULL, done BIGINT NOT NULL DEFAULT 0, total BIGINT, "
            f"created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION, "
            f"completed_at DOUBLE PRECISION, error TEXT, params TEXT NOT NULL, result TEXT, checkpoint TEXT, "
            f"attempts INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL, lease_holder TEXT, "
            f"lease_expires_at DOUBLE PRECISION)",
            f"CREATE INDEX IF NOT EXISTS {t}_status_seq ON {t} (status, seq)",
            f"CREATE INDEX IF NOT EXISTS {t}_kind_seq ON {t} (kind, seq)",
            f"CREATE INDEX IF NOT EXISTS {t}_status_lease ON {t} (status, lease_expires_at)",
        ]

    def _marks(self, n: int, start: int = 1) -> list[str]:
        return [self._p(i) for i in range(start, start + n)]

    # -- reads ---------------------------------------------------------------------------------

    async def insert(self, job: Job) -> None:
        p = self._marks(9)
        await self._execute(
            f"INSERT INTO {self.table} (id, kind, status, done, total, created_at, params, owner, "
            f"checkpoint) VALUES ({', '.join(p)})",
            [
                job.id,
                job.kind,
                job.status.value,
                job.progress.done,
                job.progress.total,
                job.created_at,
                _dumps(job.params),
                _dumps(job.owner),
                _dumps(job.checkpoint),
            ],
        )

    async def get(self, job_id: str) -> Job | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM {self.table} WHERE id = {self._p(1)}", [job_id])
        return _job(rows[0]) if rows else None

    async def list(
        self,
        *,
        kind: str | None = None,
        status: JobStatus | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> tuple[list[Job], bool]:
        """Up to ``limit`` jobs newest first (of one kind / status), after the job ``after``; and
        whether more follow."""
        params: list[Any] = []
        conds: list[str] = []
        for column, value in (("kind", kind), ("status", status.value if status else None)):
            if value is not None:
                params.append(value)
                conds.append(f"{column} = {self._p(len(params))}")
        if after is not None:
            found = await self._fetch(f"SELECT seq FROM {self.table} WHERE id = {self._p(1)}", [after])
            if not found:
                raise BadRequestError(
                    f"after: there is no job with id {after!r}; pass the id of a listed job (the last_id "
                    f"of the previous page)",
                    param="after",
                )
            params.append(found[0][0])
            conds.append(f"seq < {self._p(len(params))}")
        params.append(limit + 1)  # one more than asked tells whether there is a next page
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self.table}{where} ORDER BY seq DESC LIMIT {self._p(len(params))}",
            params,
        )
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    async def scheduled(self, limit: int, *, kinds: list[str], exclude: bool = False) -> list[Job]:
        """The oldest scheduled jobs of ``kinds`` (of any other kind with ``exclude``), oldest first."""
        if not kinds and not exclude:
            return []
        params: list[Any] = [_SCHEDULED, *kinds, limit]
        cond = ""
        if kinds:
            marks = ", ".join(self._marks(len(kinds), start=2))
            cond = f" AND kind {'NOT IN' if exclude else 'IN'} ({marks})"
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE status = {self._p(1)}{cond} ORDER BY seq "
            f"LIMIT {self._p(len(params))}",
            params,
        )
        return [_job(r) for r in rows]

    async def expired(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """(id, kind) of in_progress jobs whose lease ran out: their holder stopped."""
        rows = await self._fetch(
            f"SELECT id, kind FROM {self.table} WHERE status = {self._p(1)} "
            f"AND lease_expires_at < {self._p(2)} ORDER BY seq LIMIT {self._p(3)}",
            [_RUNNING, now, limit],
        )
        return [(r[0], r[1]) for r in rows]

    async def held(self, holder: str) -> set[str]:
        """Ids of the in_progress jobs ``holder`` holds the lease of."""
        rows = await self._fetch(
            f"SELECT id FROM {self.table} WHERE lease_holder = {self._p(1)} AND status = {self._p(2)}",
            [holder, _RUNNING],
        )
        return {r[0] for r in rows}

    async def count_by_status(self) -> dict[str, int]:
        """How many jobs the store holds in each state (every replica's: the store is shared)."""
        rows = await self._fetch(f"SELECT status, COUNT(*) FROM {self.table} GROUP BY status", [])
        return {r[0]: int(r[1]) for r in rows}

    # -- state changes (each one conditional) --------------------------------------------------

    async def claim(self, job_id: str, holder: str, now: float, expires: float) -> bool:
        """scheduled -> in_progress with ``holder``'s lease; False if someone else took it first."""
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, lease_holder = {p(2)}, lease_expires_at = {p(3)}, "
            f"started_at = COALESCE(started_at, {p(4)}), attempts = attempts + 1 "
            f"WHERE id = {p(5)} AND status = {p(6)}",
            [_RUNNING, holder, expires, now, job_id, _SCHEDULED],
        )
        return changed == 1

    async def requeue_expired(self, job_id: str, now: float) -> bool:
        """An expired in_progress job back to scheduled (its checkpoint kept), to be resumed."""
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, lease_holder = NULL, lease_expires_at = NULL "
            f"WHERE id = {p(2)} AND status = {p(3)} AND lease_expires_at < {p(4)}",
            [_SCHEDULED, job_id, _RUNNING, now],
        )
        return changed == 1

    async def fail_expired(self, job_id: str, now: float, reason: str) -> bool:
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, error = {p(2)}, completed_at = {p(3)}, "
            f"lease_holder = NULL, lease_expires_at = NULL "
            f"WHERE id = {p(4)} AND status = {p(5)} AND lease_expires_at < {p(6)}",
            [JobStatus.failed.value, reason, now, job_id, _RUNNING, now],
        )
        return changed == 1

    async def fail_scheduled(self, job_id: str, now: float, reason: str) -> bool:
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, error = {p(2)}, completed_at = {p(3)} "
            f"WHERE id = {p(4)} AND status = {p(5)}",
            [JobStatus.failed.value, reason, now, job_id, _SCHEDULED],
        )
        return changed == 1

    async def progress(
        self,
        job_id: str,
        holder: str,
        done: int,
        total: int | None,
        checkpoint: Any,
        expires: float,
        *,
        save_checkpoint: bool,
    ) -> bool:
        """Record progress (and the checkpoint when ``save_checkpoint``), renewing the lease; False
        when ``holder`` no longer holds this in_progress job."""
        p = self._p
        sets = f"done = {p(1)}, total = {p(2)}, lease_expires_at = {p(3)}"
        params: list[Any] = [done, total, expires]
        if save_checkpoint:
            params.append(_dumps(checkpoint))
            sets += f", checkpoint = {p(len(params))}"
        params += [job_id, holder, _RUNNING]
        n = len(params)
        changed = await self._execute(
            f"UPDATE {self.table} SET {sets} WHERE id = {p(n - 2)} AND lease_holder = {p(n - 1)} "
            f"AND status = {p(n)}",
            params,
        )
        return changed == 1

    async def renew(self, holder: str, expires: float) -> None:
        """Extend every lease ``holder`` holds (the heartbeat)."""
        p = self._p
        await self._execute(
            f"UPDATE {self.table} SET lease_expires_at = {p(1)} "
            f"WHERE lease_holder = {p(2)} AND status = {p(3)}",
            [expires, holder, _RUNNING],
        )

    async def finish(
        self,
        job_id: str,
        holder: str,
        status: JobStatus,
        now: float,
        *,
        done: int,
        total: int | None,
        result: Any = None,
        error: str | None = None,
    ) -> bool:
        """in_progress -> ``status`` (completed or failed) for the lease holder."""
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, completed_at = {p(2)}, result = {p(3)}, "
            f"error = {p(4)}, done = {p(5)}, total = {p(6)}, lease_holder = NULL, lease_expires_at = NULL "
            f"WHERE id = {p(7)} AND lease_holder = {p(8)} AND status = {p(9)}",
            [status.value, now, _dumps(result), error, done, total, job_id, holder, _RUNNING],
        )
        return changed == 1

    async def release(self, job_id: str, holder: str) -> bool:
        """The holder gives a running job back (shutdown): scheduled again, checkpoint kept."""
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, lease_holder = NULL, lease_expires_at = NULL "
            f"WHERE id = {p(2)} AND lease_holder = {p(3)} AND status = {p(4)}",
            [_SCHEDULED, job_id, holder, _RUNNING],
        )
        return changed == 1

    async def cancel(self, job_id: str, now: float, reason: str) -> bool:
        """scheduled or in_progress -> cancelled (whoever holds it stops at its next write or heartbeat)."""
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.table} SET status = {p(1)}, completed_at = {p(2)}, error = {p(3)}, "
            f"lease_holder = NULL, lease_expires_at = NULL WHERE id = {p(4)} AND status IN ({p(5)}, {p(6)})",
            [JobStatus.cancelled.value, now, reason, job_id, _SCHEDULED, _RUNNING],
        )
        return changed == 1


class SqliteJobsStore(SqliteTable, JobsStore):
    immediate_writes = True  # several processes (a restarted server, tests' workers) claim jobs at once


class PostgresJobsStore(PostgresTable, JobsStore):
    pass


async def open_jobs_store(config: SqliteJobsStoreConfig | PostgresJobsStoreConfig) -> JobsStore:
    """Create and initialise the store ``config.type`` names (table and indexes created if missing)."""
    return await open_table(SqliteJobsStore, PostgresJobsStore, config)
