"""The trace store: spans, logged events and metric points in SQL (sqlite by default, or PostgreSQL).

Three tables named after the store's ``table_name`` (default ``telemetry``):

- ``<t>_spans``: one row per finished span (from the server's tracer, through ``StoreSpanProcessor``) or
  per span a client opened with ``log_event`` (``span_start``; ``span_end`` closes it). ``root`` marks a
  trace's entry span (no parent, or a parent in another process: a caller's ``traceparent``); a trace is
  its root span. Times are epoch nanoseconds; ``attributes`` JSON (jsonb on PostgreSQL).
- ``<t>_events``: ``log_event``'s unstructured logs and the events of stored spans (recorded
  exceptions), attached to their trace and span by id.
- ``<t>_metric_points``: delta points (counter and histogram sums, gauge values) by metric name, labels
  (JSON, sorted keys) and time; from ``log_event`` metric events and the server's OpenTelemetry metrics.

Every row carries ``expires_ns``; ``prune`` deletes what expired. The queries are in ``queries.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import structlog
from pydantic import Field

from lamina import fast_json
from lamina.storage.config import PostgresSqlStoreConfig, SqliteSqlStoreConfig, sql_store_config
from lamina.storage.sql_table import Backend, PostgresTable, SqliteTable, SqlTable, open_table

log = structlog.get_logger("lamina.telemetry")

DEFAULT_TABLE = "telemetry"
DEFAULT_DB_NAME = "trace_store.db"
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "root",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "attributes",
    "service",
    "expires_ns",
)


class SqliteTraceStoreConfig(SqliteSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Prefix of the trace store's tables.")


class PostgresTraceStoreConfig(PostgresSqlStoreConfig):
    table_name: str = Field(default=DEFAULT_TABLE, description="Prefix of the trace store's tables.")


def trace_store_config(raw: Any, default_db: Path) -> SqliteTraceStoreConfig | PostgresTraceStoreConfig:
    """Validate a ``trace_store`` section (None: SQLite at ``default_db``)."""
    return sql_store_config(SqliteTraceStoreConfig, PostgresTraceStoreConfig, raw, default_db)


@dataclass(frozen=True)
class SpanRow:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    root: bool
    name: str
    start_ns: int
    end_ns: int | None
    status: str | None  # "ok" | "error" | None (still open)
    attributes: dict[str, Any]
    service: str
    expires_ns: int

    def params(self) -> tuple[Any, ...]:
        return (
            self.trace_id,
            self.span_id,
            self.parent_span_id,
            1 if self.root else 0,
            self.name,
            self.start_ns,
            self.end_ns,
            self.status,
            dumps_json(self.attributes),
            self.service,
            self.expires_ns,
        )


@dataclass(frozen=True)
class MetricPoint:
    name: str
    labels: dict[str, str]
    ts_ns: int
    value: float
    kind: str  # "sum" (deltas add up in a bucket) or "gauge" (the bucket's last value counts)
    unit: str
    expires_ns: int

    def params(self) -> tuple[Any, ...]:
        labels = json.dumps(self.labels, sort_keys=True, separators=(",", ":"))
        return (self.name, labels, self.ts_ns, float(self.value), self.kind, self.unit, self.expires_ns)


def dumps_json(value: Any) -> str:
    # pydantic-core's serializer: a span's attributes in ~1 µs where json.dumps took ~10 (tuples, which
    # OpenTelemetry keeps sequence attributes as, become arrays).
    return fast_json.dumps(value).decode()


class TraceStore(SqlTable):
    what: ClassVar[str] = "trace store"

    @property
    def backend(self) -> Backend:
        return "postgres" if isinstance(self, PostgresTable) else "sqlite"

    @property
    def spans(self) -> str:
        return f"{self.table}_spans"

    @property
    def events(self) -> str:
        return f"{self.table}_events"

    @property
    def points(self) -> str:
        return f"{self.table}_metric_points"

    def _json(self, i: int) -> str:
        """The i-th placeholder for a JSON value (jsonb on PostgreSQL)."""
        return f"{self._p(i)}::jsonb" if self.backend == "postgres" else self._p(i)

    def _spans_table(self, name: str, backend: Backend) -> str:
        json_type = "JSONB" if backend == "postgres" else "TEXT"
        return (
            f"CREATE TABLE IF NOT EXISTS {name} (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            f"parent_span_id TEXT, root SMALLINT NOT NULL, name TEXT NOT NULL, start_ns BIGINT NOT NULL, "
            f"end_ns BIGINT, status TEXT, attributes {json_type} NOT NULL, service TEXT NOT NULL, "
            f"expires_ns BIGINT NOT NULL)"
        )

    def _schema_for(self, backend: Backend) -> list[str]:
        t, s, e, m = self.table, self.spans, self.events, self.points
        json_type = "JSONB" if backend == "postgres" else "TEXT"
        real = "DOUBLE PRECISION" if backend == "postgres" else "REAL"
        # Span and trace ids are random, so each index keyed by them takes every new row on a random page:
        # two such indexes, not three. (span_id, trace_id) is both the uniqueness of a span and
        # get_span_tree's lookup by span id alone; (trace_id, parent_span_id) a trace's spans (its
        # trace_id prefix) and a tree's children. A rowid table: rows themselves are appended.
        spans = [
            self._spans_table(s, backend),
            f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_spans_ids ON {s} (span_id, trace_id)",
            f"CREATE INDEX IF NOT EXISTS {t}_spans_parent ON {s} (trace_id, parent_span_id)",
            # query_traces lists root spans by time.
            f"CREATE INDEX IF NOT EXISTS {t}_spans_root_start ON {s} (root, start_ns)",
            f"CREATE INDEX IF NOT EXISTS {t}_spans_expires ON {s} (expires_ns)",
        ]
        if backend == "postgres":  # a store made before: primary key (trace_id, span_id), index span_id
            spans += [
                f"ALTER TABLE {s} DROP CONSTRAINT IF EXISTS {s}_pkey",
                f"DROP INDEX IF EXISTS {t}_spans_span",
            ]
        return [
            *spans,
            f"CREATE TABLE IF NOT EXISTS {e} (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            f"ts_ns BIGINT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL, "
            f"attributes {json_type} NOT NULL, expires_ns BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {t}_events_span ON {e} (trace_id, span_id, ts_ns)",
            f"CREATE INDEX IF NOT EXISTS {t}_events_expires ON {e} (expires_ns)",
            f"CREATE TABLE IF NOT EXISTS {m} (name TEXT NOT NULL, labels TEXT NOT NULL, "
            f"ts_ns BIGINT NOT NULL, "
            f"value {real} NOT NULL, kind TEXT NOT NULL, unit TEXT NOT NULL, expires_ns BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {t}_points_name_ts ON {m} (name, ts_ns)",
            f"CREATE INDEX IF NOT EXISTS {t}_points_expires ON {m} (expires_ns)",
        ]

    # -- writes ----------------------------------------------------------------------------------

    async def add_spans(
        self, rows: Sequence[SpanRow | tuple[Any, ...]], events: list[tuple[Any, ...]] | None = None
    ) -> None:
        """Insert spans: SpanRows or their ``params()`` tuples (a span already there, same ids, is kept as
        it is), and ``events`` (``add_events``' rows), in one transaction."""
        batches = []
        if rows:
            p = self._p
            values = ", ".join(
                self._json(i) if c == "attributes" else p(i) for i, c in enumerate(SPAN_COLUMNS, 1)
            )
            batches.append(
                (
                    f"INSERT INTO {self.spans} ({', '.join(SPAN_COLUMNS)}) VALUES ({values}) "
                    f"ON CONFLICT (trace_id, span_id) DO NOTHING",
                    [row.params() if isinstance(row, SpanRow) else row for row in rows],
                )
            )
        if events:
            batches.append((self._events_insert(), events))
        if batches:
            await self._execute_batches(batches)

    async def end_span(
        self, trace_id: str, span_id: str, end_ns: int, status: str, attributes: dict[str, Any]
    ) -> bool:
        """Close a span a client opened (``span_end``): its end, status and attributes merged in.
        False when no open span has those ids."""
        rows = await self._fetch(
            f"SELECT attributes FROM {self.spans} WHERE trace_id = {self._p(1)} AND span_id = {self._p(2)} "
            f"AND end_ns IS NULL",
            [trace_id, span_id],
        )
        if not rows:
            return False
        merged = {**_loads(rows[0][0]), **attributes}
        p = self._p
        changed = await self._execute(
            f"UPDATE {self.spans} SET end_ns = {p(1)}, status = {p(2)}, attributes = {self._json(3)} "
            f"WHERE trace_id = {p(4)} AND span_id = {p(5)} AND end_ns IS NULL",
            [end_ns, status, dumps_json(merged), trace_id, span_id],
        )
        return changed > 0

    async def add_event(
        self,
        trace_id: str,
        span_id: str,
        ts_ns: int,
        severity: str,
        message: str,
        attributes: dict[str, Any],
        expires_ns: int,
    ) -> None:
        await self.add_events(
            [(trace_id, span_id, ts_ns, severity, message, dumps_json(attributes), expires_ns)]
        )

    async def add_events(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert events: (trace_id, span_id, ts_ns, severity, message, attributes JSON, expires_ns)."""
        if rows:
            await self._execute_many(self._events_insert(), rows)

    def _events_insert(self) -> str:
        p = self._p
        return (
            f"INSERT INTO {self.events} "
            f"(trace_id, span_id, ts_ns, severity, message, attributes, expires_ns) "
            f"VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)}, {self._json(6)}, {p(7)})"
        )

    async def add_points(self, points: list[MetricPoint]) -> None:
        if not points:
            return
        p = self._p
        await self._execute_many(
            f"INSERT INTO {self.points} (name, labels, ts_ns, value, kind, unit, expires_ns) "
            f"VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)}, {p(6)}, {p(7)})",
            [point.params() for point in points],
        )

    async def prune(self, now_ns: int | None = None) -> int:
        """Delete every span, event and metric point past its expiry; how many rows went."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        removed = 0
        for table in (self.spans, self.events, self.points):
            removed += await self._execute(f"DELETE FROM {table} WHERE expires_ns < {self._p(1)}", [now_ns])
        return removed

    # -- reads used by the queries ----------------------------------------------------------------

    async def events_of(self, trace_id: str, span_id: str) -> list[dict[str, Any]]:
        """The unstructured logs of one span, oldest first."""
        p = self._p
        rows = await self._fetch(
            f"SELECT ts_ns, severity, message, attributes FROM {self.events} "
            f"WHERE trace_id = {p(1)} AND span_id = {p(2)} ORDER BY ts_ns",
            [trace_id, span_id],
        )
        return [
            {"ts_ns": ts, "severity": severity, "message": message, "attributes": _loads(attrs)}
            for ts, severity, message, attrs in rows
        ]


def _loads(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if value else {}


class SqliteTraceStore(SqliteTable, TraceStore):
    # Several servers may write one file (replicas): see SqliteTable.immediate_writes.
    immediate_writes: ClassVar[bool] = True
    # The span indexes take rows on random pages (random ids): a page cache that holds them (64 MiB, filled
    # only as the store grows) and fewer checkpoints (the WAL up to ~40 MB: a page rewritten by several
    # commits is copied back once) made a request's rows ~2x cheaper to insert in a store of 200,000
    # requests (docs/benchmarks.md, "Telemetry cost", step 8).
    pragmas: ClassVar[tuple[str, ...]] = ("cache_size=-65536", "wal_autocheckpoint=10000")

    async def _migrate_sqlite(self, conn: Any) -> None:
        """A spans table made before (primary key (trace_id, span_id), a third random index) rebuilt as
        today's: SQLite cannot drop a primary key. Its indexes go with it; the schema makes them again."""
        indexes = await conn.execute_fetchall(f"PRAGMA index_list({self.spans})")
        if not any(row[3] == "pk" for row in indexes):  # (seq, name, unique, origin, partial)
            return
        moving = f"{self.spans}_migrating"
        columns = ", ".join(SPAN_COLUMNS)
        # Other processes opening the file meanwhile wait (BEGIN IMMEDIATE), for up to the busy timeout.
        log.info("trace_store_migrating", table=self.spans, path=str(self.path))
        started = time.monotonic()
        await conn.execute(f"DROP TABLE IF EXISTS {moving}")
        await conn.execute(self._spans_table(moving, "sqlite"))
        await conn.execute(f"INSERT INTO {moving} ({columns}) SELECT {columns} FROM {self.spans}")
        await conn.execute(f"DROP TABLE {self.spans}")
        await conn.execute(f"ALTER TABLE {moving} RENAME TO {self.spans}")
        log.info("trace_store_migrated", table=self.spans, seconds=round(time.monotonic() - started, 3))


class PostgresTraceStore(PostgresTable, TraceStore):
    pass


async def open_trace_store(config: SqliteTraceStoreConfig | PostgresTraceStoreConfig) -> TraceStore:
    return await open_table(SqliteTraceStore, PostgresTraceStore, config)
